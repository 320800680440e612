"""The cluster key: what lets the nodes of one cluster talk through Redis without Redis
learning or forging anything.

One 32-byte secret, shared by every node (``serve --cluster-key-file``), never logged.
HKDF-SHA256 derives independent subkeys from it:

- ``names``: HMAC-SHA256 key that turns a channel name into the Redis names for it
  (pub/sub topic, history stream), so Redis sees a keyed hash, never the name;
- per node start and purpose, an AEAD key ``HKDF(cluster, salt, "plexi/cluster/<purpose>")``
  with a fresh random 16-byte ``salt`` per process. Nonces are a per-key counter, so a
  (key, nonce) pair never repeats (no birthday bound on random nonces under a long-lived
  key); keys of different node starts differ with overwhelming probability.

A sealed blob is ``version (1) || salt (16) || counter (8, big-endian) || ciphertext+tag``
(ChaCha20-Poly1305). The header is also bound as AAD, together with the caller's AAD (the
topic or stream key), so a blob cannot move to another channel.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import os
import struct
from collections import OrderedDict
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEY_BYTES = 32
SALT_BYTES = 16
VERSION = 1
HEADER = struct.Struct(">B16sQ")  # version, salt, counter
_MAX_COUNTER = 2**64 - 1


class ClusterKeyError(ValueError):
    """The cluster key file is missing, unreadable or not 32 bytes (the key is never shown)."""


class SealedBlobError(Exception):
    """A sealed blob did not open: malformed, forged, or under another key. No reason given."""


def _hkdf(key: bytes, salt: bytes | None, info: bytes) -> bytes:
    return HKDF(hashes.SHA256(), KEY_BYTES, salt, info).derive(key)


class ClusterKey:
    """A loaded cluster key. Build with :meth:`from_bytes` or :meth:`from_file`."""

    __slots__ = ("_names", "_root")

    def __init__(self, secret: bytes) -> None:
        if not isinstance(secret, bytes):
            raise TypeError("cluster key must be bytes")
        if len(secret) != KEY_BYTES:
            raise ValueError("cluster key must be 32 bytes")
        self._root = secret
        self._names = _hkdf(secret, None, b"plexi/cluster/names")

    @classmethod
    def from_bytes(cls, secret: bytes) -> ClusterKey:
        return cls(secret)

    @classmethod
    def generate(cls) -> ClusterKey:
        return cls(os.urandom(KEY_BYTES))

    @classmethod
    def from_file(cls, path: str | Path) -> ClusterKey:
        """32 raw bytes, or 64 hex digits (surrounding whitespace ignored)."""
        try:
            raw = Path(path).read_bytes()
        except OSError as exc:
            raise ClusterKeyError(f"cannot read cluster key file {path}: "
                                  f"{exc.strerror or type(exc).__name__}") from None
        if len(raw) != KEY_BYTES:
            text = raw.strip()
            try:
                raw = bytes.fromhex(text.decode("ascii")) if len(text) == 2 * KEY_BYTES else b""
            except (UnicodeDecodeError, ValueError):
                raw = b""
        if len(raw) != KEY_BYTES:
            raise ClusterKeyError(
                f"cluster key file {path} must hold 32 raw bytes or 64 hex digits"
            )
        return cls(raw)

    def __repr__(self) -> str:
        return "ClusterKey(<secret>)"

    def name(self, purpose: bytes, value: bytes) -> str:
        """Keyed hash of ``value`` for a Redis name: 32 hex digits (128 bits)."""
        mac = hmac.new(self._names, purpose + b"\x00" + value, hashlib.sha256)
        return mac.hexdigest()[:32]

    def sealer(self, purpose: bytes) -> ClusterSealer:
        """A sealer with a fresh random salt (one per process start and purpose)."""
        return ClusterSealer(self._root, purpose)


class ClusterSealer:
    """Seals under this node's key for one purpose; opens blobs of any node (same cluster).

    ``seal`` is not safe to share between threads (the counter); asyncio code is fine.
    """

    def __init__(self, root: bytes, purpose: bytes, cache: int = 1024) -> None:
        self._root = root
        self._info = b"plexi/cluster/" + purpose
        self.salt = os.urandom(SALT_BYTES)
        self._aead = ChaCha20Poly1305(_hkdf(root, self.salt, self._info))
        self._counter = itertools.count(1)
        self._peers: OrderedDict[bytes, ChaCha20Poly1305] = OrderedDict()
        self._cache = cache

    @property
    def node(self) -> str:
        """A short public id for this sealer's node start (from the salt)."""
        return self.salt[:6].hex()

    def seal(self, plaintext: bytes, aad: bytes) -> tuple[int, bytes]:
        """Returns (counter, blob). The counter is this blob's sequence number."""
        n = next(self._counter)
        if n > _MAX_COUNTER:  # pragma: no cover - 2**64 messages
            raise OverflowError("cluster sealer counter exhausted")
        header = HEADER.pack(VERSION, self.salt, n)
        return n, header + self._aead.encrypt(b"\x00" * 4 + header[17:], plaintext, header + aad)

    def open(self, blob: bytes, aad: bytes) -> tuple[bytes, int, bytes]:
        """Returns (salt, counter, plaintext); raises SealedBlobError on any failure."""
        if len(blob) < HEADER.size + 16:
            raise SealedBlobError
        version, salt, counter = HEADER.unpack_from(blob)
        if version != VERSION:
            raise SealedBlobError
        header = blob[: HEADER.size]
        aead = self._peers.get(salt)
        known = aead is not None
        if aead is None:
            aead = (
                self._aead
                if salt == self.salt
                else ChaCha20Poly1305(_hkdf(self._root, salt, self._info))
            )
        try:
            plaintext = aead.decrypt(b"\x00" * 4 + header[17:], blob[HEADER.size :], header + aad)
        except InvalidTag:
            raise SealedBlobError from None
        if not known:  # cache only keys that opened something (no cache flooding)
            self._peers[salt] = aead
            if len(self._peers) > self._cache:
                self._peers.popitem(last=False)
        return salt, counter, plaintext
