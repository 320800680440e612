"""Exceptions of the sans-I/O core, each carrying the close code it maps to.

Hierarchy::

    PlexiError
    ├── LocalProtocolError        local code misused an object (raised at once)
    └── SessionError              the session cannot go on; ``close_code`` says why
        ├── HandshakeError        malformed or unexpected handshake message
        │   ├── HandshakeFailed   a Finished MAC or a KEM check failed (no detail)
        │   ├── NoSharedSuite     client and gateway share no allowed suite
        │   ├── CertificateError  the gateway certificate did not verify
        │   └── TicketRejected    resumption ticket bad, expired or already used
        ├── RecordError           malformed record header or wrong record type
        ├── DecryptError          tag did not verify (no reason, like InvalidTag)
        ├── ReplayError           duplicate or old sequence number
        ├── SequenceError         gap, far-future sequence, or wrong epoch
        ├── TimestampError        record timestamp outside the allowed skew
        └── LimitExceeded         a hard limit (sequence, epoch, size) was reached

Error messages never contain key material, tokens or plaintext. ``reason`` is a short,
fixed phrase meant for logs; peers only see the close code.
"""

from __future__ import annotations

from enum import IntEnum


class CloseCode(IntEnum):
    """WebSocket close codes used by PlexiChat (4000-4999 is the private range)."""

    NORMAL = 1000
    GOING_AWAY = 1001
    UNSUPPORTED_DATA = 1003  # text frame where a binary frame is due
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    PROTOCOL_ERROR = 4000
    HANDSHAKE_MALFORMED = 4001
    HANDSHAKE_FAILED = 4002
    NO_SHARED_SUITE = 4003
    HANDSHAKE_TIMEOUT = 4004
    BAD_CERTIFICATE = 4005
    TICKET_REJECTED = 4006
    RECORD_MALFORMED = 4010
    DECRYPT_FAILED = 4011
    REPLAY = 4012
    SEQUENCE = 4013
    TIMESTAMP = 4014
    LIMIT_REACHED = 4015
    AUTH_REQUIRED = 4020
    AUTH_FAILED = 4021
    TOKEN_EXPIRED = 4022
    TOO_MANY_CONNECTIONS = 4023
    SLOW_CONSUMER = 4030
    RATE_LIMITED = 4031
    IDLE_TIMEOUT = 4032


class PlexiError(Exception):
    """Base class of every error raised by this package."""


class LocalProtocolError(PlexiError):
    """Local code used an object wrongly (wrong state, wrong type). A bug, not an attack."""


class SessionError(PlexiError):
    """The peer sent something that ends the session."""

    close_code: CloseCode = CloseCode.PROTOCOL_ERROR
    reason: str = "protocol error"

    def __init__(self, reason: str | None = None) -> None:
        if reason is not None:
            self.reason = reason
        super().__init__(self.reason)


class HandshakeError(SessionError):
    close_code = CloseCode.HANDSHAKE_MALFORMED
    reason = "malformed handshake message"


class HandshakeFailed(HandshakeError):
    close_code = CloseCode.HANDSHAKE_FAILED
    reason = "handshake verification failed"


class NoSharedSuite(HandshakeError):
    close_code = CloseCode.NO_SHARED_SUITE
    reason = "no shared suite"


class CertificateError(HandshakeError):
    close_code = CloseCode.BAD_CERTIFICATE
    reason = "gateway certificate rejected"


class TicketRejected(HandshakeError):
    """A resumption ticket is malformed, expired, from an unknown key or already used.

    The client should fall back to a full handshake."""

    close_code = CloseCode.TICKET_REJECTED
    reason = "resumption ticket rejected"


class RecordError(SessionError):
    close_code = CloseCode.RECORD_MALFORMED
    reason = "malformed record"


class DecryptError(SessionError):
    close_code = CloseCode.DECRYPT_FAILED
    reason = "record authentication failed"


class ReplayError(SessionError):
    close_code = CloseCode.REPLAY
    reason = "replayed record"


class SequenceError(SessionError):
    close_code = CloseCode.SEQUENCE
    reason = "unexpected sequence number or epoch"


class TimestampError(SessionError):
    close_code = CloseCode.TIMESTAMP
    reason = "record timestamp outside allowed skew"


class LimitExceeded(SessionError):
    close_code = CloseCode.LIMIT_REACHED
    reason = "session limit reached"
