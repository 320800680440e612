"""End to end on real loopback sockets: two SDK clients chat; bad input gets its close code."""

from __future__ import annotations

import asyncio
import logging

import orjson
import pytest
from pki import GatewayOptions, pki, running_gateway, token
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from clients.sdk import Client
from crypto.errors import CloseCode
from crypto.events import SessionFailed
from crypto.session import ClientConfig, ClientSession
from gateway.config import GatewayLimits


async def _close_code(ws: ClientConnection, timeout: float = 5.0) -> int:
    """Wait for the gateway to close the connection; return its close code."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                await ws.recv()
    except ConnectionClosed as exc:
        assert exc.rcvd is not None, "gateway did not send a close frame"
        return exc.rcvd.code
    raise AssertionError("unreachable")


class RawClient:
    """A client that drives ClientSession by hand, so tests can tamper with frames."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.session = ClientSession(ClientConfig(pki().root_public))

    async def send_all(self) -> list[bytes]:
        frames = self.session.data_to_send()
        for f in frames:
            await self.ws.send(f)
        return frames

    async def feed_one(self) -> bytes:
        frame = await self.ws.recv()
        assert isinstance(frame, bytes)
        self.session.receive_data(frame)
        return frame

    async def handshake(self) -> None:
        self.session.connect()
        await self.send_all()
        await self.feed_one()  # ServerHello
        await self.send_all()  # ClientKem
        await self.feed_one()  # ServerFinished
        assert self.session.events_received()

    async def request(self, obj: dict) -> bytes:
        self.session.send(orjson.dumps(obj))
        (frame,) = await self.send_all()
        return frame


async def test_two_clients_chat_both_ways():
    async with running_gateway() as gw:
        alice = await Client.connect(gw.url, pki().root_public, token("alice"))
        bob = await Client.connect(gw.url, pki().root_public, token("bob"))
        await alice.join("room")
        await bob.join("room")
        sent_a = [f"alice line {i} " + "é" * i for i in range(5)]
        sent_b = [f"bob line {i}" for i in range(5)]
        for a, b in zip(sent_a, sent_b, strict=True):
            ack = await alice.publish("room", a)
            assert ack["delivered"] == 1 and ack["mid"]
            await bob.publish("room", b)
        got_b = [await asyncio.wait_for(bob.recv(), 5) for _ in sent_a]
        got_a = [await asyncio.wait_for(alice.recv(), 5) for _ in sent_b]
        assert [m.body for m in got_b] == sent_a
        assert [m.body for m in got_a] == sent_b
        assert {m.sender for m in got_b} == {"alice"} and {m.sender for m in got_a} == {"bob"}
        history = await bob.history("room", 3)
        assert [m.body for m in history] == [sent_b[3], sent_a[4], sent_b[4]]
        await alice.close()
        await bob.close()


async def test_two_clients_in_separate_tasks():
    async with running_gateway() as gw:
        ready = asyncio.Barrier(2)

        async def run(name: str, other: str) -> list[str]:
            c = await Client.connect(gw.url, pki().root_public, token(name))
            await c.join("tasks")
            await ready.wait()
            for i in range(20):
                await c.publish("tasks", f"{name}:{i}")
            got = [(await asyncio.wait_for(c.recv(), 5)).body for _ in range(20)]
            await c.close()
            return got

        got_a, got_b = await asyncio.gather(run("alice", "bob"), run("bob", "alice"))
        assert got_a == [f"bob:{i}" for i in range(20)]
        assert got_b == [f"alice:{i}" for i in range(20)]


async def _good_client_still_works(gw) -> None:
    c = await Client.connect(gw.url, pki().root_public, token("carol"))
    await c.ping()
    await c.close()


async def test_garbage_instead_of_handshake(caplog):
    caplog.set_level(logging.INFO, "plexigate")
    async with running_gateway() as gw:
        async with connect(gw.url) as ws:
            await ws.send(b"GET / HTTP/1.1\r\n\r\n" * 10)
            assert await _close_code(ws) == CloseCode.HANDSHAKE_MALFORMED
        assert "code=4001 reason=unsupported protocol version" in caplog.text
        await _good_client_still_works(gw)


