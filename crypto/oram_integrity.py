"""Sealing of ORAM buckets: AEAD per bucket plus a Merkle tree aligned with the ORAM tree.

Theory of operation
-------------------
Every bucket the client writes is stored as::

    version (8 bytes, big endian) || AES-256-GCM(key, nonce, plaintext, ad)

with ``nonce = version || index`` (8 + 4 bytes) and ``ad = LABEL || index || version``.
``version`` is the client's global access counter when the bucket was written; every access
writes a whole path with the next counter value, so a (key, nonce) pair never repeats
(the key is fresh per ORAM instance and the counter only grows).

The plaintext of bucket ``i`` begins with the SHA-256 digests of the stored bytes of its two
children ``2i+1`` and ``2i+2`` (``ABSENT`` for a child never written); the client keeps the
digest of the root bucket and the current version.  Reading a path therefore verifies top-down:
the root's stored bytes must hash to the client's root digest, each lower bucket must hash to
the digest its (already verified) parent holds.  A flipped bit, a bucket copied to another
index, an old copy of a bucket, an old root, a deleted or an injected bucket each break one of
those equalities (and, independently, the AEAD tag or its associated data), and the whole path
is checked before the ORAM touches its stash, position map or root.
"""

from __future__ import annotations

import hashlib
import hmac
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from crypto.oram_errors import OramIntegrityError, OramUsageError

DIGEST_SIZE = 32
ABSENT = bytes(DIGEST_SIZE)
"""Digest recorded for a child bucket that was never written (storage must return nothing)."""

VERSION_SIZE = 8
TAG_SIZE = 16
LABEL = b"plexi-oram-bucket-v1"
MAX_INDEX = 2**32 - 1

_U64 = struct.Struct(">Q")
_U32 = struct.Struct(">I")


def digest(stored: bytes) -> bytes:
    """The Merkle digest of a stored bucket (SHA-256 of its exact stored bytes)."""
    return hashlib.sha256(stored).digest()


class BucketSealer:
    """Seals and opens buckets under one AES-256-GCM key (32 bytes, from ``os.urandom``)."""

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, bytes):
            raise TypeError("key must be bytes")
        if len(key) != 32:
            raise ValueError("key must be 32 bytes")
        self._aead = AESGCM(key)

    def seal(self, index: int, version: int, plaintext: bytes) -> bytes:
        """Encrypt one bucket; returns its stored form (version || ciphertext || tag)."""
        if not 0 <= index <= MAX_INDEX:
            raise OramUsageError("bucket index out of range")
        v = _U64.pack(version)
        i = _U32.pack(index)
        return v + self._aead.encrypt(v + i, plaintext, LABEL + i + v)

    def open(self, index: int, stored: bytes, expected: bytes) -> tuple[int, bytes]:
        """Check ``stored`` against its expected digest, then decrypt it.

        Returns (version, plaintext).  Raises OramIntegrityError on any mismatch.
        """
        if not hmac.compare_digest(hashlib.sha256(stored).digest(), expected):
            raise OramIntegrityError(f"bucket {index} does not match its Merkle digest")
        if len(stored) < VERSION_SIZE + TAG_SIZE:
            raise OramIntegrityError(f"bucket {index} is truncated")
        v = stored[:VERSION_SIZE]
        i = _U32.pack(index)
        try:
            plaintext = self._aead.decrypt(v + i, stored[VERSION_SIZE:], LABEL + i + v)
        except InvalidTag:
            raise OramIntegrityError(f"bucket {index} failed authentication") from None
        return _U64.unpack(v)[0], plaintext
