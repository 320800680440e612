"""DESIGN.md section 9, items 1-10 and 13: one named test (or a few) per item.

Sessions run in memory (tests/session_helpers.py pumps frames between a ClientSession and a
ServerSession; a tamper hook plays the network attacker). Item 13 also runs end to end
against a real gateway on a loopback port.
"""

from __future__ import annotations

import secrets
import time
import tracemalloc
from pathlib import Path

import jwt
import pytest
from conftest import vector_path
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from gateway_helpers import running_gateway
from session_helpers import (
    FakeClock,
    completed,
    connect,
    established_pair,
    failures,
    make_pair,
)

import crypto.record as record_mod
from clients.sdk import Client, RequestError, SessionClosed
from crypto.errors import CloseCode, LimitExceeded, SequenceError
from crypto.kem import XWING, KemError
from crypto.messages import ClientHello, ClientKem, ServerHello
from crypto.record import HEADER_SIZE, RecordType
from crypto.replay import ReplayState, ReplayWindow
from crypto.session import ClientConfig, ClientSession, SessionLimits, State
from crypto.suite import MLKEM1024_CHACHA20, XWING_CHACHA20, SuitePolicy
from gateway.auth import Action, AuthError, TokenVerifier
from gateway.keyfiles import init_keys, load_credentials, load_root_public
from plexigate.devtoken import issue_token


def _set_seq(frame: bytes, seq: int) -> bytes:
    return frame[:6] + seq.to_bytes(8, "big") + frame[14:]


def _set_epoch(frame: bytes, epoch: int) -> bytes:
    return frame[:2] + epoch.to_bytes(4, "big") + frame[6:]


def _one_record(session: ClientSession | object, payload: bytes = b"x") -> bytes:
    session.send(payload)  # type: ignore[attr-defined]
    (frame,) = session.data_to_send()  # type: ignore[attr-defined]
    return bytes(frame)


# -- 1. tampered ML-KEM ciphertext: implicit rejection, then Finished fails -----------------


