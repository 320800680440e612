"""Sessions: one handshake machine plus the record layer, with in-band rekeying.

The boundary has four verbs, as in ``websockets``: :meth:`receive_data` takes one frame
from the peer, :meth:`events_received` and :meth:`data_to_send` hand over (and empty) what
came out, and :meth:`send` queues application data. Bad bytes from the peer never raise
out of ``receive_data``: the session records a :class:`SessionFailed` event with a close
code and ignores everything after. Local misuse raises :class:`LocalProtocolError` at once.

Rekey (client initiates; the server can ask with REKEY_REQUEST)::

    C -> S  REKEY_INIT(pk)   in c2s epoch e
    S -> C  REKEY_ACK(ct)    in s2c epoch e; server then sends in e+1
    C -> S  REKEY_FIN()      in c2s epoch e; client then sends in e+1

    epoch_{e+1} = HKDF-Extract(epoch_e, ss || H(u32(e+1) || pk || ct))
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum

from crypto.errors import (
    HandshakeError,
    LimitExceeded,
    LocalProtocolError,
    RecordError,
    SessionError,
    TicketRejected,
)
from crypto.events import (
    ApplicationData,
    Event,
    HandshakeComplete,
    KeyUpdated,
    ResumptionRequested,
    SessionFailed,
    TicketReceived,
)
from crypto.handshake import (
    ClientHandshake,
    GatewayCredential,
    HandshakeResult,
    ServerHandshake,
    rekey_transcript,
)
from crypto.kem import HybridPrivateKey, KemError, KemId
from crypto.keyschedule import chain_keys, next_epoch_secret
from crypto.messages import HandshakeType, handshake_type
from crypto.record import (
    MAX_EPOCH,
    ReceiveChain,
    RecordType,
    SendChain,
    parse_record,
)
from crypto.replay import ReplayState, ReplayWindow
from crypto.resumption import NO_KEY_ID, ClientResumption, ServerResumption, new_ticket_id
from crypto.suite import Suite, SuitePolicy
from crypto.ticket import (
    MAX_PRINCIPAL,
    TICKET_AAD,
    ResumptionTicket,
    TicketContents,
    TicketSealer,
    decode_new_ticket,
    derive_psk,
    encode_new_ticket,
)

Clock = Callable[[], int]


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class SessionLimits:
    """Per-session limits; defaults are documented in docs/PROTOCOL.md."""

    max_skew_ms: int = 30_000
    max_record_size: int = 65_536 + 22 + 16
    rekey_after_records: int = 100_000
    rekey_after_ms: int = 30 * 60 * 1000
    max_seq: int = 2**32 - 1  # hard: the session fails before any counter can wrap
    max_epoch: int = MAX_EPOCH

    def __post_init__(self) -> None:
        if not 0 < self.rekey_after_records <= self.max_seq < 2**64:
            raise ValueError("need 0 < rekey_after_records <= max_seq < 2**64")
        if self.max_skew_ms < 0 or self.rekey_after_ms <= 0:
            raise ValueError("bad time limits")


@dataclass(frozen=True, slots=True)
class ClientConfig:
    root_public_key: bytes
    policy: SuitePolicy = field(default_factory=SuitePolicy)
    limits: SessionLimits = field(default_factory=SessionLimits)


@dataclass(frozen=True, slots=True)
class ServerConfig:
    credentials: Mapping[KemId, GatewayCredential]
    policy: SuitePolicy = field(default_factory=SuitePolicy)
    limits: SessionLimits = field(default_factory=SessionLimits)
    ticket_sealer: TicketSealer | None = None  # None: resumption refused (full handshakes)


class State(Enum):
    START = "start"
    WAIT_SERVER_HELLO = "wait_server_hello"
    WAIT_SERVER_FINISHED = "wait_server_finished"
    WAIT_CLIENT_HELLO = "wait_client_hello"
    WAIT_CLIENT_KEM = "wait_client_kem"
    WAIT_RESUME_ACCEPT = "wait_resume_accept"
    WAIT_TICKET_CLAIM = "wait_ticket_claim"
    WAIT_RESUME_FINISHED = "wait_resume_finished"
    ESTABLISHED = "established"
    FAILED = "failed"


# Which record types each side may receive once keys exist (the type is authenticated).
_CLIENT_RECEIVES = frozenset(
    {RecordType.APPLICATION, RecordType.REKEY_ACK, RecordType.REKEY_REQUEST, RecordType.NEW_TICKET}
)
_SERVER_RECEIVES = frozenset({RecordType.APPLICATION, RecordType.REKEY_INIT, RecordType.REKEY_FIN})


class Session:
    """Common record-layer machinery; use :class:`ClientSession` or :class:`ServerSession`."""

    is_client: bool

    def __init__(self, limits: SessionLimits, clock: Clock | None) -> None:
        self.limits = limits
        self._clock = clock or wall_clock_ms
        self.state = State.START
        self.failure: SessionFailed | None = None
        self.suite: Suite | None = None
        self.epoch = 0
        self._events: list[Event] = []
        self._out: list[bytes] = []
        self._epoch_secret: bytes | None = None
        self._send: SendChain | None = None
        self._recv: ReceiveChain | None = None
        self._window: ReplayWindow | None = None
        self._epoch_started_ms = 0
        self.resumption_secret: bytes | None = None

    # -- the four verbs --------------------------------------------------------------
    def receive_data(self, data: bytes) -> None:
        if self.state is State.FAILED:
            return
        if not isinstance(data, bytes | bytearray | memoryview):
            raise LocalProtocolError("receive_data takes bytes")
        try:
            if len(data) > self.limits.max_record_size:
                raise LimitExceeded("frame too large")
            self._dispatch(bytes(data))
        except SessionError as exc:
            self._fail(exc)

    def events_received(self) -> list[Event]:
        events, self._events = self._events, []
        return events

    def data_to_send(self) -> list[bytes]:
        out, self._out = self._out, []
        return out

    def send(self, payload: bytes) -> None:
        """Queue one application record."""
        if not self.can_send:
            raise LocalProtocolError(f"cannot send application data in state {self.state.value}")
        if len(payload) > self.limits.max_record_size - 38:
            raise LocalProtocolError("payload larger than the record limit")
        try:
            self._before_send()
            self._seal(RecordType.APPLICATION, payload)
        except SessionError as exc:
            self._fail(exc)

    def tick(self) -> None:
        """Let time-based policy act (rekey after ``rekey_after_ms``); call periodically."""
        if self.state is State.ESTABLISHED:
            try:
                self._before_send()
            except SessionError as exc:
                self._fail(exc)

    # -- state ----------------------------------------------------------------------
    @property
    def can_send(self) -> bool:
        return self._send is not None and self.state is not State.FAILED

    @property
    def replay_state(self) -> ReplayState | None:
        return self._window.state if self._window else None

    def _fail(self, exc: SessionError) -> None:
        self.state = State.FAILED
        for chain in (self._send, self._recv):
            if chain is not None:
                chain.close()
        self._epoch_secret = None
        self.failure = SessionFailed(exc.close_code, exc.reason)
        self._events.append(self.failure)

    def _now(self) -> int:
        return self._clock()

    def _install(self, result: HandshakeResult) -> None:
        self.suite = result.suite
        self._epoch_secret = result.epoch_secret
        self.resumption_secret = result.resumption_secret
        c2s, s2c = chain_keys(result.epoch_secret, 0)
        send_key, recv_key = (c2s, s2c) if self.is_client else (s2c, c2s)
        aead = result.suite.aead_factory()
        self._send = SendChain(aead, send_key, 0, self.limits.max_seq)
        self._recv = ReceiveChain(aead, recv_key, 0)
        self._window = ReplayWindow(
            ReplayState(offset_ms=result.peer_offset_ms),
            self.limits.max_skew_ms,
            self.limits.max_seq,
        )
        self._epoch_started_ms = self._now()

    def _seal(self, rtype: RecordType, payload: bytes) -> None:
        assert self._send is not None
        self._out.append(self._send.seal(rtype, payload, self._now()))

    def _receive_record(self, data: bytes) -> None:
        assert self._recv is not None and self._window is not None and self.suite is not None
        header, header_bytes, ciphertext = parse_record(data)
        self._window.check(header.epoch, header.seq, header.timestamp_ms, self._now())
        plaintext = self._recv.open(header, header_bytes, ciphertext)
        self._window.commit(header.seq, header.timestamp_ms)
        allowed = _CLIENT_RECEIVES if self.is_client else _SERVER_RECEIVES
        if header.type not in allowed:
            raise RecordError("record type not allowed in this direction")
        if header.type is RecordType.APPLICATION:
            self._events.append(ApplicationData(plaintext))
        elif header.type is RecordType.NEW_TICKET:
            self._on_new_ticket(plaintext)
        else:
            self._on_rekey_record(header.type, plaintext)

    def _switch_receive(self, chain_key: bytes, epoch: int) -> None:
        assert self.suite is not None and self._window is not None and self._recv is not None
        self._recv.close()
        self._recv = ReceiveChain(self.suite.aead_factory(), chain_key, epoch)
        self._window.next_epoch()

    def _switch_send(self, chain_key: bytes, epoch: int) -> None:
        assert self.suite is not None and self._send is not None
        self._send.close()
        self._send = SendChain(self.suite.aead_factory(), chain_key, epoch, self.limits.max_seq)

    def _next_epoch(self, ss: bytes, pk: bytes, ct: bytes) -> tuple[int, bytes, bytes]:
        assert self._epoch_secret is not None
        new_epoch = self.epoch + 1
        if new_epoch > self.limits.max_epoch:
            raise LimitExceeded("epoch limit reached")
        secret = next_epoch_secret(self._epoch_secret, ss, rekey_transcript(new_epoch, pk, ct))
        self._epoch_secret = secret
        self.epoch = new_epoch
        self._epoch_started_ms = self._now()
        c2s, s2c = chain_keys(secret, new_epoch)
        return new_epoch, c2s, s2c

    def _rekey_due(self) -> bool:
        assert self._send is not None
        return (
            self._send.next_seq >= self.limits.rekey_after_records
            or self._now() - self._epoch_started_ms >= self.limits.rekey_after_ms
        )

    # -- role hooks -----------------------------------------------------------------
    def _dispatch(self, data: bytes) -> None:
        raise NotImplementedError

    def _before_send(self) -> None:
        raise NotImplementedError

    def _on_rekey_record(self, rtype: RecordType, payload: bytes) -> None:
        raise NotImplementedError

    def _on_new_ticket(self, payload: bytes) -> None:
        raise RecordError("NEW_TICKET not allowed in this direction")


class ClientSession(Session):
    is_client = True

    def __init__(
        self,
        config: ClientConfig,
        clock: Clock | None = None,
        ticket: ResumptionTicket | None = None,
    ) -> None:
        """``ticket``: resume with it instead of a full handshake (use each ticket once)."""
        super().__init__(config.limits, clock)
        self._hs: ClientHandshake | None = ClientHandshake(config.root_public_key, config.policy)
        self._resume: ClientResumption | None = (
            ClientResumption(ticket, config.policy) if ticket is not None else None
        )
        self._rekey_key: HybridPrivateKey | None = None

    def connect(self) -> None:
        """Queue the ClientHello."""
        if self.state is not State.START:
            raise LocalProtocolError("connect() called twice")
        if self._resume is not None:
            self._hs = None
            self._out.append(self._resume.hello(self._now()))
            self.state = State.WAIT_RESUME_ACCEPT
            return
        assert self._hs is not None
        self._out.append(self._hs.hello(self._now()))
        self.state = State.WAIT_SERVER_HELLO

    def start_rekey(self) -> None:
        """Begin an in-band rekey now (no-op while one is in flight)."""
        if self.state is not State.ESTABLISHED:
            raise LocalProtocolError("rekey needs an established session")
        if self._rekey_key is None:
            try:
                self._start_rekey()
            except SessionError as exc:
                self._fail(exc)

    def _start_rekey(self) -> None:
        assert self.suite is not None
        self._rekey_key = self.suite.kem.generate()
        self._seal(RecordType.REKEY_INIT, self._rekey_key.public_bytes)

    def _dispatch(self, data: bytes) -> None:
        if self.state is State.ESTABLISHED:
            self._receive_record(data)
        elif self.state is State.WAIT_RESUME_ACCEPT:
            assert self._resume is not None
            finished = self._resume.on_accept(data, self._now())
            assert self._resume.result is not None
            self._install(self._resume.result)
            self._resume = None
            self._out.append(finished)
            self.state = State.ESTABLISHED
            assert self.suite is not None
            self._events.append(HandshakeComplete(self.suite.name, NO_KEY_ID, resumed=True))
        elif self.state is State.WAIT_SERVER_HELLO:
            now = self._now()
            assert self._hs is not None
            out = self._hs.on_server_hello(data, now, now // 1000)
            assert self._hs.result is not None
            self._install(self._hs.result)
            self._out.append(out)
            self.state = State.WAIT_SERVER_FINISHED
        elif self.state is State.WAIT_SERVER_FINISHED:
            assert self._hs is not None
            result = self._hs.on_server_finished(data)
            self._hs = None  # transcript and handshake secrets are no longer needed
            self.state = State.ESTABLISHED
            self._events.append(HandshakeComplete(result.suite.name, result.key_id))
        else:
            raise HandshakeError("unexpected message before connect()")

    def _before_send(self) -> None:
        if self.state is State.ESTABLISHED and self._rekey_key is None and self._rekey_due():
            self._start_rekey()

    def _on_new_ticket(self, payload: bytes) -> None:
        assert self.resumption_secret is not None and self.suite is not None
        lifetime_s, ticket_id, sealed = decode_new_ticket(payload)
        ticket = ResumptionTicket(
            ticket_id,
            sealed,
            derive_psk(self.resumption_secret, ticket_id),
            self.suite.suite_id,
            self._now() + lifetime_s * 1000,
        )
        self._events.append(TicketReceived(ticket))

    def _on_rekey_record(self, rtype: RecordType, payload: bytes) -> None:
        if rtype is RecordType.REKEY_REQUEST:
            if payload:
                raise RecordError("REKEY_REQUEST carries no payload")
            if self._rekey_key is None:
                self._start_rekey()
            return
        # REKEY_ACK
        if self._rekey_key is None:
            raise RecordError("REKEY_ACK without a rekey in flight")
        key, self._rekey_key = self._rekey_key, None
        try:
            ss = key.decapsulate(payload)
        except KemError:
            raise RecordError("bad rekey ciphertext") from None
        epoch, c2s, s2c = self._next_epoch(ss, key.public_bytes, payload)
        self._switch_receive(s2c, epoch)
        self._seal(RecordType.REKEY_FIN, b"")
        self._switch_send(c2s, epoch)
        self._events.append(KeyUpdated(epoch))


class ServerSession(Session):
    is_client = False

    def __init__(self, config: ServerConfig, clock: Clock | None = None) -> None:
        super().__init__(config.limits, clock)
        self._hs: ServerHandshake | None = ServerHandshake(config.credentials, config.policy)
        self._sealer = config.ticket_sealer
        self._resume: ServerResumption | None = None
        self._policy = config.policy
        self.state = State.WAIT_CLIENT_HELLO
        self._pending_recv: tuple[int, bytes] | None = None
        self._rekey_requested = False

    # -- resumption ----------------------------------------------------------------------
    def accept_resumption(self) -> None:
        """The ticket was claimed (first use): answer with ResumeAccept."""
        if self.state is not State.WAIT_TICKET_CLAIM or self._resume is None:
            raise LocalProtocolError("no resumption waiting for a decision")
        try:
            self._out.append(self._resume.accept(self._now()))
            self.state = State.WAIT_RESUME_FINISHED
        except SessionError as exc:
            self._fail(exc)

    def reject_resumption(self, reason: str = "ticket already used") -> None:
        if self.state is not State.WAIT_TICKET_CLAIM:
            raise LocalProtocolError("no resumption waiting for a decision")
        self._fail(TicketRejected(reason))

    def issue_ticket(self, principal: bytes, lifetime_s: int) -> ResumptionTicket | None:
        """Seal and send a NEW_TICKET; returns None if resumption is not enabled."""
        if self.state is not State.ESTABLISHED:
            raise LocalProtocolError("tickets are issued on established sessions")
        if self._sealer is None or lifetime_s <= 0:
            return None
        if len(principal) > MAX_PRINCIPAL:
            raise LocalProtocolError("principal too large for a ticket")
        assert self.resumption_secret is not None and self.suite is not None
        now = self._now()
        tid = new_ticket_id()
        psk = derive_psk(self.resumption_secret, tid)
        contents = TicketContents(
            tid, self.suite.suite_id, now, now + lifetime_s * 1000, psk, principal
        )
        sealed = self._sealer.seal(contents.to_bytes(), TICKET_AAD)
        try:
            self._seal(RecordType.NEW_TICKET, encode_new_ticket(lifetime_s, tid, sealed))
        except SessionError as exc:
            self._fail(exc)
            return None
        return ResumptionTicket(tid, sealed, psk, self.suite.suite_id, now + lifetime_s * 1000)

    def request_rekey(self) -> None:
        if self.state is not State.ESTABLISHED:
            raise LocalProtocolError("rekey needs an established session")
        if not self._rekey_requested and self._pending_recv is None:
            self._rekey_requested = True
            try:
                self._seal(RecordType.REKEY_REQUEST, b"")
            except SessionError as exc:
                self._fail(exc)

    def _dispatch(self, data: bytes) -> None:
        if self.state is State.ESTABLISHED:
            self._receive_record(data)
        elif self.state is State.WAIT_CLIENT_HELLO:
            if handshake_type(data) == HandshakeType.RESUME_HELLO:
                if self._sealer is None:
                    raise TicketRejected("resumption is not enabled")
                self._hs = None
                self._resume = ServerResumption(self._sealer, self._policy)
                request = self._resume.on_hello(data, self._now())
                self.state = State.WAIT_TICKET_CLAIM
                self._events.append(
                    ResumptionRequested(
                        request.ticket_id, request.principal, request.issued_ms, request.expires_ms
                    )
                )
                return
            assert self._hs is not None
            self._out.append(self._hs.on_client_hello(data, self._now()))
            self.state = State.WAIT_CLIENT_KEM
        elif self.state is State.WAIT_TICKET_CLAIM:
            raise HandshakeError("message before the resumption decision")
        elif self.state is State.WAIT_RESUME_FINISHED:
            assert self._resume is not None
            result = self._resume.on_finished(data)
            self._resume = None
            self._install(result)
            self.state = State.ESTABLISHED
            self._events.append(HandshakeComplete(result.suite.name, NO_KEY_ID, resumed=True))
        else:  # WAIT_CLIENT_KEM
            assert self._hs is not None
            finished, result = self._hs.on_client_kem(data)
            self._hs = None  # transcript and handshake secrets are no longer needed
            self._install(result)
            self._out.append(finished)
            self.state = State.ESTABLISHED
            self._events.append(HandshakeComplete(result.suite.name, result.key_id))

    def _before_send(self) -> None:
        if not self._rekey_requested and self._pending_recv is None and self._rekey_due():
            self._rekey_requested = True
            self._seal(RecordType.REKEY_REQUEST, b"")

    def _on_rekey_record(self, rtype: RecordType, payload: bytes) -> None:
        assert self.suite is not None
        if rtype is RecordType.REKEY_INIT:
            if self._pending_recv is not None:
                raise RecordError("REKEY_INIT while a rekey is in flight")
            try:
                ss, ct = self.suite.kem.public_key(payload).encapsulate()
            except (KemError, ValueError):
                raise RecordError("bad rekey public key") from None
            epoch, c2s, s2c = self._next_epoch(ss, payload, ct)
            self._seal(RecordType.REKEY_ACK, ct)
            self._switch_send(s2c, epoch)
            self._pending_recv = (epoch, c2s)
            self._rekey_requested = False
            return
        # REKEY_FIN
        if self._pending_recv is None or payload:
            raise RecordError("unexpected REKEY_FIN")
        epoch, c2s = self._pending_recv
        self._pending_recv = None
        self._switch_receive(c2s, epoch)
        self._events.append(KeyUpdated(epoch))
