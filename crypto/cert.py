"""Gateway certificates: a long-term hybrid KEM public key signed by the deployment root.

The root key is ML-DSA-65, kept offline; clients pin its public key (1952 bytes). The
gateway proves possession of the certified KEM key implicitly: only it can decapsulate the
client's ciphertext, so only it can compute the Finished MAC (KEM authentication).

Layout (big-endian)::

    magic        4   "PXC1"
    kem_id       2   KemId of the certified key
    key_id      16   first 16 bytes of SHA-256(kem_id || public key)
    not_before   8   unix seconds
    not_after    8   unix seconds
    pk_len       2
    public_key   pk_len
    sig_len      2
    signature    sig_len   ML-DSA-65 over every byte above, context "plexichat gateway cert v1"
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.mldsa import MLDSA65PrivateKey, MLDSA65PublicKey

from crypto.errors import CertificateError
from crypto.kem import HybridKem, HybridPublicKey, KemError, kem_by_id

MAGIC = b"PXC1"
SIG_CONTEXT = b"plexichat gateway cert v1"
ROOT_PUBLIC_KEY_SIZE = 1952
MAX_CERT_SIZE = 8192
_FIXED = struct.Struct(">4sH16sQQ")


@dataclass(frozen=True, slots=True, repr=False)
class RootKey:
    """The deployment's offline ML-DSA-65 signing key."""

    _key: MLDSA65PrivateKey

    @classmethod
    def generate(cls) -> RootKey:
        return cls(MLDSA65PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> RootKey:
        if len(seed) != 32:
            raise ValueError("root seed must be 32 bytes")
        return cls(MLDSA65PrivateKey.from_seed_bytes(seed))

    def seed_bytes(self) -> bytes:
        return self._key.private_bytes_raw()

    def public_bytes(self) -> bytes:
        return self._key.public_key().public_bytes_raw()

    def __repr__(self) -> str:
        return "<RootKey ML-DSA-65>"

    def certify(
        self, kem: HybridKem, public_key: bytes, not_before: int, not_after: int
    ) -> GatewayCertificate:
        if not_after <= not_before:
            raise ValueError("not_after must be after not_before")
        kem.public_key(public_key)  # refuse to certify a malformed key
        key_id = compute_key_id(kem, public_key)
        tbs = _tbs(kem, key_id, not_before, not_after, public_key)
        sig = self._key.sign(tbs, SIG_CONTEXT)
        return GatewayCertificate(kem, key_id, not_before, not_after, public_key, sig)


def compute_key_id(kem: HybridKem, public_key: bytes) -> bytes:
    return hashlib.sha256(struct.pack(">H", kem.kem_id) + public_key).digest()[:16]


def _tbs(kem: HybridKem, key_id: bytes, nb: int, na: int, pk: bytes) -> bytes:
    return _FIXED.pack(MAGIC, kem.kem_id, key_id, nb, na) + struct.pack(">H", len(pk)) + pk


@dataclass(frozen=True, slots=True)
class GatewayCertificate:
    kem: HybridKem
    key_id: bytes
    not_before: int
    not_after: int
    public_key: bytes
    signature: bytes

    def to_bytes(self) -> bytes:
        tbs = _tbs(self.kem, self.key_id, self.not_before, self.not_after, self.public_key)
        return tbs + struct.pack(">H", len(self.signature)) + self.signature

    @classmethod
    def from_bytes(cls, data: bytes) -> GatewayCertificate:
        """Parse without verifying; raises CertificateError on any malformed byte."""
        if not isinstance(data, bytes):
            raise TypeError("certificate must be bytes")
        if len(data) > MAX_CERT_SIZE or len(data) < _FIXED.size + 4:
            raise CertificateError("certificate has a bad length")
        magic, kem_id, key_id, nb, na = _FIXED.unpack_from(data)
        if magic != MAGIC:
            raise CertificateError("not a PlexiChat certificate")
        try:
            kem = kem_by_id(kem_id)
        except KemError:
            raise CertificateError("certificate names an unknown KEM") from None
        off = _FIXED.size
        (pk_len,) = struct.unpack_from(">H", data, off)
        off += 2
        pk = data[off : off + pk_len]
        off += pk_len
        if len(pk) != pk_len or off + 2 > len(data):
            raise CertificateError("certificate truncated")
        (sig_len,) = struct.unpack_from(">H", data, off)
        off += 2
        sig = data[off : off + sig_len]
        if len(sig) != sig_len or off + sig_len != len(data):
            raise CertificateError("certificate has a bad length")
        return cls(kem, key_id, nb, na, pk, sig)

    def verify(self, root_public_key: bytes, now_s: int) -> HybridPublicKey:
        """Check signature, key id, validity period and the key itself; raise CertificateError.

        Returns the loaded public key, so callers do not parse (and check) it twice."""
        try:
            root = MLDSA65PublicKey.from_public_bytes(root_public_key)
        except ValueError:
            raise CertificateError("pinned root key is malformed") from None
        tbs = _tbs(self.kem, self.key_id, self.not_before, self.not_after, self.public_key)
        try:
            root.verify(self.signature, tbs, SIG_CONTEXT)
        except InvalidSignature:
            raise CertificateError("certificate signature invalid") from None
        if compute_key_id(self.kem, self.public_key) != self.key_id:
            raise CertificateError("certificate key id mismatch")
        if not self.not_before <= now_s <= self.not_after:
            raise CertificateError("certificate outside its validity period")
        try:
            return self.kem.public_key(self.public_key)
        except (KemError, ValueError):
            raise CertificateError("certified public key is malformed") from None