def test_item01_tampered_mlkem_ciphertext_implicit_rejection_fails_at_finished(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The primitive: a flipped ML-KEM byte decapsulates to a different, deterministic secret.
    key = XWING.generate()
    ss, ct = key.public_key().encapsulate()
    bad = bytearray(ct)
    bad[10] ^= 0x01  # inside the ML-KEM half
    rejected = key.decapsulate(bytes(bad))
    assert len(rejected) == 32 and rejected != ss
    assert key.decapsulate(bytes(bad)) == rejected

    # In a handshake: both KEM ciphertexts, each tampered in its ML-KEM half.
    from crypto.kem import HybridPrivateKey

    outcomes: list[str] = []
    real = HybridPrivateKey.decapsulate

    def spy(self: HybridPrivateKey, ciphertext: bytes) -> bytes:
        try:
            out = real(self, ciphertext)
        except KemError:
            outcomes.append("error")
            raise
        outcomes.append("secret")
        return out

    monkeypatch.setattr(HybridPrivateKey, "decapsulate", spy)

    def flip_client_kem(direction: str, index: int, frame: bytes) -> bytes:
        if (direction, index) == ("c2s", 1):
            ck = ClientKem.from_bytes(frame)
            ct = bytearray(ck.ciphertext)
            ct[100] ^= 0x80
            return ClientKem(bytes(ct), ck.mac).to_bytes()
        return frame

    def flip_server_hello(direction: str, index: int, frame: bytes) -> bytes:
        if (direction, index) == ("s2c", 0):
            sh = ServerHello.from_bytes(frame)
            ct = bytearray(sh.ciphertext)
            ct[5] ^= 0x01
            return ServerHello(sh.suite, sh.server_time_ms, bytes(ct), sh.certificate).to_bytes()
        return frame

    for tamper in (flip_client_kem, flip_server_hello):
        outcomes.clear()
        pair = connect(make_pair(), tamper)
        assert outcomes and "error" not in outcomes  # implicit rejection: no exception
        (fail,) = failures(pair.server_events)  # the server checks the client Finished
        assert fail.code == CloseCode.HANDSHAKE_FAILED
        assert fail.reason == "handshake verification failed"
        assert not completed(pair.client_events) and not completed(pair.server_events)


# -- 2. ML-KEM encapsulation keys with a coefficient >= q ---------------------------------


def _unreduced_mlkem768_key() -> bytes:
    import json

    data = json.loads(vector_path("wycheproof", "mlkem_768_encaps_test.json").read_text())
    for group in data["testGroups"]:
        for t in group["tests"]:
            if "ModulusOverflow" in t["flags"]:
                return bytes.fromhex(t["ek"])
    raise AssertionError("no ModulusOverflow vector")


def test_item02_mlkem_key_with_coefficient_ge_q_rejected() -> None:
    ek = _unreduced_mlkem768_key()
    x_pub = XWING.generate().public_bytes[-32:]
    with pytest.raises(KemError):
        XWING.public_key(ek + x_pub)

    # As the client's ephemeral key share: the server refuses it and the handshake aborts.
    def swap_share(direction: str, index: int, frame: bytes) -> bytes:
        if (direction, index) == ("c2s", 0):
            ch = ClientHello.from_bytes(frame)
            shares = tuple((kid, ek + pk[-32:]) for kid, pk in ch.shares)
            return ClientHello(ch.client_time_ms, ch.suites, shares).to_bytes()
        return frame

    pair = connect(make_pair(), swap_share)
    (fail,) = failures(pair.server_events)
    assert fail.code == CloseCode.HANDSHAKE_FAILED
    assert pair.server.state is State.FAILED

    # As a rekey public key inside an established session: refused, session closed.
    pair = established_pair()
    pair.client._seal(RecordType.REKEY_INIT, ek + x_pub)
    pair.pump()
    (fail,) = failures(pair.server_events)
    assert fail.code == CloseCode.RECORD_MALFORMED


# -- 3. X25519 low-order points -------------------------------------------------------------


def _low_order_points() -> list[bytes]:
    import json

    data = json.loads(vector_path("wycheproof", "x25519_test.json").read_text())
    return sorted(
        {
            bytes.fromhex(t["public"])
            for g in data["testGroups"]
            for t in g["tests"]
            if "ZeroSharedSecret" in t["flags"]
        }
    )


def test_item03_x25519_low_order_points_abort_handshake() -> None:
    points = _low_order_points()
    assert len(points) >= 10
    for point in points:

        def tamper(direction: str, index: int, frame: bytes, point: bytes = point) -> bytes:
            if (direction, index) == ("c2s", 0):
                ch = ClientHello.from_bytes(frame)
                shares = tuple((kid, pk[:-32] + point) for kid, pk in ch.shares)
                return ClientHello(ch.client_time_ms, ch.suites, shares).to_bytes()
            return frame

        pair = connect(make_pair(), tamper)
        (fail,) = failures(pair.server_events)
        assert fail.code == CloseCode.HANDSHAKE_FAILED
        assert fail.reason == "ephemeral key share rejected"  # refused at once, by KemError
        assert not pair.established


# -- 4. any changed handshake byte (incl. the offered-suite list) ------------------------


def _positions(length: int) -> list[int]:
    edge = set(range(min(length, 48))) | set(range(max(0, length - 48), length))
    return sorted(edge | set(range(0, length, 29)))


def test_item04_any_changed_handshake_byte_fails_handshake() -> None:
    ref = connect(make_pair())
    assert ref.established
    frames = ref.wire  # [CH, SH, CK, SF] with directions
    assert [d for d, _ in frames] == ["c2s", "s2c", "c2s", "s2c"]
    tried = 0
    for msg_index, (direction, frame) in enumerate(frames):
        per_dir_index = sum(1 for d, _ in frames[:msg_index] if d == direction)
        for pos in _positions(len(frame)):

            def tamper(
                d: str,
                i: int,
                f: bytes,
                direction: str = direction,
                idx: int = per_dir_index,
                pos: int = pos,
            ) -> bytes:
                if (d, i) == (direction, idx):
                    b = bytearray(f)
                    b[pos] ^= 0x01
                    return bytes(b)
                return f

            pair = connect(make_pair(), tamper)
            tried += 1
            assert pair.client.state is not State.ESTABLISHED, (msg_index, pos)
            assert not completed(pair.client_events), (msg_index, pos)
            if msg_index < 3:  # the server must not accept either
                assert pair.server.state is not State.ESTABLISHED, (msg_index, pos)
            assert failures(pair.client_events) or failures(pair.server_events)
    assert tried > 400


def test_item04_offered_suite_list_changed_in_flight_fails_handshake() -> None:
    policy = SuitePolicy((MLKEM1024_CHACHA20, XWING_CHACHA20))
    ok = connect(make_pair(client_policy=policy, server_policy=policy))
    assert ok.established and ok.client.suite == MLKEM1024_CHACHA20

    def strip(keep_share: bool, reorder: bool = False):  # type: ignore[no-untyped-def]
        def tamper(direction: str, index: int, frame: bytes) -> bytes:
            if (direction, index) != ("c2s", 0):
                return frame
            ch = ClientHello.from_bytes(frame)
            if reorder:
                return ClientHello(ch.client_time_ms, ch.suites[::-1], ch.shares).to_bytes()
            suites = tuple(s for s in ch.suites if s != MLKEM1024_CHACHA20.suite_id)
            shares = (
                ch.shares
                if keep_share
                else tuple((k, pk) for k, pk in ch.shares if k == XWING.kem_id)
            )
            return ClientHello(ch.client_time_ms, suites, shares).to_bytes()

        return tamper

    for tamper in (strip(True), strip(False), strip(True, reorder=True)):
        pair = connect(make_pair(client_policy=policy, server_policy=policy), tamper)
        assert not completed(pair.client_events) and not completed(pair.server_events)
        (fail,) = failures(pair.server_events)
        assert fail.code == CloseCode.HANDSHAKE_FAILED


# -- 5. a record echoed back to its sender --------------------------------------------------


def test_item05_record_echoed_to_sender_fails_direction_separation() -> None:
    pair = established_pair()
    frame = _one_record(pair.client, b"hello")
    pair.client.receive_data(frame)  # reflected by the network
    (fail,) = failures(pair.client.events_received())
    assert fail.code == CloseCode.DECRYPT_FAILED

    pair = established_pair()
    frame = _one_record(pair.server, b"hello")
    pair.server.receive_data(frame)
    (fail,) = failures(pair.server.events_received())
    assert fail.code == CloseCode.DECRYPT_FAILED


# -- 6. duplicate, old, reordered, far-future records; forged tags ------------------------


def test_item06_duplicate_record_rejected() -> None:
    pair = established_pair()
    frame = _one_record(pair.client)
    pair.server.receive_data(frame)
    pair.server.receive_data(frame)
    events = pair.server.events_received()
    assert len([e for e in events if not hasattr(e, "code")]) == 1
    (fail,) = failures(events)
    assert fail.code == CloseCode.REPLAY


def test_item06_old_record_rejected() -> None:
    pair = established_pair()
    frames = [_one_record(pair.client, b"%d" % i) for i in range(3)]
    for f in frames:
        pair.server.receive_data(f)
    pair.server.receive_data(frames[1])
    (fail,) = failures(pair.server.events_received())
    assert fail.code == CloseCode.REPLAY


def test_item06_reordered_records_rejected() -> None:
    pair = established_pair()
    _first, second = _one_record(pair.client), _one_record(pair.client)
    pair.server.receive_data(second)
    (fail,) = failures(pair.server.events_received())
    assert fail.code == CloseCode.SEQUENCE


def test_item06_far_future_timestamp_and_sequence_rejected() -> None:
    clock = FakeClock()
    pair = established_pair(client_clock=clock, server_clock=FakeClock(clock.now_ms))
    clock.advance(SessionLimits().max_skew_ms + 1)  # authentic record, sealed far ahead
    pair.server.receive_data(_one_record(pair.client))
    (fail,) = failures(pair.server.events_received())
    assert fail.code == CloseCode.TIMESTAMP

    pair = established_pair()
    pair.server.receive_data(_set_seq(_one_record(pair.client), 5))
    (fail,) = failures(pair.server.events_received())
    assert fail.code == CloseCode.SEQUENCE

    pair = established_pair()
    pair.server.receive_data(_set_epoch(_one_record(pair.client), 1))
    (fail,) = failures(pair.server.events_received())
    assert fail.code == CloseCode.SEQUENCE


def test_item06_forged_tag_does_not_move_replay_window() -> None:
    pair = established_pair()
    genuine = _one_record(pair.client, b"genuine")
    forged = genuine[:-1] + bytes([genuine[-1] ^ 1])
    header = record_mod.parse_record(forged)[0]
    before = pair.server.replay_state
    # The receive chain itself: a forged open raises and leaves the chain where it was ...
    recv = pair.server._recv
    assert recv is not None
    with pytest.raises(Exception) as info:
        recv.open(header, forged[:HEADER_SIZE], forged[HEADER_SIZE:])
    assert type(info.value).__name__ == "DecryptError"
    # ... so the genuine record still opens, and only it moves the window.
    assert pair.server.replay_state == before
    pair.server.receive_data(genuine)
    assert [e.data for e in pair.server.events_received()] == [b"genuine"]  # type: ignore[union-attr]
    assert pair.server.replay_state == ReplayState(
        0,
        1,
        header.timestamp_ms,
        before.offset_ms,  # type: ignore[union-attr]
    )

    # Through the session: a forged record fails it, and the window did not move.
    pair = established_pair()
    frame = _one_record(pair.client)
    before = pair.server.replay_state
    pair.server.receive_data(frame[:-1] + bytes([frame[-1] ^ 1]))
    (fail,) = failures(pair.server.events_received())
    assert fail.code == CloseCode.DECRYPT_FAILED
    assert pair.server.replay_state == before


# -- 7. sequence number at its limit: rekey, or close; never wrap -------------------------


def test_item07_sequence_limit_forces_rekey() -> None:
    limits = SessionLimits(max_seq=10, rekey_after_records=4)
    pair = established_pair(client_limits=limits, server_limits=limits)
    for i in range(60):
        pair.client.send(b"c%d" % i)
        pair.server.send(b"s%d" % i)
        pair.pump()
    assert pair.server_data() == [b"c%d" % i for i in range(60)]
    assert pair.client_data() == [b"s%d" % i for i in range(60)]
    assert pair.client.epoch >= 5 and pair.client.epoch == pair.server.epoch
    assert not failures(pair.client_events) and not failures(pair.server_events)
    seqs = [record_mod.parse_record(f)[0].seq for d, f in pair.wire[4:]]
    assert max(seqs) <= 10


def test_item07_sequence_limit_closes_when_rekey_is_suppressed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ClientSession, "_before_send", lambda self: None)
    limits = SessionLimits(max_seq=10, rekey_after_records=10)
    pair = established_pair(client_limits=limits, server_limits=limits)
    for i in range(11):  # sequence numbers 0..10 are allowed
        pair.client.send(b"%d" % i)
    pair.pump()
    assert len(pair.server_data()) == 11
    pair.client.send(b"one too many")
    assert pair.client.state is State.FAILED
    assert pair.client.failure is not None
    assert pair.client.failure.code == CloseCode.LIMIT_REACHED
    assert pair.client.data_to_send() == []  # nothing sealed with a wrapped number

    # The receiver enforces its own limit against a peer that does not.
    pair = established_pair(
        client_limits=SessionLimits(max_seq=100, rekey_after_records=100),
        server_limits=limits,
    )
    for i in range(12):
        pair.client.send(b"%d" % i)
    pair.pump()
    assert len(pair.server_data()) == 11
    (fail,) = failures(pair.server_events)
    assert fail.code == CloseCode.LIMIT_REACHED


