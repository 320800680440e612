"""Regressions for what an outside security review found (each failed before its fix)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson
import pytest
import redis.asyncio as aioredis
from pki import HS256_SECRET, GatewayOptions, pki, running_gateway, token
from test_gateway_e2e import RawClient, _close_code
from websockets.asyncio.client import connect

from clients.sdk import Client, RequestError, SessionClosed
from crypto.errors import CloseCode
from gateway.auth import AuthError, TokenVerifier
from gateway.channel_directory import ChannelDirectory
from gateway.config import GatewayConfig, GatewayLimits
from gateway.server import Gateway
from gateway.stores.history import MemoryHistory
from plexigate.devtoken import issue_token

ROOT = pki().root_public


# -- H1: history replies and re-encoded bodies stay within one record ------------------------


async def test_large_history_is_trimmed_to_one_record_not_a_crash(caplog):
    caplog.set_level(logging.INFO, "plexigate")
    async with running_gateway() as gw:
        a = await Client.connect(gw.url, ROOT, token("alice"))
        bodies = [f"{i}:" + "x" * 15_990 for i in range(5)]
        for b in bodies:
            await a.publish("histbomb", b)
        reader = await Client.connect(gw.url, ROOT, token("bob"))
        got = await reader.history("histbomb")  # default limit 50: 80 KB would not fit
        assert 0 < len(got) < 5
        assert [m.body for m in got] == bodies[-len(got) :]  # the newest, oldest first
        await reader.ping()  # still connected
        await a.close()
        await reader.close()
    assert "internal error" not in caplog.text


async def test_body_that_grows_when_json_escaped_is_refused_up_front():
    async with running_gateway() as gw:
        a = await Client.connect(gw.url, ROOT, token("alice"))
        b = await Client.connect(gw.url, ROOT, token("bob"))
        await b.join("ctl")
        with pytest.raises(RequestError) as err:
            await a.publish("ctl", "\x01" * 10_903)  # 10.9 KB raw, 65 KB once escaped
        assert err.value.code == "too_large"
        await a.publish("ctl", "fine")
        assert (await asyncio.wait_for(b.recv(), 5)).body == "fine"  # nothing else arrived
        assert [m.body for m in await b.history("ctl")] == ["fine"]
        await a.close()
        await b.close()


# -- H2: in-memory history is bounded in bytes and channels ---------------------------------


def test_memory_history_evicts_least_recently_written_channels():
    evicted: list[str] = []
    h = MemoryHistory(per_channel=10, max_bytes=10_000, max_channels=5)
    h.on_evict = evicted.append
    for i in range(50):
        h.add(f"c{i}", b"x" * 1000)
    assert len(h) <= 5 and h.total_bytes <= 10_000
    assert evicted[:3] == ["c0", "c1", "c2"] and h.get("c49", 10) == [b"x" * 1000]
    for _ in range(100):  # one channel's own overflow stays within per_channel
        h.add("c49", b"y" * 100)
    assert h.total_bytes <= 10_000


async def test_publishing_to_endless_new_channels_keeps_memory_bounded():
    opts = GatewayOptions(
        limits=GatewayLimits(
            history_max_channels=20,
            history_max_bytes=200_000,
            publish_rate_per_s=10_000,
            publish_burst=10_000,
        )
    )
    async with running_gateway(opts) as gw:
        c = await Client.connect(gw.url, ROOT, token("flood"))
        for i in range(200):
            await c.publish(f"spam-{i}", "z" * 2000)
        assert gw.hub.channel_count <= 21
        assert gw.hub._mem is not None and gw.hub._mem.total_bytes <= 200_000
        await c.close()


# -- H3: a popular channel keeps accepting members -------------------------------------------


async def test_one_hundred_fifty_users_join_one_channel():
    async with running_gateway() as gw:
        for i in range(150):
            c = await Client.connect(gw.url, ROOT, token(f"user{i:04d}"))
            await c.join("bigroom")
            await c.close()
        last = await Client.connect(gw.url, ROOT, token("latecomer"))
        await last.join("bigroom")
        assert len(await last.members("bigroom")) == 151
        await last.close()


# -- M1: a session does not outlive its token -------------------------------------------------


async def test_session_that_only_rekeys_is_closed_when_its_token_expires():
    async with running_gateway() as gw:
        c = await Client.connect(gw.url, ROOT, token("ghost", ttl=2))
        await c.join("room")
        t0 = time.monotonic()
        while c.closed is None and time.monotonic() - t0 < 8:
            c.rekey()  # frames keep flowing, no application request
            await asyncio.sleep(0.3)
        assert c.closed is not None and c.closed.code == CloseCode.TOKEN_EXPIRED
        assert time.monotonic() - t0 < 5


# -- M2, M3, M4: parser and claim checks -------------------------------------------------------


@pytest.mark.parametrize("payload", [{"op": []}, {"op": {}}, b"not json"])
async def test_malformed_first_request_closes_with_auth_required(payload):
    async with running_gateway() as gw:
        async with connect(gw.url) as ws:
            raw = RawClient(ws)
            await raw.handshake()
            raw.session.send(payload if isinstance(payload, bytes) else orjson.dumps(payload))
            await raw.send_all()
            assert await _close_code(ws) == CloseCode.AUTH_REQUIRED


async def test_malformed_op_after_auth_is_an_error_reply():
    async with running_gateway() as gw:
        c = await Client.connect(gw.url, ROOT, token("alice"))
        for bad in ({"op": []}, {"op": {}}, {"op": "join", "channel": "lobby\n"}):
            with pytest.raises(RequestError) as err:
                await c._request(dict(bad))
            assert err.value.code in ("unknown_op", "bad_channel")
        await c.ping()
        await c.close()


@pytest.mark.parametrize(
    "claims",
    [
        {"sub": "eve", "exp": 10**30},
        {"sub": "mallory\n2026-01-01 INFO forged line", "exp": int(time.time()) + 60},
        {"sub": "a\x1b[31m", "exp": int(time.time()) + 60},
        {"sub": "x" * 129, "exp": int(time.time()) + 60},
        {"sub": "ok", "exp": True},
    ],
)
def test_token_claims_out_of_range_are_refused(claims):
    import jwt

    tok = jwt.encode(claims, HS256_SECRET, algorithm="HS256")
    with pytest.raises(AuthError):
        TokenVerifier(hs256_secrets=(HS256_SECRET,)).verify(tok)


async def test_huge_exp_closes_with_auth_failed_not_internal_error():
    import jwt

    tok = jwt.encode({"sub": "eve", "exp": 10**30}, HS256_SECRET, algorithm="HS256")
    async with running_gateway() as gw:
        with pytest.raises(SessionClosed) as err:
            await Client.connect(gw.url, ROOT, tok)
        assert err.value.code == CloseCode.AUTH_FAILED


def test_user_ids_of_usual_shapes_are_accepted():
    v = TokenVerifier(hs256_secrets=(HS256_SECRET,))
    for user in (
        "alice",
        "a.b-c_d",
        "user@example.com",
        "3f2c8a1e-1b2c-4d5e-8f90-1a2b3c4d5e6f",
        "team:ops+1",
    ):
        assert v.verify(issue_token(user, hs256_secret=HS256_SECRET)).user == user


# -- LOW4: ack counts only copies actually queued ---------------------------------------------


async def test_ack_does_not_count_members_being_closed():
    opts = GatewayOptions(
        limits=GatewayLimits(outbound_queue=4, publish_burst=1000, publish_rate_per_s=1000)
    )
    async with running_gateway(opts) as gw:
        pub = await Client.connect(gw.url, ROOT, token("pub"))
        async with connect(gw.url) as ws:  # joins, then never reads again
            raw = RawClient(ws)
            await raw.handshake()
            await raw.request({"op": "auth", "id": 1, "token": token("stalled")})
            await raw.feed_one()
            await raw.request({"op": "join", "id": 2, "channel": "q"})
            await raw.feed_one()
            counts = []
            for _ in range(2000):  # until kernel buffers and the queue are full
                counts.append((await pub.publish("q", "m" * 15_000))["delivered"])
                if counts[-1] == 0:
                    break
        assert counts[0] == 1 and counts[-1] == 0  # closing as a slow consumer: not counted
        await pub.close()


# -- second review: directory abuse, Redis loss -----------------------------------------------


async def test_set_settings_needs_a_joined_channel():
    async with running_gateway() as gw:
        c = await Client.connect(gw.url, ROOT, token("alice"))
        with pytest.raises(RequestError) as err:
            await c.set_settings("never-joined", {"a": "b"})
        assert err.value.code == "not_joined"
        await c.join("mine")
        await c.set_settings("mine", {"topic": "t"})
        assert await c.settings("mine") == {"topic": "t"}
        await c.close()


async def test_directory_calls_are_charged_to_a_per_user_budget():
    opts = GatewayOptions(
        limits=GatewayLimits(directory_accesses_per_s=100, directory_accesses_burst=600)
    )
    async with running_gateway(opts) as gw:
        greedy = await Client.connect(gw.url, ROOT, token("greedy"))
        codes = []
        for _ in range(5):  # members costs 256 accesses: the third call is over budget
            try:
                await greedy.members("lobby")
                codes.append("ok")
            except RequestError as exc:
                codes.append(exc.code)
        assert codes[:2] == ["ok", "ok"] and "rate_limited" in codes
        # a reconnect does not refill the budget
        await greedy.close()
        again = await Client.connect(gw.url, ROOT, token("greedy"))
        with pytest.raises(RequestError):
            await again.members("lobby")
        other = await Client.connect(gw.url, ROOT, token("polite"))
        assert await other.members("lobby") == []  # another user's budget is untouched
        await other.close()
        await again.close()


@asynccontextmanager
async def redis_directory_gateway(url: str) -> AsyncIterator[Gateway]:
    o = GatewayOptions()
    gw = Gateway(
        GatewayConfig(port=0, policy=o.policy, limits=o.limits),
        pki().credentials,
        o.verifier,
        directory=ChannelDirectory.redis(url, capacity=2**10),
    )
    await gw.start()
    try:
        yield gw
    finally:
        await gw.close()


async def test_directory_recovers_when_redis_lost_everything(redis_flushed, caplog):
    caplog.set_level(logging.WARNING, "plexigate")
    async with redis_directory_gateway(redis_flushed) as gw:
        c = await Client.connect(gw.url, ROOT, token("alice"))
        await c.join("room")
        r = aioredis.from_url(redis_flushed)
        await r.flushall()  # Redis restarted without persistence
        await r.aclose()
        await c.join("room2")  # recovers: a fresh, empty directory
        assert await c.members("room2") == ["alice"]
        assert "started an empty directory" in caplog.text
        await c.close()


async def test_directory_tampering_is_not_mistaken_for_a_wipe(redis_flushed, caplog):
    caplog.set_level(logging.WARNING, "plexigate")
    async with redis_directory_gateway(redis_flushed) as gw:
        c = await Client.connect(gw.url, ROOT, token("alice"))
        await c.join("room")
        r = aioredis.from_url(redis_flushed)
        keys = [k async for k in r.scan_iter("*chanmeta*") if not k.endswith(b"marker")]
        for k in keys:  # the operator rewrites every bucket (the marker is left in place)
            v = await r.get(k)
            await r.set(k, v[:-1] + bytes([v[-1] ^ 1]))
        await r.aclose()
        with pytest.raises(RequestError) as err:
            await c.join("r1")
        assert err.value.code == "unavailable"
        assert "failed its integrity check" in caplog.text
        await c.ping()  # the session goes on
        await c.close()
