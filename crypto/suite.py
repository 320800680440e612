"""Cipher suites: a hybrid KEM, an AEAD and SHA-256, named by a 16-bit id.

A suite is one frozen object; the policy says which suites a side allows and in what
order it prefers them. Negotiation happens inside the transcript (see handshake.py), so an
attacker who strips suites from the offer breaks the Finished MACs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import IntEnum

from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from crypto.kem import MLKEM1024_X25519, XWING, HybridKem


class Level(IntEnum):
    """Security levels a deployment can require ("quantum-safe high" = HIGH)."""

    STANDARD = 1  # ML-KEM-768 (NIST category 3) + X25519
    HIGH = 2  # ML-KEM-1024 (NIST category 5) + X25519


class AeadId(IntEnum):
    CHACHA20_POLY1305 = 1
    AES_256_GCM = 2


AeadFactory = Callable[[bytes], ChaCha20Poly1305 | AESGCM]


@dataclass(frozen=True, slots=True)
class Suite:
    suite_id: int
    name: str
    kem: HybridKem
    aead: AeadId
    level: Level

    def aead_factory(self) -> AeadFactory:
        return ChaCha20Poly1305 if self.aead is AeadId.CHACHA20_POLY1305 else AESGCM


XWING_CHACHA20 = Suite(
    0x0101, "XWING_CHACHA20POLY1305_SHA256", XWING, AeadId.CHACHA20_POLY1305, Level.STANDARD
)
XWING_AES256GCM = Suite(0x0102, "XWING_AES256GCM_SHA256", XWING, AeadId.AES_256_GCM, Level.STANDARD)
MLKEM1024_CHACHA20 = Suite(
    0x0201,
    "MLKEM1024X25519_CHACHA20POLY1305_SHA256",
    MLKEM1024_X25519,
    AeadId.CHACHA20_POLY1305,
    Level.HIGH,
)
MLKEM1024_AES256GCM = Suite(
    0x0202, "MLKEM1024X25519_AES256GCM_SHA256", MLKEM1024_X25519, AeadId.AES_256_GCM, Level.HIGH
)

ALL_SUITES: tuple[Suite, ...] = (
    XWING_CHACHA20,
    XWING_AES256GCM,
    MLKEM1024_CHACHA20,
    MLKEM1024_AES256GCM,
)
SUITES_BY_ID: dict[int, Suite] = {s.suite_id: s for s in ALL_SUITES}
SUITES_BY_NAME: dict[str, Suite] = {s.name: s for s in ALL_SUITES}
DEFAULT_SUITES: tuple[Suite, ...] = (XWING_CHACHA20,)
MAX_OFFERED_SUITES = 8


@dataclass(frozen=True, slots=True)
class SuitePolicy:
    """Which suites a side accepts, most preferred first, and the minimum level."""

    suites: tuple[Suite, ...] = DEFAULT_SUITES
    min_level: Level = Level.STANDARD
    _allowed: tuple[Suite, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.suites:
            raise ValueError("a policy needs at least one suite")
        if len(self.suites) > MAX_OFFERED_SUITES:
            raise ValueError(f"at most {MAX_OFFERED_SUITES} suites")
        if len({s.suite_id for s in self.suites}) != len(self.suites):
            raise ValueError("duplicate suite in policy")
        # Computed once: every handshake asks for it.
        allowed = tuple(s for s in self.suites if s.level >= self.min_level)
        object.__setattr__(self, "_allowed", allowed)

    @property
    def allowed(self) -> tuple[Suite, ...]:
        return self._allowed

    def choose(self, offered: Iterable[int]) -> Suite | None:
        """The server's pick: its most preferred allowed suite that the client offered."""
        offered_set = set(offered)
        for suite in self.allowed:
            if suite.suite_id in offered_set:
                return suite
        return None

    @classmethod
    def from_names(cls, names: Iterable[str], min_level: Level = Level.STANDARD) -> SuitePolicy:
        try:
            suites = tuple(SUITES_BY_NAME[n.strip().upper()] for n in names if n.strip())
        except KeyError as exc:
            raise ValueError(f"unknown suite {exc.args[0]!r}") from None
        return cls(suites, min_level)