def test_item07_epoch_limit_closes() -> None:
    limits = SessionLimits(max_epoch=2)
    pair = established_pair(client_limits=limits, server_limits=limits)
    for _ in range(2):
        pair.client.start_rekey()
        pair.pump()
    assert pair.client.epoch == 2
    pair.client.start_rekey()
    pair.pump()
    assert failures(pair.server_events)[0].code == CloseCode.LIMIT_REACHED


def test_item07_window_refuses_sequence_past_limit() -> None:
    w = ReplayWindow(ReplayState(next_seq=2**64 - 1), max_skew_ms=1000, max_seq=2**64 - 2)
    with pytest.raises(LimitExceeded):
        w.check(0, 2**64 - 1, 0, 0)
    with pytest.raises(ValueError):
        SessionLimits(max_seq=2**64)


# -- 8. client clock far ahead or behind ---------------------------------------------------


@pytest.mark.parametrize("offset_ms", [86_400_000, -86_400_000], ids=["ahead", "behind"])
def test_item08_client_clock_a_day_off_still_works(offset_ms: int) -> None:
    server_clock = FakeClock()
    client_clock = FakeClock(server_clock.now_ms + offset_ms)
    pair = established_pair(client_clock=client_clock, server_clock=server_clock)
    for i in range(5):
        pair.client.send(b"c%d" % i)
        pair.server.send(b"s%d" % i)
        client_clock.advance(1000)
        server_clock.advance(1000)
        pair.pump()
    pair.client.start_rekey()
    pair.pump()
    assert len(pair.server_data()) == 5 and len(pair.client_data()) == 5
    assert pair.client.epoch == 1
    assert not failures(pair.client_events + pair.server_events)


