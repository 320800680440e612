"""Hybrid KEMs: X-Wing (ML-KEM-768 + X25519) and its ML-KEM-1024 sibling.

X-Wing follows the final draft-connolly-cfrg-xwing-kem:

* keys from a 32-byte seed: ``expanded = SHAKE256(seed, 96)``; ``expanded[0:64]`` is the
  ML-KEM (d || z) seed, ``expanded[64:96]`` the X25519 private key;
* ``pk = pk_M || pk_X``; ``ct = ct_M || ct_X``;
* ``ss = SHA3-256(ss_M || ss_X || ct_X || pk_X || XWING_LABEL)`` (label last).

``MLKEM1024X25519`` is the same construction over ML-KEM-1024 with its own label, for the
"high" level. All primitives come from ``cryptography``; this module only combines them.

Low-order X25519 points give an all-zero shared secret, which OpenSSL refuses; that is
raised as :class:`KemError` so the handshake aborts (checklist item 3). ML-KEM keys whose
coefficients are not reduced mod q are refused on load (item 2). A tampered ML-KEM
ciphertext decapsulates to the implicit-rejection secret without an error (item 1); the
handshake then fails at Finished.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import IntEnum
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric import mlkem
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

XWING_LABEL = b"\\.//^\\"  # 5c 2e 2f 2f 5e 5c, from the draft
MLKEM1024X25519_LABEL = b"PlexiChat MLKEM1024-X25519 v1"
SEED_SIZE = 32
X25519_SIZE = 32


class KemError(ValueError):
    """A public key or ciphertext is malformed or gives a forbidden shared secret."""


class KemId(IntEnum):
    XWING = 0x0001
    MLKEM1024_X25519 = 0x0002


class _MlKemPrivate(Protocol):
    def decapsulate(self, ciphertext: bytes) -> bytes: ...


class _MlKemPublic(Protocol):
    def encapsulate(self) -> tuple[bytes, bytes]: ...
    def public_bytes_raw(self) -> bytes: ...


@dataclass(frozen=True, slots=True)
class HybridKem:
    """One hybrid KEM: sizes, label and the ML-KEM parameter set behind it."""

    kem_id: KemId
    name: str
    label: bytes
    mlkem_pk_size: int
    mlkem_ct_size: int
    level: int  # NIST category of the ML-KEM half

    @property
    def public_key_size(self) -> int:
        return self.mlkem_pk_size + X25519_SIZE

    @property
    def ciphertext_size(self) -> int:
        return self.mlkem_ct_size + X25519_SIZE

    # -- construction ---------------------------------------------------------------
    def generate(self) -> HybridPrivateKey:
        import secrets

        return self.from_seed(secrets.token_bytes(SEED_SIZE))

    def from_seed(self, seed: bytes) -> HybridPrivateKey:
        if not isinstance(seed, bytes):
            raise TypeError("seed must be bytes")
        if len(seed) != SEED_SIZE:
            raise ValueError(f"seed must be {SEED_SIZE} bytes")
        expanded = hashlib.shake_256(seed).digest(96)
        if self.kem_id is KemId.XWING:
            sk_m: _MlKemPrivate = mlkem.MLKEM768PrivateKey.from_seed_bytes(expanded[:64])
        else:
            sk_m = mlkem.MLKEM1024PrivateKey.from_seed_bytes(expanded[:64])
        sk_x = X25519PrivateKey.from_private_bytes(expanded[64:96])
        pk_m = sk_m.public_key().public_bytes_raw()  # type: ignore[attr-defined]
        pk_x = sk_x.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return HybridPrivateKey(self, seed, sk_m, sk_x, pk_m + pk_x)

    def public_key(self, data: bytes) -> HybridPublicKey:
        """Load a public key; refuses wrong sizes and unreduced ML-KEM coefficients."""
        if not isinstance(data, bytes):
            raise TypeError("public key must be bytes")
        if len(data) != self.public_key_size:
            raise KemError("public key has the wrong size")
        try:
            if self.kem_id is KemId.XWING:
                pk_m: _MlKemPublic = mlkem.MLKEM768PublicKey.from_public_bytes(
                    data[: self.mlkem_pk_size]
                )
            else:
                pk_m = mlkem.MLKEM1024PublicKey.from_public_bytes(data[: self.mlkem_pk_size])
        except ValueError as exc:
            raise KemError("invalid ML-KEM public key") from exc
        pk_x = X25519PublicKey.from_public_bytes(data[self.mlkem_pk_size :])
        return HybridPublicKey(self, pk_m, pk_x, data)

    def combine(self, ss_m: bytes, ss_x: bytes, ct_x: bytes, pk_x: bytes) -> bytes:
        return hashlib.sha3_256(ss_m + ss_x + ct_x + pk_x + self.label).digest()


@dataclass(frozen=True, slots=True, eq=False)
class HybridPublicKey:
    kem: HybridKem
    _pk_m: _MlKemPublic
    _pk_x: X25519PublicKey
    raw: bytes

    def encapsulate(self) -> tuple[bytes, bytes]:
        """Return ``(shared_secret, ciphertext)``; randomness from the OS."""
        ss_m, ct_m = self._pk_m.encapsulate()
        ek_x = X25519PrivateKey.generate()
        ct_x = ek_x.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        try:
            ss_x = ek_x.exchange(self._pk_x)
        except ValueError as exc:  # low-order point: all-zero shared secret
            raise KemError("X25519 public key of low order") from exc
        pk_x = self.raw[self.kem.mlkem_pk_size :]
        return self.kem.combine(ss_m, ss_x, ct_x, pk_x), ct_m + ct_x


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class HybridPrivateKey:
    kem: HybridKem
    _seed: bytes
    _sk_m: _MlKemPrivate
    _sk_x: X25519PrivateKey
    public_bytes: bytes

    def __repr__(self) -> str:  # never show the seed
        return f"<HybridPrivateKey {self.kem.name}>"

    def seed_bytes(self) -> bytes:
        """The 32-byte seed from which the whole key is derived (secret)."""
        return self._seed

    def public_key(self) -> HybridPublicKey:
        return self.kem.public_key(self.public_bytes)

    def decapsulate(self, ciphertext: bytes) -> bytes:
        if not isinstance(ciphertext, bytes):
            raise TypeError("ciphertext must be bytes")
        if len(ciphertext) != self.kem.ciphertext_size:
            raise KemError("ciphertext has the wrong size")
        ct_m = ciphertext[: self.kem.mlkem_ct_size]
        ct_x = ciphertext[self.kem.mlkem_ct_size :]
        ss_m = self._sk_m.decapsulate(ct_m)  # implicit rejection: no error on tampering
        try:
            ss_x = self._sk_x.exchange(X25519PublicKey.from_public_bytes(ct_x))
        except ValueError as exc:
            raise KemError("X25519 ciphertext of low order") from exc
        pk_x = self.public_bytes[self.kem.mlkem_pk_size :]
        return self.kem.combine(ss_m, ss_x, ct_x, pk_x)


XWING = HybridKem(KemId.XWING, "X-Wing", XWING_LABEL, 1184, 1088, 3)
MLKEM1024_X25519 = HybridKem(
    KemId.MLKEM1024_X25519, "MLKEM1024-X25519", MLKEM1024X25519_LABEL, 1568, 1568, 5
)
KEMS: dict[int, HybridKem] = {k.kem_id: k for k in (XWING, MLKEM1024_X25519)}


def kem_by_id(kem_id: int) -> HybridKem:
    try:
        return KEMS[kem_id]
    except KeyError:
        raise KemError(f"unknown KEM id {kem_id:#06x}") from None
