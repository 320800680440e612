"""Handshake state machines in memory: success per suite, and every changed byte fails."""

from __future__ import annotations

import os
import time

import pytest
from pki import handshake, pki, pump, session_pair

from crypto.cert import GatewayCertificate, RootKey
from crypto.errors import CloseCode, LocalProtocolError
from crypto.events import HandshakeComplete, SessionFailed
from crypto.session import ClientConfig, ClientSession, State
from crypto.suite import ALL_SUITES, Level, SuitePolicy


def _failed(events: list[object]) -> list[SessionFailed]:
    return [e for e in events if isinstance(e, SessionFailed)]


@pytest.mark.parametrize("suite", ALL_SUITES, ids=lambda s: s.name)
def test_each_suite_completes_and_both_sides_agree(suite):
    policy = SuitePolicy((suite,))
    c, s = session_pair(policy, policy)
    handshake(c, s)
    ce, se = c.events_received(), s.events_received()
    assert isinstance(ce[0], HandshakeComplete) and isinstance(se[0], HandshakeComplete)
    assert ce[0] == se[0] and ce[0].suite == suite.name
    assert ce[0].key_id == pki().credentials[suite.kem.kem_id].certificate.key_id
    c.send(b"ping")
    pump(c, s)
    s.send(b"pong")
    pump(s, c)
    assert [e.data for e in s.events_received()] == [b"ping"]
    assert [e.data for e in c.events_received()] == [b"pong"]


def test_server_prefers_its_own_order_among_offered():
    high = SuitePolicy.from_names(
        ["MLKEM1024X25519_CHACHA20POLY1305_SHA256", "XWING_CHACHA20POLY1305_SHA256"]
    )
    client = SuitePolicy.from_names(
        ["XWING_CHACHA20POLY1305_SHA256", "MLKEM1024X25519_CHACHA20POLY1305_SHA256"]
    )
    c, s = session_pair(client, high)
    handshake(c, s)
    assert c.suite is not None and c.suite.level is Level.HIGH


def _frames_of_handshake() -> list[bytes]:
    """The four frames of one honest handshake, in order."""
    c, s = session_pair()
    c.connect()
    frames = []
    for src, dst in ((c, s), (s, c), (c, s), (s, c)):
        out = src.data_to_send()
        assert len(out) == 1
        frames.append(out[0])
        dst.receive_data(out[0])
    return frames


def _positions(n: int) -> list[int]:
    # Every byte of the first and last 48 (types, lengths, MACs, key ends) and a stride
    # through the middle (keys, ciphertexts, certificate, signature).
    return sorted(set(range(min(n, 48))) | set(range(max(0, n - 48), n)) | set(range(0, n, 17)))


@pytest.mark.parametrize(
    "index,name", [(0, "ClientHello"), (1, "ServerHello"), (2, "ClientKem"), (3, "ServerFinished")]
)
def test_any_changed_byte_in_any_handshake_message_fails(index, name):
    n = len(_frames_of_handshake()[index])
    for pos in _positions(n):
        c, s = session_pair()
        c.connect()
        hop = 0
        for src, dst in ((c, s), (s, c), (c, s), (s, c)):
            for frame in src.data_to_send():
                if hop == index:
                    frame = frame[:pos] + bytes([frame[pos] ^ 0x01]) + frame[pos + 1 :]
                dst.receive_data(frame)
            hop += 1
        cev, sev = c.events_received(), s.events_received()
        assert not any(isinstance(e, HandshakeComplete) for e in cev), (name, pos)
        failures = _failed(cev) + _failed(sev)
        assert failures, (name, pos)
        assert failures[0].code in {
            CloseCode.HANDSHAKE_MALFORMED,
            CloseCode.HANDSHAKE_FAILED,
            CloseCode.NO_SHARED_SUITE,
            CloseCode.BAD_CERTIFICATE,
        }, (name, pos, failures[0])


def test_garbage_instead_of_client_hello():
    _, s = session_pair()
    s.receive_data(os.urandom(200))
    assert _failed(s.events_received())[0].code == CloseCode.HANDSHAKE_MALFORMED
    assert s.state is State.FAILED
    # Everything after a failure is ignored, not processed.
    s.receive_data(b"\x01\x01")
    assert s.events_received() == [] and s.data_to_send() == []


@pytest.mark.parametrize("cut", [0, 1, 2, 10, 100, -1])
def test_truncated_client_hello(cut):
    c, s = session_pair()
    c.connect()
    ch = c.data_to_send()[0]
    s.receive_data(ch[:cut])
    assert _failed(s.events_received())[0].code == CloseCode.HANDSHAKE_MALFORMED


def test_trailing_byte_after_client_hello():
    c, s = session_pair()
    c.connect()
    s.receive_data(c.data_to_send()[0] + b"\x00")
    assert _failed(s.events_received())[0].code == CloseCode.HANDSHAKE_MALFORMED


def test_no_shared_suite():
    c, s = session_pair(
        SuitePolicy.from_names(["XWING_CHACHA20POLY1305_SHA256"]),
        SuitePolicy.from_names(["MLKEM1024X25519_CHACHA20POLY1305_SHA256"], Level.HIGH),
    )
    c.connect()
    pump(c, s)
    assert _failed(s.events_received())[0].code == CloseCode.NO_SHARED_SUITE


def test_certificate_from_another_root_is_rejected():
    other = RootKey.generate()
    c = ClientSession(ClientConfig(other.public_bytes()))
    _, s = session_pair()
    c.connect()
    pump(c, s)
    pump(s, c)
    assert _failed(c.events_received())[0].code == CloseCode.BAD_CERTIFICATE


def test_expired_certificate_is_rejected():
    p = pki()
    cred = p.credentials[next(iter(p.credentials))]
    now = int(time.time())
    old = p.root.certify(cred.certificate.kem, cred.certificate.public_key, now - 100, now - 10)
    with pytest.raises(Exception, match="validity"):
        old.verify(p.root_public, now)
    parsed = GatewayCertificate.from_bytes(old.to_bytes())
    assert parsed == old


def test_client_hello_is_fresh_each_time():
    c1, _ = session_pair()
    c2, _ = session_pair()
    c1.connect()
    c2.connect()
    assert c1.data_to_send()[0] != c2.data_to_send()[0]


def test_local_misuse_raises_at_once():
    c, s = session_pair()
    with pytest.raises(LocalProtocolError):
        c.send(b"too early")
    c.connect()
    with pytest.raises(LocalProtocolError):
        c.connect()
    with pytest.raises(LocalProtocolError):
        s.send(b"too early")


def test_client_may_send_after_its_finished_before_server_finished():
    c, s = session_pair()
    c.connect()
    pump(c, s)
    pump(s, c)
    assert c.state is State.WAIT_SERVER_FINISHED
    c.send(b"early data")  # keys are forward secret and bound to the gateway's key
    pump(c, s)
    assert [getattr(e, "data", None) for e in s.events_received()][-1] == b"early data"