@pytest.mark.parametrize("offset_s", [86_400, -86_400], ids=["ahead", "behind"])
def test_item08_fresh_gateway_keys_accept_client_clock_a_day_off(
    tmp_path: Path, offset_s: int
) -> None:
    """Certificates are judged by the client's clock; keyfiles backdates not_before."""
    init_keys(tmp_path / "keys")
    creds = load_credentials(tmp_path / "keys")
    root = load_root_public(tmp_path / "keys")
    from session_helpers import Pair

    from crypto.session import ServerConfig, ServerSession

    server_clock = FakeClock()
    client = ClientSession(
        ClientConfig(root), clock=FakeClock(server_clock.now_ms + offset_s * 1000)
    )
    server = ServerSession(ServerConfig(creds), clock=server_clock)
    pair = connect(Pair(client, server))
    assert pair.established, pair.client_events


def test_item08_delayed_record_refused_then_fresh_connection_works() -> None:
    server_clock = FakeClock()
    client_clock = FakeClock(server_clock.now_ms - 3_600_000)  # an hour behind
    skew = SessionLimits().max_skew_ms
    pair = established_pair(client_clock=client_clock, server_clock=server_clock)
    frame = _one_record(pair.client, b"held back")
    server_clock.advance(skew + 1)  # the network held the record too long
    client_clock.advance(skew + 1)
    pair.server.receive_data(frame)
    (fail,) = failures(pair.server.events_received())
    assert fail.code == CloseCode.TIMESTAMP

    # The client's clock now jumps (NTP correction): records in the old session are
    # refused, but a reconnect measures the new offset; no lockout.
    client_clock.advance(3_600_000)
    again = established_pair(client_clock=client_clock, server_clock=server_clock)
    again.client.send(b"after reconnect")
    again.pump()
    assert again.server_data() == [b"after reconnect"]


