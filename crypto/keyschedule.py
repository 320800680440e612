"""Key schedule: labelled HKDF-SHA256 over the transcript, and the per-direction ratchet.

Labels (all prefixed by ``"plexichat v1 "`` inside the HKDF info, TLS 1.3 style)::

    info = u16(length) || u8(len(label)) || "plexichat v1 " + label || u8(len(ctx)) || ctx

    es      = HKDF-Extract(salt="plexichat v1 handshake", ikm=ss_ephemeral)
    ms      = HKDF-Extract(salt=es, ikm=ss_static)
    fk_c    = Expand(ms, "c finished", th2, 32)      th2 = H(CH || SH || CK without MAC)
    fk_s    = Expand(ms, "s finished", th3, 32)      th3 = H(CH || SH || CK)
    epoch_0 = Expand(ms, "epoch", th3, 32)
    res     = Expand(ms, "resumption", th3, 32)

    per epoch e (u32 big-endian as context):
    c2s chain key = Expand(epoch_e, "c2s chain", u32(e), 32)
    s2c chain key = Expand(epoch_e, "s2c chain", u32(e), 32)
    epoch_{e+1}   = HKDF-Extract(salt=epoch_e, ikm=ss_rekey || H(rekey transcript))

    ratchet (per direction, per record):
    message key = HMAC-SHA256(chain_key, 0x01)
    chain_key'  = HMAC-SHA256(chain_key, 0x02)      the old chain key is dropped
    nonce       = 0x00000000 || u64(sequence)
"""

from __future__ import annotations

import hashlib
import hmac as _std_hmac
import struct

from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

LABEL_PREFIX = b"plexichat v1 "
HANDSHAKE_SALT = b"plexichat v1 handshake"
HASH_SIZE = 32


def transcript_hash(*messages: bytes) -> bytes:
    h = hashlib.sha256()
    for m in messages:
        h.update(m)
    return h.digest()


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    mac = hmac.HMAC(key, hashes.SHA256())
    mac.update(data)
    return mac.finalize()


def hkdf_extract(salt: bytes, ikm: bytes) -> bytes:
    # RFC 5869: PRK = HMAC-Hash(salt, IKM); the salt is the HMAC key.
    return hmac_sha256(salt, ikm)


def expand_label(secret: bytes, label: bytes, context: bytes, length: int = HASH_SIZE) -> bytes:
    full = LABEL_PREFIX + label
    if len(full) > 255 or len(context) > 255:
        raise ValueError("label or context too long")
    info = struct.pack(">HB", length, len(full)) + full + bytes([len(context)]) + context
    return HKDFExpand(hashes.SHA256(), length, info).derive(secret)


def finished_mac(key: bytes, th: bytes) -> bytes:
    return hmac_sha256(key, th)


def verify_mac(expected: bytes, received: bytes) -> bool:
    return _std_hmac.compare_digest(expected, received)


def epoch_context(epoch: int) -> bytes:
    return struct.pack(">I", epoch)


def chain_keys(epoch_secret: bytes, epoch: int) -> tuple[bytes, bytes]:
    """(client-to-server, server-to-client) initial chain keys of an epoch."""
    ctx = epoch_context(epoch)
    return (
        expand_label(epoch_secret, b"c2s chain", ctx),
        expand_label(epoch_secret, b"s2c chain", ctx),
    )


def next_epoch_secret(epoch_secret: bytes, ss_rekey: bytes, rekey_th: bytes) -> bytes:
    return hkdf_extract(epoch_secret, ss_rekey + rekey_th)


def ratchet_step(chain_key: bytes) -> tuple[bytes, bytes]:
    """(message key, next chain key)."""
    return hmac_sha256(chain_key, b"\x01"), hmac_sha256(chain_key, b"\x02")
