"""Wire format of the handshake messages: parse and serialise, nothing else.

Every handshake message is one binary WebSocket frame::

    version u8 (=1) | type u8 | body

    ClientHello (1):   client_time_ms u64 | n_suites u8 | suite_id u16 * n_suites
                       | n_shares u8 | (kem_id u16 | len u16 | public_key) * n_shares
    ServerHello (2):   suite_id u16 | server_time_ms u64 | len u16 | kem_ciphertext
                       | len u16 | certificate
    ClientKem (3):     len u16 | kem_ciphertext | finished_mac[32]
    ServerFinished (4): finished_mac[32]
    ResumeHello (5):   client_time_ms u64 | suite_id u16 | len u16 | ephemeral_public_key
                       | len u16 | sealed_ticket | binder[32]
    ResumeAccept (6):  server_time_ms u64 | len u16 | kem_ciphertext | finished_mac[32]
    ResumeFinished (7): finished_mac[32]

Integers are big-endian. A message with a bad version, type, length or any trailing byte
is refused with HandshakeError. Parsers never raise anything else on any input.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from crypto.errors import HandshakeError

VERSION = 1
MAC_SIZE = 32
MAX_SUITES = 8
MAX_SHARES = 4
MAX_HANDSHAKE_MESSAGE = 16384


class HandshakeType(IntEnum):
    CLIENT_HELLO = 1
    SERVER_HELLO = 2
    CLIENT_KEM = 3
    SERVER_FINISHED = 4
    RESUME_HELLO = 5
    RESUME_ACCEPT = 6
    RESUME_FINISHED = 7


class _Reader:
    __slots__ = ("data", "off")

    def __init__(self, data: bytes, off: int = 0) -> None:
        self.data = data
        self.off = off

    def take(self, n: int) -> bytes:
        end = self.off + n
        if end > len(self.data):
            raise HandshakeError("handshake message truncated")
        out = self.data[self.off : end]
        self.off = end
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "big")

    def u64(self) -> int:
        return int.from_bytes(self.take(8), "big")

    def vec16(self) -> bytes:
        return self.take(self.u16())

    def end(self) -> None:
        if self.off != len(self.data):
            raise HandshakeError("trailing bytes after handshake message")


def _open(data: bytes, expected: HandshakeType) -> _Reader:
    if len(data) > MAX_HANDSHAKE_MESSAGE:
        raise HandshakeError("handshake message too large")
    if len(data) < 2:
        raise HandshakeError("handshake message truncated")
    if data[0] != VERSION:
        raise HandshakeError("unsupported protocol version")
    if data[1] != expected:
        raise HandshakeError("unexpected handshake message type")
    return _Reader(data, 2)


def _head(t: HandshakeType) -> bytes:
    return bytes((VERSION, t))


def _vec16(b: bytes) -> bytes:
    return struct.pack(">H", len(b)) + b


@dataclass(frozen=True, slots=True)
class ClientHello:
    client_time_ms: int
    suites: tuple[int, ...]
    shares: tuple[tuple[int, bytes], ...]  # (kem_id, public key)

    def to_bytes(self) -> bytes:
        out = [
            _head(HandshakeType.CLIENT_HELLO),
            struct.pack(">QB", self.client_time_ms, len(self.suites)),
        ]
        out += [struct.pack(">H", s) for s in self.suites]
        out.append(bytes((len(self.shares),)))
        for kem_id, pk in self.shares:
            out.append(struct.pack(">H", kem_id) + _vec16(pk))
        return b"".join(out)

    @classmethod
    def from_bytes(cls, data: bytes) -> ClientHello:
        r = _open(data, HandshakeType.CLIENT_HELLO)
        t = r.u64()
        n = r.u8()
        if not 1 <= n <= MAX_SUITES:
            raise HandshakeError("bad number of offered suites")
        suites = tuple(r.u16() for _ in range(n))
        if len(set(suites)) != n:
            raise HandshakeError("duplicate offered suite")
        m = r.u8()
        if not 1 <= m <= MAX_SHARES:
            raise HandshakeError("bad number of key shares")
        shares = tuple((r.u16(), r.vec16()) for _ in range(m))
        if len({k for k, _ in shares}) != m:
            raise HandshakeError("duplicate key share")
        r.end()
        return cls(t, suites, shares)


@dataclass(frozen=True, slots=True)
class ServerHello:
    suite: int
    server_time_ms: int
    ciphertext: bytes
    certificate: bytes

    def to_bytes(self) -> bytes:
        return (
            _head(HandshakeType.SERVER_HELLO)
            + struct.pack(">HQ", self.suite, self.server_time_ms)
            + _vec16(self.ciphertext)
            + _vec16(self.certificate)
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> ServerHello:
        r = _open(data, HandshakeType.SERVER_HELLO)
        suite = r.u16()
        t = r.u64()
        ct = r.vec16()
        cert = r.vec16()
        r.end()
        return cls(suite, t, ct, cert)


@dataclass(frozen=True, slots=True)
class ClientKem:
    ciphertext: bytes
    mac: bytes

    def body_without_mac(self) -> bytes:
        return _head(HandshakeType.CLIENT_KEM) + _vec16(self.ciphertext)

    def to_bytes(self) -> bytes:
        return self.body_without_mac() + self.mac

    @classmethod
    def from_bytes(cls, data: bytes) -> ClientKem:
        r = _open(data, HandshakeType.CLIENT_KEM)
        ct = r.vec16()
        mac = r.take(MAC_SIZE)
        r.end()
        return cls(ct, mac)


@dataclass(frozen=True, slots=True)
class ServerFinished:
    mac: bytes

    def to_bytes(self) -> bytes:
        return _head(HandshakeType.SERVER_FINISHED) + self.mac

    @classmethod
    def from_bytes(cls, data: bytes) -> ServerFinished:
        r = _open(data, HandshakeType.SERVER_FINISHED)
        mac = r.take(MAC_SIZE)
        r.end()
        return cls(mac)


def handshake_type(data: bytes) -> int:
    """The type byte of a handshake frame (0 if too short); used to pick a flow."""
    return data[1] if len(data) >= 2 else 0


@dataclass(frozen=True, slots=True)
class ResumeHello:
    client_time_ms: int
    suite: int
    public_key: bytes
    ticket: bytes
    binder: bytes

    def body_without_binder(self) -> bytes:
        return (
            _head(HandshakeType.RESUME_HELLO)
            + struct.pack(">QH", self.client_time_ms, self.suite)
            + _vec16(self.public_key)
            + _vec16(self.ticket)
        )

    def to_bytes(self) -> bytes:
        return self.body_without_binder() + self.binder

    @classmethod
    def from_bytes(cls, data: bytes) -> ResumeHello:
        r = _open(data, HandshakeType.RESUME_HELLO)
        t = r.u64()
        suite = r.u16()
        pk = r.vec16()
        ticket = r.vec16()
        binder = r.take(MAC_SIZE)
        r.end()
        return cls(t, suite, pk, ticket, binder)


@dataclass(frozen=True, slots=True)
class ResumeAccept:
    server_time_ms: int
    ciphertext: bytes
    mac: bytes

    def body_without_mac(self) -> bytes:
        return (
            _head(HandshakeType.RESUME_ACCEPT)
            + struct.pack(">Q", self.server_time_ms)
            + _vec16(self.ciphertext)
        )

    def to_bytes(self) -> bytes:
        return self.body_without_mac() + self.mac

    @classmethod
    def from_bytes(cls, data: bytes) -> ResumeAccept:
        r = _open(data, HandshakeType.RESUME_ACCEPT)
        t = r.u64()
        ct = r.vec16()
        mac = r.take(MAC_SIZE)
        r.end()
        return cls(t, ct, mac)


@dataclass(frozen=True, slots=True)
class ResumeFinished:
    mac: bytes

    def to_bytes(self) -> bytes:
        return _head(HandshakeType.RESUME_FINISHED) + self.mac

    @classmethod
    def from_bytes(cls, data: bytes) -> ResumeFinished:
        r = _open(data, HandshakeType.RESUME_FINISHED)
        mac = r.take(MAC_SIZE)
        r.end()
        return cls(mac)
