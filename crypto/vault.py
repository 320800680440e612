"""Shamir vault: a recovery secret split into n sealed share files, t of which recover it.

Share file layout (binary, 0600, one file per share)::

    magic   b"PXVAULT1"                          8
    vault   vault id (random)                   16
    index   share x, 1..255                      1
    t, n    threshold, share count               1 + 1
    version vault format/secret version (u16)    2
    check   HMAC-SHA-256(secret, b"plexi/vault/check/v1" || vault id)   32
    nonce                                        12
    sealed  ChaCha20-Poly1305(k, nonce, y, aad = all header bytes above)   len(secret) + 16

``k = HKDF-SHA-256(ikm = passphrase or b"", salt = vault id, info = b"plexi/vault/share/v1")``.
The AEAD binds the vault id, share index, threshold, count, version and check value to the
share value: a flipped bit anywhere, a share from another vault or a renumbered share fails
*that* share's AEAD and is reported by name (:class:`VaultShareInvalid`), never combined.
With a passphrase the share values are also confidential at rest; without one the AEAD is
an integrity check only (anyone holding t share files holds the secret, by design).
After combining, ``check`` is recomputed from the result: a mismatch (which the AEAD makes
practically impossible) raises :class:`VaultRecoverError` rather than returning a wrong
secret. Too few shares, x = 0, duplicates, or shares of different vaults are refused.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from crypto import shamir
from crypto.keystore import KeyStoreError

MAGIC = b"PXVAULT1"
_HEAD = struct.Struct(">8s16sBBBH32s12s")
VAULT_ID_LEN = 16
MAX_SECRET = 1024


class VaultError(KeyStoreError):
    """A vault operation failed."""


class VaultShareInvalid(VaultError):
    """One share is malformed, tampered, foreign or not allowed; ``share`` names it."""

    def __init__(self, share: str, reason: str) -> None:
        super().__init__(f"share {share}: {reason}")
        self.share = share
        self.reason = reason


class VaultRecoverError(VaultError):
    """The shares given cannot recover the secret (too few, or inconsistent)."""


@dataclass(frozen=True, slots=True)
class VaultShare:
    vault_id: bytes
    index: int
    threshold: int
    count: int
    version: int
    check: bytes
    value: bytes  # the Shamir y (plaintext once opened)


def _key(vault_id: bytes, passphrase: bytes) -> ChaCha20Poly1305:
    k = HKDF(hashes.SHA256(), 32, vault_id, b"plexi/vault/share/v1").derive(passphrase)
    return ChaCha20Poly1305(k)


def _check(secret: bytes, vault_id: bytes) -> bytes:
    return hmac.new(secret, b"plexi/vault/check/v1" + vault_id, hashlib.sha256).digest()


def split(
    secret: bytes, threshold: int, count: int, *, passphrase: bytes = b"", version: int = 1,
    vault_id: bytes | None = None,
) -> list[bytes]:
    """Split ``secret`` into ``count`` sealed share files (bytes), share i at position i-1."""
    if not isinstance(secret, bytes) or not 1 <= len(secret) <= MAX_SECRET:
        raise VaultError(f"secret must be 1..{MAX_SECRET} bytes")
    if not 0 <= version <= 0xFFFF:
        raise VaultError("version must fit in 16 bits")
    vid = vault_id if vault_id is not None else os.urandom(VAULT_ID_LEN)
    if len(vid) != VAULT_ID_LEN:
        raise VaultError("vault id must be 16 bytes")
    try:
        shares = shamir.split(secret, threshold, count)
    except shamir.ShamirError as exc:
        raise VaultError(str(exc)) from None
    check = _check(secret, vid)
    aead = _key(vid, passphrase)
    out = []
    for s in shares:
        nonce = os.urandom(12)
        head = _HEAD.pack(MAGIC, vid, s.x, threshold, count, version, check, nonce)
        out.append(head + aead.encrypt(nonce, s.y, head))
    return out


def parse_share(data: bytes, name: str, *, passphrase: bytes = b"") -> VaultShare:
    """Authenticate and parse one share file; raise VaultShareInvalid naming it."""
    if not isinstance(data, bytes):
        raise TypeError("share data must be bytes")
    if len(data) < _HEAD.size + 1 + 16:
        raise VaultShareInvalid(name, "too short")
    magic, vid, x, t, n, version, check, nonce = _HEAD.unpack_from(data)
    if magic != MAGIC:
        raise VaultShareInvalid(name, "not a vault share (bad magic)")
    if x == 0:
        raise VaultShareInvalid(name, "share index 0 refused (x = 0 would be the secret)")
    if not 2 <= t <= n or x > n:
        raise VaultShareInvalid(name, f"inconsistent header (x={x}, t={t}, n={n})")
    try:
        y = _key(vid, passphrase).decrypt(nonce, data[_HEAD.size:], data[:_HEAD.size])
    except InvalidTag:
        raise VaultShareInvalid(
            name, "authentication failed (tampered, foreign or wrong passphrase)") from None
    return VaultShare(vid, x, t, n, version, check, y)


def recover(named: Sequence[tuple[str, bytes]], *, passphrase: bytes = b"") -> bytes:
    """Recover the secret from (name, share file bytes) pairs. Every share is checked
    before any is combined; the result is checked against the commitment in the shares."""
    parsed = [parse_share(data, name, passphrase=passphrase) for name, data in named]
    if not parsed:
        raise VaultRecoverError("no shares given")
    first_name, first = named[0][0], parsed[0]
    seen: dict[int, str] = {}
    for (name, _), s in zip(named, parsed, strict=True):
        if s.vault_id != first.vault_id:
            raise VaultShareInvalid(name, f"belongs to another vault than {first_name}")
        if (s.threshold, s.count, s.version, s.check) != (
            first.threshold, first.count, first.version, first.check
        ) or len(s.value) != len(first.value):
            raise VaultShareInvalid(name, f"parameters disagree with {first_name}")
        if s.index in seen:
            raise VaultShareInvalid(name, f"duplicate share index {s.index} (also {seen[s.index]})")
        seen[s.index] = name
    if len(parsed) < first.threshold:
        raise VaultRecoverError(
            f"{len(parsed)} share(s) given, threshold is {first.threshold}: cannot recover")
    secret = shamir.combine([shamir.Share(s.index, s.value) for s in parsed], first.threshold)
    if not hmac.compare_digest(_check(secret, first.vault_id), first.check):
        raise VaultRecoverError("recovered secret fails its commitment check; refused")
    return secret
