"""Redis bucket store for the Path ORAM (redis.asyncio).

Bucket ``i`` lives at key ``{namespace}:{i}`` as raw bytes.  A path read is one MGET and a
path write one MSET (atomic on the server), so one ORAM access costs two round trips.  The
namespace is wrapped in a hash tag (``{...}``) so that on Redis Cluster every bucket of one
ORAM maps to one slot and MGET/MSET stay single commands.

Redis sees: bucket indices (public: each access touches one whole root-to-leaf path, chosen
uniformly at random), fixed-size ciphertexts, and timing.  It never sees names, addresses,
block contents or the position map.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import redis.asyncio as aioredis


class RedisBucketStore:
    def __init__(self, client: aioredis.Redis, namespace: str = "plexi:oram") -> None:
        if "{" in namespace or "}" in namespace:
            raise ValueError("namespace must not contain braces")
        self._r = client
        self._prefix = ("{" + namespace + "}:").encode()
        self._owns = False

    @classmethod
    def from_url(cls, url: str, namespace: str = "plexi:oram") -> RedisBucketStore:
        store = cls(aioredis.Redis.from_url(url, decode_responses=False), namespace)
        store._owns = True
        return store

    def key(self, index: int) -> bytes:
        return self._prefix + str(index).encode()

    async def aread_path(self, indices: Sequence[int]) -> list[bytes | None]:
        prefix = self._prefix
        values = await self._r.mget([prefix + str(i).encode() for i in indices])
        return [v if v is None or isinstance(v, bytes) else v.encode() for v in values]

    async def awrite_path(self, buckets: Mapping[int, bytes]) -> None:
        prefix = self._prefix
        await self._r.mset({prefix + str(i).encode(): v for i, v in buckets.items()})

    async def awrite_read_path(
        self, buckets: Mapping[int, bytes], indices: Sequence[int]
    ) -> list[bytes | None]:
        """MSET then MGET in one pipeline: one round trip, the write applied first."""
        prefix = self._prefix
        pipe = self._r.pipeline(transaction=False)
        pipe.mset({prefix + str(i).encode(): v for i, v in buckets.items()})
        pipe.mget([prefix + str(i).encode() for i in indices])
        _, values = await pipe.execute()
        return [v if v is None or isinstance(v, bytes) else v.encode() for v in values]

    async def aset_marker(self, value: bytes) -> None:
        """A key beside the buckets that says which ORAM owns them (not secret)."""
        await self._r.set(self._prefix + b"marker", value)

    async def aget_marker(self) -> bytes | None:
        v = await self._r.get(self._prefix + b"marker")
        return v if v is None or isinstance(v, bytes) else str(v).encode()

    async def aclear(self) -> None:
        """Delete every bucket of this namespace (a fresh ORAM client starts empty)."""
        batch: list[bytes] = []
        async for key in self._r.scan_iter(match=self._prefix + b"*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                await self._r.unlink(*batch)
                batch = []
        if batch:
            await self._r.unlink(*batch)

    async def aclose(self) -> None:
        if self._owns:
            await self._r.aclose()
