"""Record layer: the authenticated header, and one ratcheting chain per direction.

Record (one binary WebSocket frame)::

    version u8 (=1) | type u8 | epoch u32 | sequence u64 | timestamp_ms u64 | ciphertext+tag

The 22-byte header is the AEAD associated data. The key is the ratchet's message key for
exactly (epoch, sequence); the nonce is ``0x00000000 || u64(sequence)``, so no (key, nonce)
pair can repeat even if a key were reused. A chain moves forward only after a successful
open, and forgets each chain key as soon as it has derived the next.
"""

from __future__ import annotations

import struct
from enum import IntEnum
from typing import NamedTuple

from cryptography.exceptions import InvalidTag

from crypto.errors import DecryptError, LimitExceeded, LocalProtocolError, RecordError
from crypto.keyschedule import ratchet_step
from crypto.messages import VERSION
from crypto.suite import AeadFactory

HEADER = struct.Struct(">BBIQQ")
HEADER_SIZE = HEADER.size  # 22
TAG_SIZE = 16
MAX_EPOCH = 2**32 - 1


class RecordType(IntEnum):
    APPLICATION = 0x10
    REKEY_INIT = 0x11  # client -> server: fresh KEM public key
    REKEY_ACK = 0x12  # server -> client: KEM ciphertext; server's sends move to epoch+1
    REKEY_FIN = 0x13  # client -> server: empty; client's sends move to epoch+1
    REKEY_REQUEST = 0x14  # server -> client: please start a rekey
    NEW_TICKET = 0x15  # server -> client: a resumption ticket (crypto/ticket.py)


_TYPES: dict[int, RecordType] = {int(t): t for t in RecordType}


class RecordHeader(NamedTuple):
    # A NamedTuple, not a frozen dataclass: one is built per record, and this is cheaper.
    type: RecordType
    epoch: int
    seq: int
    timestamp_ms: int

    def to_bytes(self) -> bytes:
        return HEADER.pack(VERSION, self.type, self.epoch, self.seq, self.timestamp_ms)


def parse_record(data: bytes) -> tuple[RecordHeader, bytes, bytes]:
    """Split a frame into (header, header bytes, ciphertext); RecordError if malformed."""
    if len(data) < HEADER_SIZE + TAG_SIZE:
        raise RecordError("record truncated")
    version, rtype, epoch, seq, ts = HEADER.unpack_from(data)
    if version != VERSION:
        raise RecordError("unsupported record version")
    rt = _TYPES.get(rtype)
    if rt is None:
        raise RecordError("unknown record type")
    return RecordHeader(rt, epoch, seq, ts), data[:HEADER_SIZE], data[HEADER_SIZE:]


def _nonce(seq: int) -> bytes:
    return b"\x00\x00\x00\x00" + seq.to_bytes(8, "big")


class SendChain:
    """Seals records for one direction of one epoch."""

    __slots__ = ("_aead", "_chain_key", "epoch", "max_seq", "next_seq")

    def __init__(self, aead: AeadFactory, chain_key: bytes, epoch: int, max_seq: int) -> None:
        self._aead = aead
        self._chain_key: bytes | None = chain_key
        self.epoch = epoch
        self.next_seq = 0
        self.max_seq = max_seq

    def seal(self, rtype: RecordType, payload: bytes, timestamp_ms: int) -> bytes:
        if self._chain_key is None:
            raise LocalProtocolError("send chain is closed")
        seq = self.next_seq
        if seq > self.max_seq:
            raise LimitExceeded("sequence limit reached; rekey or close")
        header = HEADER.pack(VERSION, rtype, self.epoch, seq, timestamp_ms)
        mk, self._chain_key = ratchet_step(self._chain_key)
        self.next_seq = seq + 1
        return header + self._aead(mk).encrypt(_nonce(seq), payload, header)

    def close(self) -> None:
        self._chain_key = None


class ReceiveChain:
    """Opens records for one direction of one epoch; advances only on success."""

    __slots__ = ("_aead", "_chain_key", "epoch")

    def __init__(self, aead: AeadFactory, chain_key: bytes, epoch: int) -> None:
        self._aead = aead
        self._chain_key: bytes | None = chain_key
        self.epoch = epoch

    def open(self, header: RecordHeader, header_bytes: bytes, ciphertext: bytes) -> bytes:
        """Decrypt the record the replay window has already accepted as the next one."""
        if self._chain_key is None:
            raise LocalProtocolError("receive chain is closed")
        mk, next_ck = ratchet_step(self._chain_key)
        try:
            plaintext = self._aead(mk).decrypt(_nonce(header.seq), ciphertext, header_bytes)
        except InvalidTag:
            raise DecryptError() from None
        self._chain_key = next_ck
        return plaintext

    def close(self) -> None:
        self._chain_key = None
