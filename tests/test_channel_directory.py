"""ChannelDirectory: membership and settings through the ORAM, in memory and on real Redis."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from oram_helpers import RecordingStore

from gateway.channel_directory import ChannelDirectory, DirectoryFull, RecordTooLarge


async def _exercise(d: ChannelDirectory) -> None:
    assert await d.members("general") == frozenset()
    assert await d.add_member("general", "alice") is True
    assert await d.add_member("general", "bob") is True
    assert await d.add_member("general", "alice") is False
    assert await d.add_member("random", "alice") is True
    assert await d.members("general") == {"alice", "bob"}
    assert await d.channels_of("alice") == {"general", "random"}
    assert await d.channels_of("bob") == {"general"}
    assert await d.remove_member("general", "alice") is True
    assert await d.remove_member("general", "alice") is False
    assert await d.members("general") == {"bob"}
    assert await d.channels_of("alice") == {"random"}
    assert await d.get_settings("general") == {}
    await d.set_settings("general", {"topic": "hi ✓", "history": 100, "private": False})
    assert await d.get_settings("general") == {"topic": "hi ✓", "history": 100, "private": False}
    await d.set_settings("general", {})
    assert await d.get_settings("general") == {}
    assert await d.members("general") == {"bob"}  # settings and members are separate records


async def test_memory_directory_round_trip() -> None:
    d = ChannelDirectory.memory(capacity=256)
    await _exercise(d)
    await d.aclose()


async def test_redis_directory_round_trip_and_redis_never_sees_names(redis_flushed: str) -> None:
    raw = aioredis.Redis.from_url(redis_flushed)
    await raw.set("{plexi:chanmeta}:0", b"stale bucket from an earlier process")
    d = ChannelDirectory.redis(redis_flushed, capacity=256)
    await _exercise(d)
    keys = await raw.keys("*")
    assert keys and all(k.startswith(b"{plexi:chanmeta}:") for k in keys)
    for k in keys:
        value = await raw.get(k) or b""
        for secret in (b"alice", b"bob", b"general", b"random", b"topic"):
            assert secret not in k and secret not in value
    await d.aclose()
    await raw.aclose()


async def test_spanning_records_and_too_large_refused_without_change() -> None:
    # one shard, so the member record itself overflows
    d = ChannelDirectory.memory(capacity=512, block_size=64, chunks_per_record=3, member_shards=1)
    users = [f"user-{i:03d}" for i in range(15)]  # ~180 bytes of JSON: spans 3 chunks
    for u in users:
        await d.add_member("big", u)
    assert await d.members("big") == set(users)
    before = await d.members("big")
    with pytest.raises(RecordTooLarge):
        for i in range(15, 40):
            await d.add_member("big", f"user-{i:03d}")
    grown = await d.members("big")
    assert before <= grown
    refused = f"user-{len(grown):03d}"
    assert refused not in grown
    assert await d.channels_of(refused) == frozenset()  # the user's record was not written
    with pytest.raises(RecordTooLarge):
        await d.set_settings("big", {"x": "y" * 500})
    assert await d.get_settings("big") == {}


async def test_full_directory_refuses_before_writing() -> None:
    d = ChannelDirectory.memory(capacity=8, block_size=64, chunks_per_record=2)
    await d.add_member("a", "u1")  # two one-chunk records
    await d.add_member("b", "u2")
    await d.add_member("c", "u3")
    await d.add_member("d", "u4")  # eight blocks used
    with pytest.raises(DirectoryFull):
        await d.add_member("e", "u5")
    assert await d.members("e") == frozenset()
    assert await d.channels_of("u5") == frozenset()
    await d.remove_member("a", "u1")
    assert await d.add_member("e", "u5") is True


async def test_concurrent_joins_lose_no_update() -> None:
    d = ChannelDirectory.memory(capacity=1024)
    users = [f"u{i}" for i in range(30)]
    results = await asyncio.gather(*(d.add_member("room", u) for u in users))
    assert all(results)
    assert await d.members("room") == set(users)


async def test_access_count_depends_only_on_the_call() -> None:
    store = RecordingStore()
    d = ChannelDirectory.memory(capacity=256, chunks_per_record=4, store=store)
    counts: dict[str, set[int]] = {}

    async def run(label: str, coro: object) -> None:
        store.log.clear()
        await coro  # type: ignore[misc]
        counts.setdefault(label, set()).add(len(store.log))
        assert d.last_call_accesses * 2 == len(store.log)

    await run("add", d.add_member("c1", "alice"))  # new member, new channel
    await run("add", d.add_member("c1", "alice"))  # already a member
    await run("add", d.add_member("c1", "bob"))
    await run("remove", d.remove_member("c1", "zed"))  # not a member
    await run("remove", d.remove_member("c1", "bob"))
    await run("members", d.members("c1"))
    await run("members", d.members("nope"))
    await run("read", d.get_settings("c1"))
    await run("read", d.get_settings("nope"))
    await run("channels", d.channels_of("alice"))
    await run("channels", d.channels_of("nobody"))
    assert {k: len(v) for k, v in counts.items()} == {
        "add": 1, "remove": 1, "read": 1, "members": 1, "channels": 1}
    assert counts["add"] == {2 * 16} and counts["read"] == {2 * 4}
    assert counts["members"] == {2 * 4 * 64}  # every shard, whatever the channel's size
    assert counts["channels"] == {2 * 4 * 8}

    uniform_store = RecordingStore()
    u = ChannelDirectory.memory(capacity=256, uniform_calls=True, store=uniform_store)
    seen = set()
    for coro in (u.add_member("c", "a"), u.members("c"), u.get_settings("c"),
                 u.set_settings("c", {"k": 1}), u.remove_member("c", "a")):
        uniform_store.log.clear()
        await coro
        seen.add(len(uniform_store.log))
    assert seen == {2 * 4 * 64}  # everything padded to the dearest call (members)


async def test_bad_names_are_refused() -> None:
    d = ChannelDirectory.memory(capacity=16)
    with pytest.raises(ValueError):
        await d.members("")
    with pytest.raises(ValueError):
        await d.add_member("c", "x" * 300)
    with pytest.raises(TypeError):
        await d.set_settings("c", {1: 2})  # type: ignore[dict-item]


async def test_a_channel_of_a_thousand_members_fits() -> None:
    d = ChannelDirectory.memory(capacity=2**14)
    users = [f"load-user-{i:05d}" for i in range(1000)]
    for u in users:
        assert await d.add_member("big", u)
    assert await d.members("big") == set(users)
    assert await d.channels_of(users[500]) == {"big"}
    assert await d.remove_member("big", users[500])
    assert len(await d.members("big")) == 999


async def test_a_user_in_a_hundred_fifty_channels_fits() -> None:
    d = ChannelDirectory.memory(capacity=2**14)
    chans = {f"chan-{i:03d}-padpadpad" for i in range(150)}  # was capped at 48
    for c in sorted(chans):
        await d.add_member(c, "busy-user")
    assert await d.channels_of("busy-user") == chans
