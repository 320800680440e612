"""Clustering through a real Redis: two gateway nodes share pub/sub fan-out and Streams
history; Redis sees no names, users or bodies; injected or replayed envelopes are dropped;
a Redis outage makes publish answer "unavailable" and the node recovers after it."""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import pytest
import redis.asyncio as aioredis
from conftest import free_port
from pki import GatewayOptions, pki, token

from clients.sdk import Client, Message, RequestError
from gateway.channels import ChannelHub
from gateway.clusterkey import ClusterKey, ClusterKeyError
from gateway.commands._cluster import redis_stores
from gateway.config import GatewayConfig
from gateway.server import Gateway
from loadtest import redis_server

KEY = ClusterKey.from_bytes(bytes(range(32)))
CHANNEL = "war-room-7f"
USERS = ("alice-ux", "bob-ux", "carol-ux")


@asynccontextmanager
async def node(url: str, key: ClusterKey = KEY) -> AsyncIterator[Gateway]:
    bus, history = redis_stores(url, key, 100)
    o = GatewayOptions()
    gw = Gateway(GatewayConfig(port=0, policy=o.policy, limits=o.limits), pki().credentials,
                 o.verifier, bus=bus, history=history)  # fmt: skip
    await gw.start()
    try:
        yield gw
    finally:
        await gw.close()


async def connect(gw: Gateway, user: str, join: str | None = CHANNEL) -> Client:
    c = await Client.connect(gw.url, pki().root_public, token(user))
    if join:
        await c.join(join)
    return c


async def recv(c: Client, timeout: float = 3.0) -> Message:
    return await asyncio.wait_for(c.recv(), timeout)


async def nothing_more(c: Client, wait: float = 0.3) -> None:
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(c.recv(), wait)


async def test_two_nodes_exchange_messages_and_share_history(redis_flushed: str) -> None:
    async with node(redis_flushed) as a, node(redis_flushed) as b:
        a1, a2 = await connect(a, USERS[0]), await connect(a, USERS[2])
        b1 = await connect(b, USERS[1])
        ack = await a1.publish(CHANNEL, "from A")
        assert ack["delivered"] == 1  # a2: the local recipients of node A
        for c in (a2, b1):
            m = await recv(c)
            assert (m.body, m.sender, m.channel, m.mid) == ("from A", USERS[0], CHANNEL, ack["mid"])
        ack_b = await b1.publish(CHANNEL, "from B")
        for c in (a1, a2):  # both members of node A get it, once each
            assert (await recv(c)).body == "from B"
        assert ack["mid"].split("-")[0] != ack_b["mid"].split("-")[0]  # node prefixes differ
        for c in (a1, a2, b1):
            await nothing_more(c)  # no duplicate, the sender never gets its own message
        # history written through A and B reads the same from either node
        assert [m.body for m in await b1.history(CHANNEL)] == ["from A", "from B"]
        assert [m.body for m in await a2.history(CHANNEL, 1)] == ["from B"]
        # a node without local members in the channel does not receive it
        c1 = await connect(b, "dave-ux", join="elsewhere")
        await a1.publish(CHANNEL, "not for elsewhere")
        await nothing_more(c1)
        for c in (a1, a2, b1, c1):
            await c.close()


async def test_redis_holds_no_names_users_or_bodies(redis_flushed: str) -> None:
    spy = aioredis.from_url(redis_flushed)
    ps = spy.pubsub()
    await ps.psubscribe("*")
    async with node(redis_flushed) as a, node(redis_flushed) as b:
        a1, b1 = await connect(a, USERS[0]), await connect(b, USERS[1])
        for i in range(5):
            await a1.publish(CHANNEL, f"top-secret-body-{i}")
            await b1.publish(CHANNEL, f"top-secret-body-b{i}")
        for _ in range(5):
            await recv(b1)
        await a1.history(CHANNEL)
        await a1.close()
        await b1.close()
    seen: list[bytes] = []
    while (msg := await ps.get_message(timeout=0.2)) is not None:
        seen += [v for v in (msg.get("channel"), msg.get("data")) if isinstance(v, bytes)]
    await ps.aclose()
    assert any(len(s) > 40 for s in seen)  # the spy did see the sealed envelopes
    keys = [k async for k in spy.scan_iter("*")]
    assert any(k.startswith(b"plexi:hist:") for k in keys)
    for k in keys:
        seen.append(k)
        kind = await spy.type(k)
        if kind == b"stream":
            for _, fields in await spy.xrange(k):
                seen += list(fields.keys()) + list(fields.values())
        elif kind == b"string":
            seen.append(await spy.get(k) or b"")
    await spy.aclose()
    blob = b"\n".join(seen)
    for secret in (CHANNEL, *USERS[:2], "top-secret-body", "war-room"):
        assert secret.encode() not in blob, secret


