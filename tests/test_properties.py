"""Property-based tests: parsers raise only their defined errors, and both session state
machines turn any network misbehaviour into progress or a SessionFailed event."""

from __future__ import annotations

import functools
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from session_helpers import deployment, established_pair, make_pair

from crypto.cert import GatewayCertificate
from crypto.errors import CertificateError, CloseCode, HandshakeError, RecordError, TicketRejected
from crypto.events import ApplicationData, HandshakeComplete, KeyUpdated, SessionFailed
from crypto.messages import (
    ClientHello,
    ClientKem,
    ResumeAccept,
    ResumeFinished,
    ResumeHello,
    ServerFinished,
    ServerHello,
)
from crypto.record import parse_record
from crypto.session import State
from crypto.ticket import TicketContents, decode_new_ticket
from gateway.ops import OpError, parse_request

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@functools.cache
def reference_frames() -> tuple[bytes, ...]:
    """A genuine handshake and a few records: seeds that mutate into near-valid input."""
    pair = established_pair()
    pair.client.send(b'{"op":"ping","id":1}')
    pair.server.send(b"pong")
    pair.client.start_rekey()
    pair.pump()
    return tuple(f for _, f in pair.wire)


def _near_valid() -> st.SearchStrategy[bytes]:
    seeds = st.sampled_from(reference_frames())

    def mutate(args: tuple[bytes, int, int, bytes]) -> bytes:
        frame, pos, op, junk = args
        pos %= len(frame) + 1
        if op == 0:
            return frame[:pos]
        if op == 1:
            return frame[:pos] + junk + frame[pos:]
        if op == 2:
            b = bytearray(frame)
            if pos < len(b):
                b[pos] ^= junk[0] if junk else 1
            return bytes(b)
        return frame[pos:] + frame[:pos]

    return st.tuples(seeds, st.integers(0, 10_000), st.integers(0, 3), st.binary(max_size=8)).map(
        mutate
    )


ANY_BYTES = st.one_of(st.binary(max_size=2048), _near_valid())

# -- parsers --------------------------------------------------------------------------------

PARSERS = [
    (parse_record, RecordError),
    (ClientHello.from_bytes, HandshakeError),
    (ServerHello.from_bytes, HandshakeError),
    (ClientKem.from_bytes, HandshakeError),
    (ServerFinished.from_bytes, HandshakeError),
    (GatewayCertificate.from_bytes, CertificateError),
    (ResumeHello.from_bytes, HandshakeError),
    (ResumeAccept.from_bytes, HandshakeError),
    (ResumeFinished.from_bytes, HandshakeError),
    (TicketContents.from_bytes, TicketRejected),
    (decode_new_ticket, RecordError),
]