async def test_truncated_handshake():
    async with running_gateway() as gw:
        async with connect(gw.url) as ws:
            raw = RawClient(ws)
            raw.session.connect()
            (hello,) = raw.session.data_to_send()
            await ws.send(hello[: len(hello) // 2])
            assert await _close_code(ws) == CloseCode.HANDSHAKE_MALFORMED
        await _good_client_still_works(gw)


@pytest.mark.parametrize("pos", [0, 1, 5, 11, 40, 700, -33, -1])
async def test_changed_byte_in_client_hello(pos):
    async with running_gateway() as gw:
        async with connect(gw.url) as ws:
            raw = RawClient(ws)
            raw.session.connect()
            (hello,) = raw.session.data_to_send()
            i = pos % len(hello)
            await ws.send(hello[:i] + bytes([hello[i] ^ 0x80]) + hello[i + 1 :])
            try:
                raw.session.receive_data(await ws.recv())
                await raw.send_all()
            except ConnectionClosed:
                pass
            assert await _close_code(ws) in (
                CloseCode.HANDSHAKE_MALFORMED,
                CloseCode.HANDSHAKE_FAILED,
                CloseCode.NO_SHARED_SUITE,
            )
        await _good_client_still_works(gw)


@pytest.mark.parametrize("pos", [2, 12, 100, 2000, -100, -1])
async def test_changed_byte_in_server_hello_fails_at_client(pos):
    async with running_gateway() as gw:
        async with connect(gw.url) as ws:
            raw = RawClient(ws)
            raw.session.connect()
            await raw.send_all()
            sh = await ws.recv()
            i = pos % len(sh)
            raw.session.receive_data(sh[:i] + bytes([sh[i] ^ 0x01]) + sh[i + 1 :])
            frames = raw.session.data_to_send()
            for f in frames:
                await ws.send(f)
            failed = [e for e in raw.session.events_received() if isinstance(e, SessionFailed)]
            if failed:  # detected at the client (certificate, KEM size, parse)
                assert failed[0].code in (
                    CloseCode.HANDSHAKE_MALFORMED,
                    CloseCode.BAD_CERTIFICATE,
                    CloseCode.HANDSHAKE_FAILED,
                )
            else:  # implicit rejection: keys differ, the gateway refuses ClientKem
                assert await _close_code(ws) == CloseCode.HANDSHAKE_FAILED
        await _good_client_still_works(gw)


@pytest.mark.parametrize("pos", [2, 3, 500, -40, -1])
async def test_changed_byte_in_client_kem(pos):
    async with running_gateway() as gw:
        async with connect(gw.url) as ws:
            raw = RawClient(ws)
            raw.session.connect()
            await raw.send_all()
            await raw.feed_one()
            (ck,) = raw.session.data_to_send()
            i = pos % len(ck)
            await ws.send(ck[:i] + bytes([ck[i] ^ 0x01]) + ck[i + 1 :])
            assert await _close_code(ws) in (
                CloseCode.HANDSHAKE_FAILED,
                CloseCode.HANDSHAKE_MALFORMED,
            )
        await _good_client_still_works(gw)


async def test_changed_byte_in_server_finished_fails_at_client():
    async with running_gateway() as gw:
        async with connect(gw.url) as ws:
            raw = RawClient(ws)
            raw.session.connect()
            await raw.send_all()
            await raw.feed_one()
            await raw.send_all()
            sf = await ws.recv()
            raw.session.receive_data(sf[:-1] + bytes([sf[-1] ^ 1]))
            failed = [e for e in raw.session.events_received() if isinstance(e, SessionFailed)]
            assert failed and failed[0].code == CloseCode.HANDSHAKE_FAILED


async def test_tampered_record():
    async with running_gateway() as gw:
        async with connect(gw.url) as ws:
            raw = RawClient(ws)
            await raw.handshake()
            raw.session.send(orjson.dumps({"op": "auth", "token": token("mallory")}))
            (rec,) = raw.session.data_to_send()
            await ws.send(rec[:-5] + bytes([rec[-5] ^ 4]) + rec[-4:])
            assert await _close_code(ws) == CloseCode.DECRYPT_FAILED
        await _good_client_still_works(gw)


async def test_replayed_record():
    async with running_gateway() as gw:
        async with connect(gw.url) as ws:
            raw = RawClient(ws)
            await raw.handshake()
            rec = await raw.request({"op": "auth", "id": 1, "token": token("mallory")})
            await raw.feed_one()  # auth_ok
            await ws.send(rec)
            assert await _close_code(ws) == CloseCode.REPLAY
        await _good_client_still_works(gw)


async def test_record_from_the_wrong_direction():
    """A gateway->client record sent back to the gateway, with the sequence it expects."""
    async with running_gateway() as gw:
        bob = await Client.connect(gw.url, pki().root_public, token("bob"))
        await bob.join("echo")
        async with connect(gw.url) as ws:
            raw = RawClient(ws)
            await raw.handshake()
            await raw.request({"op": "auth", "id": 1, "token": token("mallory")})
            await raw.feed_one()
            await raw.request({"op": "join", "id": 2, "channel": "echo"})
            await raw.feed_one()
            # c2s next sequence is 2; the channel message below arrives as s2c sequence 2.
            await bob.publish("echo", "hello")
            msg = await ws.recv()
            assert int.from_bytes(msg[6:14], "big") == 2
            await ws.send(msg)
            assert await _close_code(ws) == CloseCode.DECRYPT_FAILED
        await bob.close()


async def test_text_frame_where_binary_is_due():
    async with running_gateway() as gw:
        async with connect(gw.url) as ws:
            await ws.send("hello")
            assert await _close_code(ws) == CloseCode.UNSUPPORTED_DATA
        async with connect(gw.url) as ws:
            raw = RawClient(ws)
            await raw.handshake()
            await ws.send('{"op": "ping"}')
            assert await _close_code(ws) == CloseCode.UNSUPPORTED_DATA
        await _good_client_still_works(gw)


async def test_oversized_frame():
    opts = GatewayOptions(limits=GatewayLimits(max_frame_bytes=4096))
    async with running_gateway(opts) as gw:
        async with connect(gw.url, max_size=None) as ws:
            await ws.send(b"\x01\x01" + b"\x00" * 5000)
            assert await _close_code(ws) == CloseCode.MESSAGE_TOO_BIG
        await _good_client_still_works(gw)


async def test_client_that_sends_nothing_times_out(caplog):
    caplog.set_level(logging.INFO, "plexigate")
    opts = GatewayOptions(limits=GatewayLimits(handshake_timeout_s=0.3))
    async with running_gateway(opts) as gw:
        async with connect(gw.url) as ws:
            assert await _close_code(ws) == CloseCode.HANDSHAKE_TIMEOUT
        assert "reason=handshake timeout" in caplog.text
        # Completing the handshake but never authenticating is also bounded.
        async with connect(gw.url) as ws:
            raw = RawClient(ws)
            await raw.handshake()
            assert await _close_code(ws) == CloseCode.HANDSHAKE_TIMEOUT


async def test_request_before_auth_is_refused():
    async with running_gateway() as gw:
        async with connect(gw.url) as ws:
            raw = RawClient(ws)
            await raw.handshake()
            await raw.request({"op": "join", "id": 1, "channel": "x"})
            assert await _close_code(ws) == CloseCode.AUTH_REQUIRED


async def test_no_secret_in_logs(caplog):
    caplog.set_level(logging.DEBUG)
    tok = token("alice")
    async with running_gateway() as gw:
        c = await Client.connect(gw.url, pki().root_public, tok)
        await c.join("s")
        await c.publish("s", "top secret body")
        await c.close()
        async with connect(gw.url) as ws:
            raw = RawClient(ws)
            await raw.handshake()
            await raw.request({"op": "auth", "id": 1, "token": tok[:-3] + "AAA"})
            assert await _close_code(ws) == CloseCode.AUTH_FAILED
    text = caplog.text
    assert tok not in text and tok.split(".")[2] not in text
    assert "top secret body" not in text


async def test_idle_authenticated_connection_is_closed(caplog):
    caplog.set_level(logging.INFO, "plexigate")
    opts = GatewayOptions(limits=GatewayLimits(idle_timeout_s=0.4))
    async with running_gateway(opts) as gw:
        async with connect(gw.url) as ws:
            raw = RawClient(ws)
            await raw.handshake()
            await raw.request({"op": "auth", "id": 1, "token": token("sleepy")})
            await raw.feed_one()
            assert await _close_code(ws) == CloseCode.IDLE_TIMEOUT
        assert "reason=idle timeout" in caplog.text
        # an active client is not touched by the watchdog
        c = await Client.connect(gw.url, pki().root_public, token("busy"))
        for _ in range(8):
            await asyncio.sleep(0.1)
            await c.ping()
        await c.close()
