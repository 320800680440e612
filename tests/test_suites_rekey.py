"""Suites and downgrade protection, and in-band rekeying: in memory and over real sockets."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import pytest
from gateway_helpers import running_gateway
from session_helpers import FakeClock, connect, established_pair, failures, make_pair
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import ServerConnection, serve

from clients.sdk import Client, ClientOptions, SessionClosed
from crypto.errors import CloseCode, DecryptError
from crypto.events import KeyUpdated
from crypto.keyschedule import chain_keys, ratchet_step
from crypto.messages import ClientHello
from crypto.record import ReceiveChain, RecordType, parse_record
from crypto.session import SessionLimits, State
from crypto.suite import (
    MLKEM1024_AES256GCM,
    MLKEM1024_CHACHA20,
    XWING_AES256GCM,
    XWING_CHACHA20,
    Level,
    SuitePolicy,
)
from gateway.config import GatewayConfig, GatewayLimits

BOTH = SuitePolicy((MLKEM1024_CHACHA20, XWING_CHACHA20))
HIGH_ONLY = SuitePolicy((MLKEM1024_CHACHA20, XWING_CHACHA20), min_level=Level.HIGH)
XWING_ONLY = SuitePolicy((XWING_CHACHA20,))

# -- suites and policy, in memory -------------------------------------------------------


def test_high_level_negotiates_mlkem1024_suite() -> None:
    pair = connect(make_pair(client_policy=BOTH, server_policy=HIGH_ONLY))
    assert pair.established
    assert pair.client.suite is MLKEM1024_CHACHA20 and pair.server.suite is MLKEM1024_CHACHA20
    assert HIGH_ONLY.allowed == (MLKEM1024_CHACHA20,)


@pytest.mark.parametrize(
    "suite", [XWING_CHACHA20, XWING_AES256GCM, MLKEM1024_CHACHA20, MLKEM1024_AES256GCM]
)
def test_every_suite_establishes_and_carries_data(suite: object) -> None:
    policy = SuitePolicy((suite,))  # type: ignore[arg-type]
    pair = established_pair(client_policy=policy, server_policy=policy)
    pair.client.send(b"ping")
    pair.server.send(b"pong")
    pair.client.start_rekey()
    pair.pump()
    assert pair.server_data() == [b"ping"] and pair.client_data() == [b"pong"]
    assert pair.client.epoch == 1


def test_xwing_only_client_refused_by_high_only_gateway_no_shared_suite() -> None:
    pair = connect(make_pair(client_policy=XWING_ONLY, server_policy=HIGH_ONLY))
    (fail,) = failures(pair.server_events)
    assert fail.code == CloseCode.NO_SHARED_SUITE == 4003
    assert not pair.established


def test_high_client_refuses_gateway_that_picks_a_lower_suite() -> None:
    high_client = SuitePolicy((MLKEM1024_CHACHA20,), min_level=Level.HIGH)
    pair = connect(make_pair(client_policy=high_client, server_policy=XWING_ONLY))
    (fail,) = failures(pair.server_events)
    assert fail.code == CloseCode.NO_SHARED_SUITE


def _strip_high(frame: bytes) -> bytes:
    ch = ClientHello.from_bytes(frame)
    high = {MLKEM1024_CHACHA20.suite_id, MLKEM1024_AES256GCM.suite_id}
    return ClientHello(
        ch.client_time_ms, tuple(s for s in ch.suites if s not in high), ch.shares
    ).to_bytes()


def test_downgrade_by_stripping_high_suite_in_memory_fails_at_finished() -> None:
    def tamper(direction: str, index: int, frame: bytes) -> bytes:
        return _strip_high(frame) if (direction, index) == ("c2s", 0) else frame

    pair = connect(make_pair(client_policy=BOTH, server_policy=BOTH), tamper)
    (fail,) = failures(pair.server_events)
    assert fail.code == CloseCode.HANDSHAKE_FAILED
    assert pair.client.state is not State.ESTABLISHED


# -- suites and downgrade over real sockets -------------------------------------------


@contextlib.asynccontextmanager
async def tampering_proxy(
    upstream_url: str, first_c2s: Callable[[bytes], bytes]
) -> AsyncIterator[str]:
    """A WebSocket man in the middle: rewrites the first client frame, relays close codes."""

    async def handler(down: ServerConnection) -> None:
        async with ws_connect(upstream_url, compression=None, max_size=None) as up:

            async def c2s() -> None:
                first = True
                async for msg in down:
                    if first and isinstance(msg, bytes):
                        msg, first = first_c2s(msg), False
                    await up.send(msg)

            async def s2c() -> None:
                async for msg in up:
                    await down.send(msg)

            tasks = [asyncio.create_task(c2s()), asyncio.create_task(s2c())]
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for t in tasks:
                t.cancel()
            code = up.close_code or 1000
            await down.close(code if code != 1006 else 1011, up.close_reason or "")

    async with serve(handler, "127.0.0.1", 0, compression=None, max_size=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}"


async def test_socket_high_level_gateway_negotiates_mlkem1024_and_refuses_xwing_only() -> None:
    async with running_gateway(GatewayConfig(port=0, policy=HIGH_ONLY)) as gw:
        c = await gw.client(gw.token("hi"), ClientOptions(policy=BOTH))
        assert c.suite == MLKEM1024_CHACHA20.name
        await c.ping()
        with pytest.raises(SessionClosed) as info:
            await Client.connect(gw.url, gw.root_public, None, ClientOptions(policy=XWING_ONLY))
        assert info.value.code == 4003
        assert gw.gateway.metrics.counters["close_4003"] == 1


async def test_socket_downgrade_through_tampering_proxy_fails_handshake() -> None:
    async with running_gateway(GatewayConfig(port=0, policy=BOTH)) as gw:
        async with tampering_proxy(gw.url, lambda f: f) as honest:  # the proxy itself works
            c = await Client.connect(honest, gw.root_public, gw.token("a"), ClientOptions(BOTH))
            assert c.suite == MLKEM1024_CHACHA20.name
            await c.close()
        async with tampering_proxy(gw.url, _strip_high) as evil:
            with pytest.raises(SessionClosed) as info:
                await Client.connect(evil, gw.root_public, gw.token("a"), ClientOptions(BOTH))
            assert info.value.code == CloseCode.HANDSHAKE_FAILED == 4002
        assert gw.gateway.metrics.counters["close_4002"] == 1


# -- rekey in memory --------------------------------------------------------------------


def test_rekey_old_epoch_keys_no_longer_open_new_records() -> None:
    pair = established_pair()
    pair.client.send(b"epoch 0")
    pair.pump()
    old_recv = pair.server._recv
    assert old_recv is not None and old_recv._chain_key is not None
    stolen_chain_key = old_recv._chain_key  # the next c2s chain key of epoch 0
    stolen_epoch_secret = pair.server._epoch_secret
    assert stolen_epoch_secret is not None
    pair.client.send(b"delivered in epoch 0")
    (old_frame,) = pair.client.data_to_send()
    pair.server.receive_data(old_frame)

    pair.client.start_rekey()
    pair.pump()
    assert pair.client.epoch == pair.server.epoch == 1
    assert old_recv._chain_key is None  # the old chain was erased on the switch

    pair.client.send(b"epoch 1 secret")
    (new_frame,) = pair.client.data_to_send()
    header, header_bytes, ct = parse_record(new_frame)
    assert header.epoch == 1
    aead = pair.server.suite.aead_factory()  # type: ignore[union-attr]
    # 1. the old chain key, ratcheted any number of steps, does not open it
    ck = stolen_chain_key
    for _ in range(20):
        with pytest.raises(DecryptError):
            ReceiveChain(aead, ck, 0).open(header, header_bytes, ct)
        _, ck = ratchet_step(ck)
    # 2. the old epoch secret cannot derive epoch 1 without the fresh KEM secret
    c2s_guess, _ = chain_keys(stolen_epoch_secret, 1)
    with pytest.raises(DecryptError):
        ReceiveChain(aead, c2s_guess, 1).open(header, header_bytes, ct)
    # 3. the real session opens it
    pair.server.receive_data(new_frame)
    assert pair.server.events_received()[-1].data == b"epoch 1 secret"  # type: ignore[union-attr]

    # 4. an epoch-0 record replayed after the rekey, or a new record re-labelled epoch 0
    pair.client.send(b"next")
    (nxt,) = pair.client.data_to_send()
    for bad in (old_frame, nxt[:2] + (0).to_bytes(4, "big") + nxt[6:]):
        before = pair.server.replay_state
        probe = _clone_receiver_check(pair, bad)
        assert probe == CloseCode.SEQUENCE
        assert pair.server.replay_state == before
    pair.server.receive_data(nxt[:2] + (0).to_bytes(4, "big") + nxt[6:])
    (fail,) = failures(pair.server.events_received())
    assert fail.code == CloseCode.SEQUENCE


def _clone_receiver_check(pair: object, frame: bytes) -> CloseCode:
    """Run the server's replay check on ``frame`` without failing the session."""
    from crypto.errors import SessionError

    server = pair.server  # type: ignore[attr-defined]
    header = parse_record(frame)[0]
    try:
        server._window.check(header.epoch, header.seq, header.timestamp_ms, server._now())
    except SessionError as exc:
        return exc.close_code
    raise AssertionError("record accepted")