# -- 9. no (key, nonce) pair repeats ------------------------------------------------------


def test_item09_no_key_nonce_pair_repeats_across_sessions_and_rekeys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pairs: list[tuple[bytes, bytes]] = []
    ctx: dict[str, object] = {"in_seal": False, "mk": None}
    orig_seal = record_mod.SendChain.seal
    orig_step = record_mod.ratchet_step
    orig_nonce = record_mod._nonce

    def seal(self: record_mod.SendChain, rtype: RecordType, payload: bytes, ts: int) -> bytes:
        ctx["in_seal"] = True
        try:
            return orig_seal(self, rtype, payload, ts)
        finally:
            ctx["in_seal"] = False

    def step(chain_key: bytes) -> tuple[bytes, bytes]:
        mk, nxt = orig_step(chain_key)
        if ctx["in_seal"]:
            ctx["mk"] = mk
        return mk, nxt

    def nonce(seq: int) -> bytes:
        n = orig_nonce(seq)
        if ctx["in_seal"]:
            assert isinstance(ctx["mk"], bytes)
            pairs.append((ctx["mk"], n))
            ctx["mk"] = None  # each key is consumed by exactly one nonce
        return n

    monkeypatch.setattr(record_mod.SendChain, "seal", seal)
    monkeypatch.setattr(record_mod, "ratchet_step", step)
    monkeypatch.setattr(record_mod, "_nonce", nonce)

    frozen = FakeClock()  # same clock in every session: no help from timestamps
    limits = SessionLimits(max_seq=20, rekey_after_records=7)
    for _ in range(12):  # reconnects
        pair = established_pair(
            client_limits=limits, server_limits=limits, client_clock=frozen, server_clock=frozen
        )
        for i in range(25):
            pair.client.send(b"%d" % i)
            pair.server.send(b"%d" % i)
            pair.pump()
        pair.client.start_rekey()
        pair.pump()
        assert pair.client.epoch >= 4
        assert len(pair.server_data()) == 25
    assert len(pairs) > 12 * 50
    assert len(set(pairs)) == len(pairs)
    keys = [k for k, _ in pairs]
    assert len(set(keys)) == len(keys)  # stronger: no message key is ever reused


