"""Key store interface: master keys that never leave their store, and the errors it raises.

Exception hierarchy::

    KeyStoreError                  any key-store failure
     +-- KeyNotFound               no such key / version
     +-- KeyDisabled               version exists but may not be used (disabled)
     |    +-- KeyDestroyed         version's material is gone for good
     +-- KeyPolicyViolation        a master key is readable or extractable: refused on load
     +-- UnwrapError               wrapped blob failed authentication (no reason given)
     +-- HsmUnavailable            the token failed or the breaker is open; ``retryable``
     +-- AuditWriteError           the audit record could not be written: op refused
     +-- AuditVerifyError          the audit log failed verification (``index`` of 1st bad)

A store holds two kinds of master key, each versioned (v1, v2, ...), one version active:

- ``wrap``:   AES-256, wraps (AES-GCM inside the store) other keys that rest on disk, e.g.
  the gateway's long-term X-Wing private key and the versions of rotating working keys.
- ``derive``: HMAC-SHA-256 secret, derives working keys (ticket keys, storage keys) by label.

Blob layout of :meth:`KeyStore.wrap` (both implementations)::

    0x01 | master version (u32 BE) | nonce (12) | AES-256-GCM ciphertext || tag (16)
    AAD = b"plexi/wrap/v1" || caller aad

Derivation (both implementations; a counter-mode KDF, NIST SP 800-108, PRF = HMAC-SHA-256
inside the store)::

    block_i = HMAC(master_derive, b"plexi/derive/v1" || u8(i) || u16(length) || label)
    out = (block_1 || block_2 || ...)[:length],   1 <= length <= 64
"""

from __future__ import annotations

import abc
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import TypeVar

T = TypeVar("T")


class KeyStoreError(Exception):
    """A key-store operation failed."""


class KeyNotFound(KeyStoreError):
    """No such key or key version."""


class KeyDisabled(KeyStoreError):
    """The key version exists but is disabled: it may no longer be used."""


class KeyDestroyed(KeyDisabled):
    """The key version was destroyed: its material is gone."""


class KeyPolicyViolation(KeyStoreError):
    """A master key does not have the required protection (sensitive, non-extractable)."""


class UnwrapError(KeyStoreError):
    """A wrapped blob failed to authenticate. Carries no reason on purpose."""


class HsmUnavailable(KeyStoreError):
    """The HSM failed or is cut off by the circuit breaker. Retry later; no fallback."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return True


class AuditWriteError(KeyStoreError):
    """The audit record could not be written, so the operation was refused."""


class AuditVerifyError(KeyStoreError):
    """The audit log failed verification; ``index`` is the first bad record (0-based line)."""

    def __init__(self, message: str, index: int) -> None:
        super().__init__(f"record {index}: {message}")
        self.index = index


class MasterKind(Enum):
    WRAP = "wrap"
    DERIVE = "derive"


@dataclass(frozen=True, slots=True)
class MasterInfo:
    """Public facts about one master key version (never its value)."""

    kind: MasterKind
    version: int
    active: bool


WRAP_FORMAT = 0x01
WRAP_AAD_PREFIX = b"plexi/wrap/v1"
DERIVE_PREFIX = b"plexi/derive/v1"
WRAP_HEADER = struct.Struct(">BI")
NONCE_LEN = 12
MAX_DERIVE_LEN = 64


def active_version(keys: Iterable[tuple[MasterKind, int]], kind: MasterKind) -> int | None:
    """The active (highest) version of ``kind`` among ``keys``; None if there is none."""
    versions = [v for (k, v) in keys if k is kind]
    return max(versions) if versions else None


def lookup_master(
    keys: Mapping[tuple[MasterKind, int], T], kind: MasterKind, version: int | None
) -> tuple[int, T]:
    """``(version, key)`` for ``version`` of ``kind`` (default: the active one)."""
    v = active_version(keys, kind) if version is None else version
    key = keys.get((kind, v)) if v is not None else None
    if v is None or key is None:
        raise KeyNotFound(f"no {kind.value} master version {version}")
    return v, key


def derive_block_input(label: bytes, length: int, counter: int) -> bytes:
    """The HMAC input for derivation block ``counter`` (1-based)."""
    return DERIVE_PREFIX + struct.pack(">BH", counter, length) + label


def check_derive_args(label: bytes, length: int) -> None:
    if not isinstance(label, bytes):
        raise TypeError("label must be bytes")
    if not label or len(label) > 1024:
        raise ValueError("label must be 1..1024 bytes")
    if not isinstance(length, int) or not 1 <= length <= MAX_DERIVE_LEN:
        raise ValueError(f"length must be 1..{MAX_DERIVE_LEN}")


def parse_wrapped(blob: bytes) -> tuple[int, bytes, bytes]:
    """Split a wrap blob into (master version, nonce, ciphertext); raise UnwrapError."""
    if not isinstance(blob, bytes):
        raise TypeError("blob must be bytes")
    if len(blob) < WRAP_HEADER.size + NONCE_LEN + 16:
        raise UnwrapError("wrapped blob failed to authenticate")
    fmt, version = WRAP_HEADER.unpack_from(blob)
    if fmt != WRAP_FORMAT or version == 0:
        raise UnwrapError("wrapped blob failed to authenticate")
    nonce = blob[WRAP_HEADER.size : WRAP_HEADER.size + NONCE_LEN]
    return version, nonce, blob[WRAP_HEADER.size + NONCE_LEN :]


class KeyStore(abc.ABC):
    """Master keys that never leave the store. Thread-safe; every method may block."""

    @abc.abstractmethod
    def derive(self, label: bytes, length: int = 32, *, version: int | None = None) -> bytes:
        """Working key bytes for ``label`` from the derive master ``version`` (default: the
        active one). Same label and version -> same bytes."""

    @abc.abstractmethod
    def wrap(self, data: bytes, aad: bytes = b"") -> bytes:
        """Encrypt ``data`` (e.g. a private key) under the active wrap master."""

    @abc.abstractmethod
    def unwrap(self, blob: bytes, aad: bytes = b"") -> bytes:
        """Decrypt a :meth:`wrap` blob under whichever wrap master version made it."""

    @abc.abstractmethod
    def masters(self) -> list[MasterInfo]:
        """The master key versions present, with the active one flagged."""

    @abc.abstractmethod
    def rotate_master(self, kind: MasterKind) -> int:
        """Generate a new master version of ``kind`` and make it active; return it.
        The highest version is the active one, so creating it is the one atomic step.
        Older wrap versions keep unwrapping; derivation switches to the new version."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the store (log out, stop worker threads)."""

    def __enter__(self) -> KeyStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
