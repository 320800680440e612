"""The asynchronous side of the Path ORAM: a tiny bucket-store interface and a driver.

``AsyncBucketStore`` is what the I/O layer needs from a store: one call to read a path and
one to write it (each a single round trip on Redis).  ``OramClient`` drives the sans-I/O
``crypto.oram.PathOram`` over such a store, one access at a time (an asyncio.Lock), and
re-sends a path write that failed or was cancelled before starting the next access, so the
store never stays behind the client's Merkle root.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Protocol

from crypto.oram import Op, PathOram


class AsyncBucketStore(Protocol):
    async def aread_path(self, indices: Sequence[int]) -> list[bytes | None]: ...

    async def awrite_path(self, buckets: Mapping[int, bytes]) -> None: ...

    async def aclose(self) -> None: ...


class OramClient:
    """One PathOram bound to one store; accesses are serialised."""

    def __init__(self, oram: PathOram, store: AsyncBucketStore) -> None:
        self.oram = oram
        self.store = store
        self._lock = asyncio.Lock()

    async def access(self, op: Op, addr: int, data: bytes | None = None) -> bytes | None:
        async with self._lock:
            oram = self.oram
            pending = oram.unacknowledged_write
            if pending is not None:
                await self.store.awrite_path(pending.buckets)
                oram.write_done(pending)
            req = oram.begin_access(op, addr, data)
            try:
                buckets = await self.store.aread_path(req.indices)
            except BaseException:
                oram.abort(req)
                raise
            result, write = oram.finish_access(req, buckets)
            await self.store.awrite_path(write.buckets)
            oram.write_done(write)
            return result

    async def read(self, addr: int) -> bytes | None:
        return await self.access(Op.READ, addr)

    async def write(self, addr: int, data: bytes) -> bytes | None:
        return await self.access(Op.WRITE, addr, data)

    async def delete(self, addr: int) -> bytes | None:
        return await self.access(Op.DELETE, addr)

    async def aclose(self) -> None:
        await self.store.aclose()
