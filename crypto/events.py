"""Events a session hands to the I/O layer. Small, frozen, slotted."""

from __future__ import annotations

from dataclasses import dataclass

from crypto.errors import CloseCode
from crypto.ticket import ResumptionTicket


@dataclass(frozen=True, slots=True)
class HandshakeComplete:
    suite: str
    key_id: bytes  # the gateway key that was authenticated (zeros when resumed)
    resumed: bool = False


@dataclass(frozen=True, slots=True)
class ResumptionRequested:
    """Server side: a valid ticket arrived; claim ``ticket_id`` once, then accept or reject."""

    ticket_id: bytes
    principal: bytes
    issued_ms: int
    expires_ms: int


@dataclass(frozen=True, slots=True)
class TicketReceived:
    """Client side: a ticket to resume this session later (keep it secret, use it once)."""

    ticket: ResumptionTicket


@dataclass(frozen=True, slots=True)
class ApplicationData:
    data: bytes


@dataclass(frozen=True, slots=True)
class KeyUpdated:
    """Both directions moved to ``epoch``; earlier keys are erased."""

    epoch: int


@dataclass(frozen=True, slots=True)
class SessionFailed:
    """The peer broke the protocol; close the connection with ``code``."""

    code: CloseCode
    reason: str


Event = (
    HandshakeComplete
    | ApplicationData
    | KeyUpdated
    | SessionFailed
    | ResumptionRequested
    | TicketReceived
)