def test_time_based_rekey_with_injected_clock() -> None:
    limits = SessionLimits(rekey_after_ms=60_000)
    clock = FakeClock()
    pair = established_pair(
        client_limits=limits,
        server_limits=SessionLimits(),
        client_clock=clock,
        server_clock=clock,
    )
    clock.advance(59_000)
    pair.client.tick()
    pair.pump()
    assert pair.client.epoch == 0
    clock.advance(1_000)
    pair.client.tick()
    pair.pump()
    assert pair.client.epoch == pair.server.epoch == 1
    assert KeyUpdated(1) in pair.client_events and KeyUpdated(1) in pair.server_events
    clock.advance(60_000)  # the timer restarts with each epoch; sending also checks it
    pair.client.send(b"after another minute")
    pair.pump()
    assert pair.client.epoch == 2 and pair.server_data() == [b"after another minute"]


def test_server_time_based_rekey_request_path() -> None:
    clock = FakeClock()
    pair = established_pair(
        server_limits=SessionLimits(rekey_after_ms=1_000), client_clock=clock, server_clock=clock
    )
    clock.advance(1_000)
    pair.server.tick()
    frames = pair.server.data_to_send()
    assert [parse_record(f)[0].type for f in frames] == [RecordType.REKEY_REQUEST]
    for f in frames:
        pair.client.receive_data(f)
    pair.pump()
    assert pair.client.epoch == pair.server.epoch == 1
    pair.server.request_rekey()  # explicit request
    pair.pump()
    assert pair.client.epoch == pair.server.epoch == 2
    pair.server.send(b"still talking")
    pair.pump()
    assert pair.client_data() == [b"still talking"]


