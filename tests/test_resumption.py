"""Resumption tickets in memory: resume, single use, tamper, expiry, fresh keys."""

from __future__ import annotations

import dataclasses
import time

import pytest
from pki import pki, pump

from crypto.errors import CloseCode, LocalProtocolError
from crypto.events import (
    ApplicationData,
    HandshakeComplete,
    ResumptionRequested,
    SessionFailed,
    TicketReceived,
)
from crypto.record import RecordType
from crypto.session import ClientConfig, ClientSession, ServerConfig, ServerSession, State
from crypto.suite import SuitePolicy
from crypto.ticket import AeadTicketSealer, ResumptionTicket

SEALER = AeadTicketSealer.single(b"T" * 32)


class Clock:
    def __init__(self) -> None:
        self.t = time.time_ns() // 1_000_000

    def __call__(self) -> int:
        return self.t


def server(clock=None, sealer=SEALER) -> ServerSession:
    return ServerSession(ServerConfig(pki().credentials, ticket_sealer=sealer), clock)


def client(ticket=None, clock=None) -> ClientSession:
    return ClientSession(ClientConfig(pki().root_public), clock, ticket)


def run(c: ClientSession, s: ServerSession, mutate=None, claim=True) -> tuple[list, list]:
    c.connect()
    cev, sev = [], []
    for _ in range(6):
        moved = pump(c, s, mutate)
        for e in s.events_received():
            sev.append(e)
            if isinstance(e, ResumptionRequested):
                s.accept_resumption() if claim else s.reject_resumption()
        moved += pump(s, c, mutate)
        cev += c.events_received()
        if not moved:
            break
    sev += s.events_received()
    return cev, sev


def full_session_with_ticket(clock=None, lifetime=3600) -> tuple[ResumptionTicket, bytes]:
    c, s = client(clock=clock), server(clock)
    run(c, s)
    issued = s.issue_ticket(b'{"sub":"alice"}', lifetime)
    pump(s, c)
    (ev,) = [e for e in c.events_received() if isinstance(e, TicketReceived)]
    assert issued is not None and ev.ticket.psk == issued.psk  # both sides derive the psk
    assert ev.ticket.ticket_id == issued.ticket_id and ev.ticket.sealed == issued.sealed
    return ev.ticket, s.resumption_secret or b""


def test_resume_works_and_carries_the_principal():
    ticket, _ = full_session_with_ticket()
    c, s = client(ticket), server()
    cev, sev = run(c, s)
    (req,) = [e for e in sev if isinstance(e, ResumptionRequested)]
    assert req.principal == b'{"sub":"alice"}' and req.ticket_id == ticket.ticket_id
    assert any(isinstance(e, HandshakeComplete) and e.resumed for e in cev)
    assert any(isinstance(e, HandshakeComplete) and e.resumed for e in sev)
    assert c.state is s.state is State.ESTABLISHED
    c.send(b"after resume")
    pump(c, s)
    s.send(b"welcome back")
    pump(s, c)
    assert [e.data for e in s.events_received() if isinstance(e, ApplicationData)] == [
        b"after resume"
    ]
    assert [e.data for e in c.events_received() if isinstance(e, ApplicationData)] == [
        b"welcome back"
    ]


def test_resumed_sessions_get_fresh_keys_each_time():
    ticket, res0 = full_session_with_ticket()
    secrets = set()
    for _ in range(3):
        c, s = client(ticket), server()
        run(c, s)  # the in-memory test does not enforce single use; the ledger does
        secrets.add(s.resumption_secret)
        assert s._epoch_secret != res0
    assert len(secrets) == 3


def test_already_used_ticket_is_rejected_with_its_close_code():
    ticket, _ = full_session_with_ticket()
    c, s = client(ticket), server()
    cev, sev = run(c, s, claim=False)
    assert [e.code for e in sev if isinstance(e, SessionFailed)] == [CloseCode.TICKET_REJECTED]
    assert not any(isinstance(e, HandshakeComplete) for e in cev)


def test_ticket_from_another_sealer_is_rejected():
    ticket, _ = full_session_with_ticket()
    c, s = client(ticket), server(sealer=AeadTicketSealer.single(b"U" * 32))
    _, sev = run(c, s)
    assert [e.code for e in sev if isinstance(e, SessionFailed)] == [CloseCode.TICKET_REJECTED]