# -- 10. a 2^31 jump in the sequence number, in constant memory ---------------------------


def _peak_bytes(fn: object) -> int:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
        fn()  # type: ignore[operator]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - base


def test_item10_sequence_jump_2_31_rejected_in_constant_memory() -> None:
    peaks = {}
    for jump in (1, 2**31, 2**32 - 1, 2**63):
        pair = established_pair()
        frame = _set_seq(_one_record(pair.client), jump)
        peaks[jump] = _peak_bytes(lambda frame=frame, pair=pair: pair.server.receive_data(frame))
        (fail,) = failures(pair.server.events_received())
        assert fail.code in (CloseCode.SEQUENCE, CloseCode.LIMIT_REACHED), jump
        if jump == 2**31:
            assert fail.code == CloseCode.SEQUENCE
    assert peaks[2**31] < 16_384, peaks
    assert peaks[2**31] <= 2 * peaks[1] + 4096, peaks  # no growth with the size of the gap

    window = ReplayWindow(ReplayState(), max_skew_ms=1000, max_seq=2**64 - 1)
    with pytest.raises(SequenceError):
        window.check(0, 2**31, 0, 0)
    assert window.state == ReplayState()


# -- 13. tokens -----------------------------------------------------------------------------


def _claims(**extra: object) -> dict[str, object]:
    now = int(time.time())
    c: dict[str, object] = {"sub": "alice", "iat": now, "exp": now + 600, "chans": {"a": ["sub"]}}
    c.update(extra)
    return c


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_item13_tokens_rejected_by_verifier() -> None:
    secret = secrets.token_bytes(32)
    ed = Ed25519PrivateKey.generate()
    v = TokenVerifier(hs256_secrets=(secret,), ed25519_keys=(ed.public_key(),))
    assert v.verify(jwt.encode(_claims(), secret, algorithm="HS256")).user == "alice"

    cases = {
        "alg none": jwt.encode(_claims(), None, algorithm="none"),
        "wrong HS256 key": jwt.encode(_claims(), secrets.token_bytes(32), algorithm="HS256"),
        "wrong Ed25519 key": jwt.encode(_claims(), Ed25519PrivateKey.generate(), algorithm="EdDSA"),
        "HS384": jwt.encode(_claims(), secret, algorithm="HS384"),
    }
    for name, token in cases.items():
        with pytest.raises(AuthError) as info:
            v.verify(token)
        assert info.value.close_code == CloseCode.AUTH_FAILED, name

    expired = jwt.encode(_claims(exp=int(time.time()) - 3600), secret, algorithm="HS256")
    with pytest.raises(AuthError) as info:
        v.verify(expired)
    assert info.value.close_code == CloseCode.TOKEN_EXPIRED

    principal = v.verify(jwt.encode(_claims(), secret, algorithm="HS256"))
    assert principal.can("a", Action.SUBSCRIBE)
    assert not principal.can("a", Action.PUBLISH)
    assert not principal.can("b", Action.SUBSCRIBE)


async def test_item13_tokens_rejected_end_to_end() -> None:
    async with running_gateway() as gw:
        now = time.time()
        bad_tokens = {
            CloseCode.AUTH_FAILED: [
                jwt.encode(_claims(), None, algorithm="none"),
                jwt.encode(_claims(), secrets.token_bytes(32), algorithm="HS256"),
                issue_token("alice", ed25519_key=Ed25519PrivateKey.generate()),
            ],
            CloseCode.TOKEN_EXPIRED: [gw.token("alice", now=now - 7200, ttl_s=60)],
        }
        for code, tokens in bad_tokens.items():
            for token in tokens:
                with pytest.raises(SessionClosed) as info:
                    await Client.connect(gw.url, gw.root_public, token)
                assert info.value.code == code
        c = await gw.client(gw.token("alice", {"a": ["sub", "pub", "hist"]}))
        await c.join("a")
        for call in (c.join("b"), c.publish("b", "x"), c.history("b")):
            with pytest.raises(RequestError) as rinfo:
                await call
            assert rinfo.value.code == "forbidden"