def test_rekey_messages_out_of_place_are_refused() -> None:
    pair = established_pair()
    pair.client._seal(RecordType.REKEY_FIN, b"")  # FIN without INIT
    pair.pump()
    assert failures(pair.server_events)[0].code == CloseCode.RECORD_MALFORMED

    pair = established_pair()
    key = pair.client.suite.kem.generate()  # type: ignore[union-attr]
    pair.client._seal(RecordType.REKEY_INIT, key.public_bytes)
    pair.client._seal(RecordType.REKEY_INIT, key.public_bytes)  # second INIT in flight
    pair.pump()
    assert failures(pair.server_events)[0].code == CloseCode.RECORD_MALFORMED

    pair = established_pair()
    pair.server._seal(RecordType.REKEY_ACK, b"\x00" * 10)  # ACK nobody asked for
    pair.pump()
    assert failures(pair.client_events)[0].code == CloseCode.RECORD_MALFORMED

    pair = established_pair()
    pair.server._seal(RecordType.REKEY_INIT, b"")  # wrong direction
    pair.pump()
    assert failures(pair.client_events)[0].code == CloseCode.RECORD_MALFORMED


def test_rekey_during_traffic_both_directions_in_memory() -> None:
    pair = established_pair(
        client_limits=SessionLimits(rekey_after_records=9),
        server_limits=SessionLimits(rekey_after_records=13),
    )
    for i in range(300):
        pair.client.send(b"c%d" % i)
        pair.server.send(b"s%d" % i)
        if i % 7 == 0:
            pair.client.start_rekey()  # no-op while one is in flight
        if i % 3 == 0:
            pair.pump()
    pair.pump()
    assert pair.server_data() == [b"c%d" % i for i in range(300)]
    assert pair.client_data() == [b"s%d" % i for i in range(300)]
    assert pair.client.epoch == pair.server.epoch > 10


# -- rekey over real sockets, under concurrent traffic ---------------------------------


async def test_rekey_under_concurrent_traffic_over_sockets() -> None:
    n = 250
    config = GatewayConfig(
        port=0,
        session=SessionLimits(rekey_after_records=41),
        limits=GatewayLimits(publish_rate_per_s=1e6, publish_burst=10**6),
    )
    async with running_gateway(config) as gw:
        opts = ClientOptions(limits=SessionLimits(rekey_after_records=37))
        a = await gw.client(gw.token("a"), opts)
        b = await gw.client(gw.token("b"), opts)
        await a.join("r")
        await b.join("r")

        async def flood(c: Client, tag: str) -> None:
            pending = []
            for i in range(n):
                pending.append(asyncio.create_task(c.publish("r", f"{tag}{i}")))
                if i % 10 == 0:
                    c.rekey()  # no-op while one is in flight
                    await asyncio.sleep(0.003)  # let acks, messages and rekeys interleave
            await asyncio.gather(*pending)

        async def collect(c: Client) -> list[str]:
            return [(await c.recv()).body for _ in range(n)]

        got_a, got_b, *_ = await asyncio.wait_for(
            asyncio.gather(collect(a), collect(b), flood(a, "a"), flood(b, "b")), 60
        )
        assert got_b == [f"a{i}" for i in range(n)]
        assert got_a == [f"b{i}" for i in range(n)]
        assert a.rekeys >= 5 and b.rekeys >= 5
        assert a.session.epoch == a.rekeys
        for _ in range(100):  # the last REKEY_FINs may still be in flight
            if gw.gateway.metrics.counters["rekeys"] >= a.rekeys + b.rekeys:
                break
            await asyncio.sleep(0.01)
        assert gw.gateway.metrics.counters["rekeys"] >= a.rekeys + b.rekeys
        assert a.closed is None and b.closed is None
