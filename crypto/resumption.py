"""Resumption handshake: a ticket's psk plus a fresh ephemeral KEM exchange.

    C -> S  ResumeHello     time, suite, fresh ephemeral pk_E, sealed ticket, binder
    S -> C  ResumeAccept    time, ct_E = Encaps(pk_E), server Finished
    C -> S  ResumeFinished  client Finished

Key schedule (labels as in keyschedule.py)::

    es     = HKDF-Extract(salt = "plexichat v1 resume", IKM = psk)
    binder = HMAC(ExpandLabel(es, "resume binder", ""), H(RH without binder))
    ms     = HKDF-Extract(salt = es, IKM = ss_E)
    th2 = H(RH || RA*)   fk_s = ExpandLabel(ms, "s finished", th2)  RA.mac = HMAC(fk_s, th2)
    th3 = H(RH || RA)    fk_c = ExpandLabel(ms, "c finished", th3)  RF.mac = HMAC(fk_c, th3)
    th4 = H(RH || RA || RF)
    epoch0 = ExpandLabel(ms, "epoch", th4);  res = ExpandLabel(ms, "resumption", th4)

The binder proves the client holds the psk before the gateway spends a ticket; ss_E keeps
resumed sessions forward secret even against a later theft of the ticket key. Only gateway
nodes (holders of the ticket key) can open the ticket and so compute the server Finished.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from crypto.errors import HandshakeError, HandshakeFailed, LocalProtocolError, TicketRejected
from crypto.handshake import HandshakeResult
from crypto.kem import HybridPrivateKey, KemError
from crypto.keyschedule import expand_label, finished_mac, hkdf_extract, transcript_hash, verify_mac
from crypto.messages import ResumeAccept, ResumeFinished, ResumeHello
from crypto.suite import SUITES_BY_ID, Suite, SuitePolicy
from crypto.ticket import (
    PSK_SIZE,
    TICKET_AAD,
    TICKET_ID_SIZE,
    ResumptionTicket,
    TicketContents,
    TicketSealer,
)

RESUME_SALT = b"plexichat v1 resume"
NO_KEY_ID = b"\x00" * 16  # resumed sessions authenticate by psk, not by a certified key


def _binder_key(psk: bytes) -> tuple[bytes, bytes]:
    es = hkdf_extract(RESUME_SALT, psk)
    return es, expand_label(es, b"resume binder", b"")


class ClientResumption:
    def __init__(self, ticket: ResumptionTicket, policy: SuitePolicy) -> None:
        suite = SUITES_BY_ID.get(ticket.suite_id)
        if suite is None or suite not in policy.allowed:
            raise LocalProtocolError("ticket suite not allowed by the client policy")
        self._ticket = ticket
        self._suite = suite
        self._key: HybridPrivateKey | None = None
        self._transcript: list[bytes] = []
        self._ms: bytes | None = None
        self.result: HandshakeResult | None = None

    def hello(self, now_ms: int) -> bytes:
        if self._key is not None:
            raise LocalProtocolError("hello already sent")
        self._key = self._suite.kem.generate()
        es, bk = _binder_key(self._ticket.psk)
        self._es = es
        partial = ResumeHello(
            now_ms, self._suite.suite_id, self._key.public_bytes, self._ticket.sealed, b""
        )
        body = partial.body_without_binder()
        msg = body + finished_mac(bk, transcript_hash(body))
        self._transcript.append(msg)
        return msg

    def on_accept(self, data: bytes, now_ms: int) -> bytes:
        if self._key is None or self._ms is not None:
            raise LocalProtocolError("not waiting for ResumeAccept")
        ra = ResumeAccept.from_bytes(data)
        try:
            ss_e = self._key.decapsulate(ra.ciphertext)
        except KemError:
            raise HandshakeFailed() from None
        self._key = None
        ms = hkdf_extract(self._es, ss_e)
        th2 = transcript_hash(*self._transcript, ra.body_without_mac())
        if not verify_mac(finished_mac(expand_label(ms, b"s finished", th2), th2), ra.mac):
            raise HandshakeFailed()
        self._transcript.append(data)
        th3 = transcript_hash(*self._transcript)
        rf = ResumeFinished(finished_mac(expand_label(ms, b"c finished", th3), th3)).to_bytes()
        self._transcript.append(rf)
        th4 = transcript_hash(*self._transcript)
        self._ms = ms
        self.result = HandshakeResult(
            self._suite,
            expand_label(ms, b"epoch", th4),
            expand_label(ms, b"resumption", th4),
            ra.server_time_ms - now_ms,
            NO_KEY_ID,
            th4,
        )
        return rf


@dataclass(frozen=True, slots=True)
class ResumptionRequest:
    """A ticket that passed every check but single use; the I/O layer claims it."""

    ticket_id: bytes
    principal: bytes
    issued_ms: int
    expires_ms: int


class ServerResumption:
    def __init__(self, sealer: TicketSealer, policy: SuitePolicy) -> None:
        self._sealer = sealer
        self._policy = policy
        self._transcript: list[bytes] = []
        self._pending: tuple[Suite, bytes, bytes, int] | None = None  # suite, es, pk, offset
        self._ms: bytes | None = None

    def on_hello(self, data: bytes, now_ms: int) -> ResumptionRequest:
        rh = ResumeHello.from_bytes(data)
        try:
            plain = self._sealer.open(rh.ticket, TICKET_AAD)
        except Exception:  # any failure to open is one answer: rejected, no detail
            raise TicketRejected("ticket does not open") from None
        t = TicketContents.from_bytes(plain)
        if len(t.ticket_id) != TICKET_ID_SIZE or len(t.psk) != PSK_SIZE:
            raise TicketRejected("ticket malformed")
        if t.expires_ms < now_ms:
            raise TicketRejected("ticket expired")
        suite = SUITES_BY_ID.get(t.suite_id)
        if suite is None or suite not in self._policy.allowed or rh.suite != t.suite_id:
            raise TicketRejected("ticket suite not allowed")
        if len(rh.public_key) != suite.kem.public_key_size:
            raise HandshakeError("ephemeral key has the wrong size")
        es, bk = _binder_key(t.psk)
        if not verify_mac(finished_mac(bk, transcript_hash(rh.body_without_binder())), rh.binder):
            raise HandshakeFailed("resumption binder invalid")
        self._transcript.append(data)
        self._pending = (suite, es, rh.public_key, rh.client_time_ms - now_ms)
        return ResumptionRequest(t.ticket_id, t.principal, t.issued_ms, t.expires_ms)

    def accept(self, now_ms: int) -> bytes:
        if self._pending is None:
            raise LocalProtocolError("no resumption to accept")
        suite, es, pk, _ = self._pending
        try:
            ss_e, ct = suite.kem.public_key(pk).encapsulate()
        except (KemError, ValueError):
            raise HandshakeFailed("ephemeral key share rejected") from None
        ms = hkdf_extract(es, ss_e)
        partial = ResumeAccept(now_ms, ct, b"")
        th2 = transcript_hash(*self._transcript, partial.body_without_mac())
        msg = partial.body_without_mac() + finished_mac(expand_label(ms, b"s finished", th2), th2)
        self._transcript.append(msg)
        self._ms = ms
        return msg

    def on_finished(self, data: bytes) -> HandshakeResult:
        if self._pending is None or self._ms is None:
            raise LocalProtocolError("not waiting for ResumeFinished")
        suite, _, _, offset = self._pending
        rf = ResumeFinished.from_bytes(data)
        th3 = transcript_hash(*self._transcript)
        if not verify_mac(finished_mac(expand_label(self._ms, b"c finished", th3), th3), rf.mac):
            raise HandshakeFailed()
        self._transcript.append(data)
        th4 = transcript_hash(*self._transcript)
        ms, self._ms, self._pending = self._ms, None, None
        return HandshakeResult(
            suite,
            expand_label(ms, b"epoch", th4),
            expand_label(ms, b"resumption", th4),
            offset,
            NO_KEY_ID,
            th4,
        )


def new_ticket_id() -> bytes:
    return os.urandom(TICKET_ID_SIZE)