async def test_injected_and_replayed_envelopes_are_dropped(
    redis_flushed: str, caplog: pytest.LogCaptureFixture
) -> None:
    spy = aioredis.from_url(redis_flushed)
    ps = spy.pubsub()
    await ps.psubscribe("plexi:bus:*")
    async with node(redis_flushed) as a, node(redis_flushed) as b:
        a1, b1 = await connect(a, USERS[0]), await connect(b, USERS[1])
        await a1.publish(CHANNEL, "genuine")
        assert (await recv(b1)).body == "genuine"
        captured = None
        while (msg := await ps.get_message(timeout=0.5)) is not None:
            if msg["type"] == "pmessage":
                captured = (msg["channel"], msg["data"])
        assert captured is not None
        topic, envelope = captured
        with caplog.at_level(logging.WARNING, "plexigate.bus"):
            # the storage operator replays the old ciphertext, flips a byte, sends garbage,
            # and moves the envelope to another channel's topic
            other = b.hub._bus.topic("other")  # type: ignore[attr-defined]
            await connect(b, "eve-ux", join="other")
            flipped = envelope[:-1] + bytes([envelope[-1] ^ 1])
            for t, data in ((topic, envelope), (topic, flipped), (topic, b"garbage" * 8),
                            (topic, b""), (other.encode(), envelope)):  # fmt: skip
                await spy.publish(t, data)
            await nothing_more(b1, 0.5)
        dropped = [r for r in caplog.records if "dropped a message from redis" in r.getMessage()]
        assert len(dropped) >= 4, [r.getMessage() for r in caplog.records]
        assert all(CHANNEL not in r.getMessage() for r in caplog.records)
        # the channel still works after the attack
        await a1.publish(CHANNEL, "still fine")
        assert (await recv(b1)).body == "still fine"
        await a1.close()
        await b1.close()
    await ps.aclose()
    await spy.aclose()


async def test_wrong_cluster_key_cannot_inject(redis_flushed: str) -> None:
    async with node(redis_flushed) as a, node(redis_flushed, ClusterKey.generate()) as rogue:
        a1 = await connect(a, USERS[0])
        r1 = await connect(rogue, USERS[1])
        await r1.publish(CHANNEL, "forged")  # other key: other topic names, and no key to seal
        await nothing_more(a1, 0.4)
        await a1.close()
        await r1.close()


def test_cluster_key_file_rules(tmp_path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "cluster.key"
    f.write_bytes(b"k" * 32)
    assert ClusterKey.from_file(f).name(b"t", b"x") == ClusterKey(b"k" * 32).name(b"t", b"x")
    f.write_text((b"\x07" * 32).hex() + "\n")
    ClusterKey.from_file(f)
    f.write_bytes(b"short-secret-value")
    with pytest.raises(ClusterKeyError) as exc:
        ClusterKey.from_file(f)
    assert "short-secret-value" not in str(exc.value)
    assert "secret" not in repr(ClusterKey(b"k" * 32)).replace("<secret>", "")


# -- Redis outage -----------------------------------------------------------------------


@contextmanager
def own_redis(port: int, tmp: str) -> Iterator[subprocess.Popen[bytes]]:
    proc = redis_server.start(port, tmp)  # a server this test may kill and restart
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait(5)


async def test_redis_outage_publish_unavailable_local_service_goes_on_then_recovers() -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    tmp = tempfile.mkdtemp(prefix="plexi-redis-outage-")
    try:
        with own_redis(port, tmp) as proc:
            async with node(url) as a, node(url) as b:
                a1, b1 = await connect(a, USERS[0]), await connect(b, USERS[1])
                await a1.publish(CHANNEL, "before")
                assert (await recv(b1)).body == "before"
                proc.kill()
                proc.wait(5)
                with pytest.raises(RequestError) as exc:
                    await a1.publish(CHANNEL, "during")
                assert exc.value.code == "unavailable"
                with pytest.raises(RequestError) as exc:
                    await a1.history(CHANNEL)
                assert exc.value.code == "unavailable"
                await a1.ping()  # the node keeps serving what needs no Redis
                await nothing_more(b1, 0.2)
                with own_redis(port, tmp):
                    deadline = time.monotonic() + 10
                    while True:  # publisher reconnects on the next batch; subscriber w/ backoff
                        try:
                            await a1.publish(CHANNEL, "after")
                            m = await recv(b1, 1.0)
                            break
                        except (RequestError, TimeoutError):
                            assert time.monotonic() < deadline, "no recovery"
                            await asyncio.sleep(0.2)
                    assert m.body == "after"
                    await b1.publish(CHANNEL, "back")
                    assert (await recv(a1)).body == "back"
                    await a1.close()
                    await b1.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_single_node_hub_unchanged_and_synchronous() -> None:
    hub = ChannelHub(10)
    assert not hub.clustered

    class M:
        def __init__(self, user: str) -> None:
            self.user = user
            self.got: list[bytes] = []

        def deliver(self, payload: bytes) -> bool:
            self.got.append(payload)
            return True

    a, b = M("a"), M("b")
    hub.join(a, "c")
    hub.join(b, "c")
    d = hub.publish(a, "c", "hi")
    assert d.delivered == 1 and len(b.got) == 1 and not a.got
    assert hub.history("c", 5) == b.got


async def test_channels_watched_while_the_subscriber_connects_are_not_lost(
    redis_flushed: str,
) -> None:
    """A join right after a node starts (its subscriber still connecting) still hears
    the other nodes: the topic is subscribed once the connection is up."""
    async with node(redis_flushed) as a, node(redis_flushed) as b:
        # watch a channel on A before its subscriber task has had a chance to connect
        bus = a.hub._bus
        bus._pubsub = None  # as during a (re)connect
        bus.watch("early")
        await bus.ready("early")
        b1 = await connect(b, USERS[1], join="early")
        a1 = await connect(a, USERS[0], join="early")
        await b1.publish("early", "heard")
        assert (await recv(a1)).body == "heard"
        await a1.close()
        await b1.close()
