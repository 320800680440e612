"""Resumption tickets: what the gateway seals for a client to resume on any node.

After authentication the gateway sends a NEW_TICKET record::

    u32 lifetime_s || ticket_id[16] || vec16 sealed_ticket

Both sides derive the ticket's pre-shared key from the session's resumption secret::

    psk = ExpandLabel(resumption_secret, "ticket psk", ticket_id)

``sealed_ticket`` is opaque to the client: the gateway's ticket sealer (an AEAD under a
ticket key every node shares, rotated by the key store) over::

    u8 version (=1) | ticket_id[16] | u16 suite_id | u64 issued_ms | u64 expires_ms
    | psk[32] | vec16 principal

with associated data ``"plexichat ticket v1"``. ``principal`` is the gateway's own
serialisation of who the client authenticated as, so a resumed session is authenticated
without sending the token again. A ticket is single use: the gateway claims
``ticket_id`` in a shared ledger (Redis in a cluster) before accepting it.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from crypto.errors import RecordError, TicketRejected
from crypto.keyschedule import expand_label

TICKET_AAD = b"plexichat ticket v1"
TICKET_ID_SIZE = 16
PSK_SIZE = 32
MAX_PRINCIPAL = 4096
MAX_SEALED_TICKET = 8192
_FIXED = struct.Struct(">B16sHQQ32sH")


class TicketSealer(Protocol):
    """Seals and opens tickets; ``open`` raises any exception on a bad blob."""

    def seal(self, plaintext: bytes, aad: bytes) -> bytes: ...

    def open(self, blob: bytes, aad: bytes) -> bytes: ...


class AeadTicketSealer:
    """ChaCha20-Poly1305 ticket sealer with a key id, so old keys still open their tickets.

    Blob: ``key_id[4] || nonce[12] || ciphertext+tag``. Nonces are random: a 96-bit random
    nonce is safe for far more tickets than one key seals before rotation.
    """

    def __init__(self, keys: dict[bytes, bytes], current: bytes) -> None:
        if current not in keys or any(len(k) != 4 for k in keys):
            raise ValueError("key ids are 4 bytes and the current key must be present")
        self._keys = {kid: ChaCha20Poly1305(key) for kid, key in keys.items()}
        self._current = current

    @classmethod
    def single(cls, key: bytes) -> AeadTicketSealer:
        if len(key) != 32:
            raise ValueError("ticket key must be 32 bytes")
        return cls({b"\x00\x00\x00\x01": key}, b"\x00\x00\x00\x01")

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(12)
        kid = self._current
        return kid + nonce + self._keys[kid].encrypt(nonce, plaintext, kid + aad)

    def open(self, blob: bytes, aad: bytes) -> bytes:
        kid, nonce, ct = blob[:4], blob[4:16], blob[16:]
        aead = self._keys.get(kid)
        if aead is None or len(nonce) != 12:
            raise InvalidTag()
        return aead.decrypt(nonce, ct, kid + aad)


@dataclass(frozen=True, slots=True, repr=False)
class TicketContents:
    ticket_id: bytes
    suite_id: int
    issued_ms: int
    expires_ms: int
    psk: bytes
    principal: bytes

    def to_bytes(self) -> bytes:
        return (
            _FIXED.pack(
                1,
                self.ticket_id,
                self.suite_id,
                self.issued_ms,
                self.expires_ms,
                self.psk,
                len(self.principal),
            )
            + self.principal
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> TicketContents:
        if len(data) < _FIXED.size:
            raise TicketRejected("ticket malformed")
        version, tid, suite, issued, expires, psk, plen = _FIXED.unpack_from(data)
        principal = data[_FIXED.size :]
        if version != 1 or len(principal) != plen:
            raise TicketRejected("ticket malformed")
        return cls(tid, suite, issued, expires, psk, principal)


@dataclass(frozen=True, slots=True, repr=False)
class ResumptionTicket:
    """What a client keeps to resume: the opaque ticket and the psk (secret)."""

    ticket_id: bytes
    sealed: bytes
    psk: bytes
    suite_id: int
    expires_at_ms: int  # by the client's clock

    def __repr__(self) -> str:
        return f"<ResumptionTicket {self.ticket_id.hex()[:8]}… suite={self.suite_id:#06x}>"


def derive_psk(resumption_secret: bytes, ticket_id: bytes) -> bytes:
    return expand_label(resumption_secret, b"ticket psk", ticket_id)


def encode_new_ticket(lifetime_s: int, ticket_id: bytes, sealed: bytes) -> bytes:
    return struct.pack(">I", lifetime_s) + ticket_id + struct.pack(">H", len(sealed)) + sealed


def decode_new_ticket(payload: bytes) -> tuple[int, bytes, bytes]:
    if len(payload) < 4 + TICKET_ID_SIZE + 2:
        raise RecordError("NEW_TICKET truncated")
    (lifetime,) = struct.unpack_from(">I", payload)
    tid = payload[4 : 4 + TICKET_ID_SIZE]
    (n,) = struct.unpack_from(">H", payload, 4 + TICKET_ID_SIZE)
    sealed = payload[4 + TICKET_ID_SIZE + 2 :]
    if len(sealed) != n or not 0 < n <= MAX_SEALED_TICKET:
        raise RecordError("NEW_TICKET malformed")
    return lifetime, tid, sealed