def test_resumption_disabled_rejects():
    ticket, _ = full_session_with_ticket()
    c, s = client(ticket), server(sealer=None)
    _, sev = run(c, s)
    assert [e.code for e in sev if isinstance(e, SessionFailed)] == [CloseCode.TICKET_REJECTED]


def test_expired_ticket_is_rejected():
    clock = Clock()
    ticket, _ = full_session_with_ticket(clock, lifetime=60)
    clock.t += 61_000
    c, s = client(ticket, clock), server(clock)
    _, sev = run(c, s)
    assert [e.code for e in sev if isinstance(e, SessionFailed)] == [CloseCode.TICKET_REJECTED]


def test_wrong_psk_fails_the_binder_before_the_ticket_is_spent():
    ticket, _ = full_session_with_ticket()
    forged = dataclasses.replace(ticket, psk=b"\x00" * 32)
    c, s = client(forged), server()
    _, sev = run(c, s)
    assert not any(isinstance(e, ResumptionRequested) for e in sev)  # nothing to claim
    assert [e.code for e in sev if isinstance(e, SessionFailed)] == [CloseCode.HANDSHAKE_FAILED]


@pytest.mark.parametrize("hop", [0, 1, 2])
def test_any_changed_byte_in_any_resumption_message_fails(hop):
    ticket, _ = full_session_with_ticket()
    c0, s0 = client(ticket), server()
    c0.connect()
    frames = []
    for src, dst in ((c0, s0), (s0, c0), (c0, s0)):
        (f,) = src.data_to_send()
        frames.append(f)
        dst.receive_data(f)
        for e in s0.events_received():
            if isinstance(e, ResumptionRequested):
                s0.accept_resumption()
    n = len(frames[hop])
    positions = sorted(set(range(0, n, 7)) | set(range(max(0, n - 40), n)) | {0, 1, 2})
    for pos in positions:
        c, s = client(ticket), server()
        state = {"i": 0}

        def flip(frame: bytes, pos=pos) -> bytes:
            i = state["i"]
            state["i"] += 1
            if i != hop:
                return frame
            return frame[:pos] + bytes([frame[pos] ^ 0x01]) + frame[pos + 1 :]

        cev, sev = run(c, s, flip)
        assert not (
            any(isinstance(e, HandshakeComplete) for e in cev)
            and any(isinstance(e, HandshakeComplete) for e in sev)
        ), (hop, pos)
        assert [e for e in cev + sev if isinstance(e, SessionFailed)], (hop, pos)


def test_tickets_need_an_established_session_and_a_matching_suite():
    _, s = client(), server()
    with pytest.raises(LocalProtocolError):
        s.issue_ticket(b"x", 60)
    ticket, _ = full_session_with_ticket()
    high_only = SuitePolicy.from_names(["MLKEM1024X25519_CHACHA20POLY1305_SHA256"])
    with pytest.raises(LocalProtocolError):
        ClientSession(ClientConfig(pki().root_public, high_only), None, ticket)


def test_client_cannot_receive_new_ticket_while_server_cannot_send_it_back():
    # A NEW_TICKET sent by a client is refused by the server (direction check).
    c, s = client(), server()
    run(c, s)
    c._seal(RecordType.NEW_TICKET, b"\x00" * 30)
    pump(c, s)
    assert [e.code for e in s.events_received() if isinstance(e, SessionFailed)] == [
        CloseCode.RECORD_MALFORMED
    ]


# -- property: arbitrary bytes into the resumption states never escape as exceptions --------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_TICKET = None


def _ticket() -> ResumptionTicket:
    global _TICKET
    if _TICKET is None:
        _TICKET, _ = full_session_with_ticket()
    return _TICKET


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=1500), min_size=1, max_size=4), st.integers(0, 2))
def test_arbitrary_frames_into_resumption_states(frames: list[bytes], stage: int) -> None:
    c, s = client(_ticket()), server()
    c.connect()
    hello = c.data_to_send()[0]
    if stage >= 1:
        s.receive_data(hello)
        for e in s.events_received():
            if isinstance(e, ResumptionRequested):
                s.accept_resumption()
    for f in frames:
        s.receive_data(f)  # never raises
        c.receive_data(f)
        if stage == 2:
            s.receive_data(hello[: len(f) % (len(hello) + 1)])
    for ev in (s.events_received(), c.events_received()):
        failures = [e for e in ev if isinstance(e, SessionFailed)]
        assert len(failures) <= 1
        assert all(isinstance(e.code, CloseCode) for e in failures)
