"""The Redis bucket store, on the real redis-server the test session starts."""

from __future__ import annotations

import os

import pytest
import redis.asyncio as aioredis

from crypto.oram import Op, OramParams, PathOram
from crypto.oram_errors import OramIntegrityError
from gateway.stores.oram_redis import RedisBucketStore
from gateway.stores.oram_store import OramClient

BS = 64


async def test_redis_backed_oram_matches_a_dict(redis_flushed: str) -> None:
    store = RedisBucketStore.from_url(redis_flushed, namespace="t1")
    client = OramClient(PathOram(OramParams(128, block_size=BS)), store)
    mirror: dict[int, bytes] = {}
    try:
        for i in range(1500):
            addr = int.from_bytes(os.urandom(2), "big") % 160
            kind = i % 3
            if kind == 0:
                assert await client.read(addr) == mirror.get(addr)
            elif kind == 1 and (addr in mirror or len(mirror) < 128):
                data = os.urandom(BS)
                assert await client.write(addr, data) == mirror.get(addr)
                mirror[addr] = data
            else:
                assert await client.delete(addr) == mirror.pop(addr, None)
        for addr, data in mirror.items():
            assert await client.read(addr) == data
    finally:
        await client.aclose()


async def test_redis_sees_one_mget_and_one_mset_per_access(redis_flushed: str) -> None:
    raw = aioredis.Redis.from_url(redis_flushed)
    store = RedisBucketStore(raw, namespace="t2")
    client = OramClient(PathOram(OramParams(64, block_size=BS)), store)
    await client.write(1, os.urandom(BS))
    await raw.config_resetstat()
    for op, addr, data in [
        (Op.READ, 1, None),
        (Op.READ, 2, None),
        (Op.WRITE, 3, os.urandom(BS)),
        (Op.DELETE, 1, None),
    ]:
        await client.access(op, addr, data)
    stats = await raw.info("commandstats")
    calls = {k: v["calls"] for k, v in stats.items()}
    assert calls.get("cmdstat_mget") == 4 and calls.get("cmdstat_mset") == 4
    expected = {"cmdstat_mget", "cmdstat_mset", "cmdstat_info", "cmdstat_config|resetstat"}
    others = set(calls) - expected
    assert not others, others
    # Redis holds only fixed-size ciphertexts under bucket-index keys
    keys = await raw.keys("{t2}:*")
    sizes = {len(await raw.get(k) or b"") for k in keys}
    assert len(sizes) == 1
    await raw.aclose()


async def test_redis_tampering_is_detected(redis_flushed: str) -> None:
    raw = aioredis.Redis.from_url(redis_flushed)
    store = RedisBucketStore(raw, namespace="t3")
    oram = PathOram(OramParams(16, block_size=BS))
    client = OramClient(oram, store)
    await client.write(5, b"a" * BS)
    old_root = await raw.get(store.key(0))
    await client.write(5, b"b" * BS)
    await raw.set(store.key(0), old_root or b"")  # roll the root back
    version = oram.version
    with pytest.raises(OramIntegrityError):
        await client.read(5)
    assert oram.version == version
    await raw.aclose()


async def test_write_behind_is_one_round_trip_and_correct(redis_flushed: str) -> None:
    raw = aioredis.Redis.from_url(redis_flushed)
    store = RedisBucketStore(raw, namespace="t4")
    oram = PathOram(OramParams(64, block_size=BS))
    client = OramClient(oram, store, write_behind=True)
    mirror: dict[int, bytes] = {}
    for i in range(300):
        addr = i % 50
        if i % 2:
            data = os.urandom(BS)
            assert await client.write(addr, data) == mirror.get(addr)
            mirror[addr] = data
        else:
            assert await client.read(addr) == mirror.get(addr)
    assert oram.unacknowledged_write is not None  # the last write is held back
    await raw.config_resetstat()
    await client.read(1)
    stats = await raw.info("commandstats")
    assert stats["cmdstat_mget"]["calls"] == 1 and stats["cmdstat_mset"]["calls"] == 1
    await client.flush()
    assert oram.unacknowledged_write is None
    # a fresh driver over the same ORAM and store sees everything (nothing was lost)
    plain = OramClient(oram, RedisBucketStore(raw, namespace="t4"))
    for addr, data in mirror.items():
        assert await plain.read(addr) == data
    await raw.aclose()