def _parse_or_defined_error(data: bytes) -> None:
    for parse, error in PARSERS:
        for prefix in (data, *(data[:i] for i in range(0, len(data), max(1, len(data) // 64)))):
            try:
                parse(prefix)  # type: ignore[operator]
            except error:
                pass


@SETTINGS
@given(ANY_BYTES)
def test_parsers_raise_only_defined_errors(data: bytes) -> None:
    _parse_or_defined_error(data)


def test_parsers_on_every_prefix_of_genuine_messages() -> None:
    cert = deployment().credentials[1].certificate.to_bytes()  # type: ignore[index]
    for frame in (*reference_frames(), cert):
        for i in range(len(frame) + 1):
            for parse, error in PARSERS:
                try:
                    parse(frame[:i])  # type: ignore[operator]
                except error:
                    pass


@SETTINGS
@given(st.binary(max_size=4096))
def test_certificate_parse_and_verify_raise_only_certificate_error(data: bytes) -> None:
    real = deployment().credentials[1].certificate  # type: ignore[index]
    root = deployment().root_public
    blob = real.to_bytes()
    for candidate in (data, blob[: len(blob) // 2] + data, blob[:-3309] + data[:3309]):
        try:
            cert = GatewayCertificate.from_bytes(candidate)
        except CertificateError:
            continue
        with pytest.raises(CertificateError):
            cert.verify(root, real.not_before + 10)
    bad_sig = GatewayCertificate(
        real.kem, real.key_id, real.not_before, real.not_after, real.public_key, data
    )
    with pytest.raises(CertificateError):
        bad_sig.verify(root, real.not_before + 10)


JSONISH = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=40)
    | st.sampled_from(["\ud800", "a\udfff", 2**64, -(2**63) - 1, 1e308]),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@SETTINGS
@given(
    st.one_of(
        st.binary(max_size=512),
        st.builds(
            lambda op, extra: json.dumps({"op": op, **extra}).encode(),
            st.sampled_from(["auth", "join", "leave", "publish", "history", "ping", "x"]),
            st.dictionaries(
                st.sampled_from(["id", "channel", "body", "token", "limit"]), JSONISH, max_size=5
            ),
        ),
        st.text(max_size=64).map(
            lambda t: json.dumps({"op": "publish", "channel": "a", "body": t}).encode()
        ),
        st.text(max_size=64).map(
            lambda t: ('{"op":"publish","channel":"a","body":"' + t + '"}').encode(
                "utf-8", "surrogatepass"
            )
        ),
    )
)
def test_parse_request_raises_only_op_error(data: bytes) -> None:
    try:
        parse_request(data, 1024)
    except OpError:
        pass


# -- the state machines ----------------------------------------------------------------

ACTIONS = st.lists(
    st.tuples(
        st.sampled_from(["deliver", "drop", "dup", "truncate", "flip", "junk", "hold", "release"]),
        st.integers(0, 10_000),
        st.binary(min_size=1, max_size=64),
    ),
    min_size=1,
    max_size=30,
)
ALLOWED_EVENTS = (HandshakeComplete, ApplicationData, KeyUpdated, SessionFailed)


def _check_events(events: list[object]) -> None:
    failed = False
    for e in events:
        assert isinstance(e, ALLOWED_EVENTS), e
        if isinstance(e, SessionFailed):
            assert isinstance(e.code, CloseCode) and e.reason
            assert not failed, "two failures"
            failed = True
        else:
            assert not failed, "event after failure"


@SETTINGS
@given(ACTIONS, st.booleans(), st.booleans())
def test_state_machines_survive_any_network_behaviour(
    actions: list[tuple[str, int, bytes]], client_sends: bool, rekey: bool
) -> None:
    pair = make_pair()
    pair.client.connect()
    held: list[tuple[str, bytes]] = []
    events = {"c2s": [], "s2c": []}  # type: dict[str, list[object]]
    queue: list[tuple[str, bytes]] = []

    def collect() -> None:
        for d, src in (("c2s", pair.client), ("s2c", pair.server)):
            queue.extend((d, f) for f in src.data_to_send())
        events["s2c"].extend(pair.client.events_received())
        events["c2s"].extend(pair.server.events_received())

    def feed(direction: str, frame: bytes) -> None:
        dst = pair.server if direction == "c2s" else pair.client
        dst.receive_data(frame)  # must never raise
        collect()

    collect()
    for action, n, junk in actions:
        if client_sends and pair.client.state is State.ESTABLISHED:
            pair.client.send(b"app")
            if rekey:
                pair.client.start_rekey()
        if pair.server.state is State.ESTABLISHED:
            pair.server.send(b"srv")
        collect()
        if action == "release" and held:
            feed(*held.pop(n % len(held)))
            continue
        if action == "junk":
            feed("c2s" if n % 2 else "s2c", junk)
            continue
        if not queue:
            continue
        direction, frame = queue.pop(0)
        if action == "deliver":
            feed(direction, frame)
        elif action == "dup":
            feed(direction, frame)
            feed(direction, frame)
        elif action == "truncate":
            feed(direction, frame[: n % max(1, len(frame))])
        elif action == "flip":
            b = bytearray(frame)
            b[n % len(b)] ^= junk[0] or 1
            feed(direction, bytes(b))
        elif action == "hold":
            held.append((direction, frame))
        # "drop": nothing
    while queue:  # deliver the rest faithfully
        feed(*queue.pop(0))
    _check_events(events["c2s"])
    _check_events(events["s2c"])
    for s in (pair.client, pair.server):
        if s.state is State.FAILED:
            assert s.failure is not None and isinstance(s.failure.code, CloseCode)


@SETTINGS
@given(st.lists(ANY_BYTES, min_size=1, max_size=6), st.integers(0, 2))
def test_arbitrary_frames_into_every_state(frames: list[bytes], stage: int) -> None:
    """Garbage into a server/client that is fresh, mid-handshake, or established."""
    pair = make_pair()
    pair.client.connect()
    if stage >= 1:
        for f in pair.client.data_to_send():
            pair.server.receive_data(f)
    if stage >= 2:
        pair.pump()
    for target in (pair.server, pair.client):
        for f in frames:
            target.receive_data(f)
            target.receive_data(bytearray(f))
        _check_events(list(target.events_received()))
