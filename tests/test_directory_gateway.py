"""Channel membership and settings go through the Path ORAM directory, in memory and Redis."""

from __future__ import annotations

import redis.asyncio as aioredis
from pki import GatewayOptions, pki, running_gateway, token

from clients.sdk import Client, RequestError
from gateway.channel_directory import ChannelDirectory
from gateway.config import GatewayConfig
from gateway.server import Gateway


async def _exercise(gw: Gateway) -> None:
    root = pki().root_public
    alice = await Client.connect(gw.url, root, token("alice"))
    bob = await Client.connect(gw.url, root, token("bob", {"room": ["sub", "pub"]}))
    await alice.join("room")
    await bob.join("room")
    await alice.join("other")
    assert await alice.members("room") == ["alice", "bob"]
    assert await alice.channels() == ["other", "room"]
    await alice.set_settings("room", {"topic": "post-quantum chat", "slow_mode": 5})
    assert await bob.settings("room") == {"topic": "post-quantum chat", "slow_mode": 5}
    # bob has no grant for "other": its members and settings are not his to read
    for call in (bob.members("other"), bob.settings("other")):
        try:
            await call
            raise AssertionError("forbidden call succeeded")
        except RequestError as exc:
            assert exc.code == "forbidden"
    await bob.leave("room")
    assert await alice.members("room") == ["alice"]
    # membership is durable: it outlives the connection, and a reconnect can rejoin
    await alice.close()
    alice2 = await Client.connect(gw.url, root, token("alice"))
    assert await alice2.channels() == ["other", "room"]
    await alice2.close()
    await bob.close()


async def test_membership_and_settings_in_memory_oram():
    async with running_gateway() as gw:
        await _exercise(gw)


async def test_membership_and_settings_in_redis_oram_leak_no_names(redis_flushed):
    directory = ChannelDirectory.redis(redis_flushed, namespace="t:dir", capacity=2**10)
    o = GatewayOptions()
    gw = Gateway(GatewayConfig(port=0, policy=o.policy, limits=o.limits), pki().credentials,
                 o.verifier, directory=directory)
    await gw.start()
    try:
        await _exercise(gw)
    finally:
        await gw.close()
    r = aioredis.from_url(redis_flushed)
    keys = [k async for k in r.scan_iter("*")]
    assert keys and all(k.startswith(b"{t:dir}:") for k in keys)  # one hash slot
    blob = b"".join(keys) + b"".join([v for v in await r.mget(keys) if v])
    for secret in (b"alice", b"bob", b"room", b"other", b"post-quantum", b"topic"):
        assert secret not in blob
    await r.aclose()


async def test_bad_settings_are_refused_without_change():
    async with running_gateway() as gw:
        c = await Client.connect(gw.url, pki().root_public, token("alice"))
        await c.join("room")
        await c.set_settings("room", {"topic": "a"})
        try:
            await c.set_settings("room", {"topic": "x" * 600})
            raise AssertionError("oversized settings accepted")
        except RequestError as exc:
            assert exc.code == "too_large"
        assert await c.settings("room") == {"topic": "a"}
        await c.close()
