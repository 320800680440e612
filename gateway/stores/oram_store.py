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


class WriteAheadStore(AsyncBucketStore, Protocol):
    async def awrite_read_path(
        self, buckets: Mapping[int, bytes], indices: Sequence[int]
    ) -> list[bytes | None]: ...


class OramClient:
    """One PathOram bound to one store; accesses are serialised.

    ``write_behind=True`` (stores with ``awrite_read_path``, i.e. Redis) keeps each access's
    path write in the client and sends it in the same pipeline as the next access's path
    read (MSET then MGET): one round trip per access instead of two.  The server sees the
    same paths, in the same order.  The last write reaches the store at the next access or
    at ``flush()`` / ``aclose()``; since the ORAM's client state lives only in this process,
    this loses no durability the ORAM had.
    """

    def __init__(
        self, oram: PathOram, store: AsyncBucketStore, *, write_behind: bool = False
    ) -> None:
        self.oram = oram
        self.store = store
        self._lock = asyncio.Lock()
        self._write_behind = write_behind and hasattr(store, "awrite_read_path")
        self.write_behind = write_behind

    async def flush(self) -> None:
        """Store a path write still held back by write_behind."""
        async with self._lock:
            pending = self.oram.unacknowledged_write
            if pending is not None:
                await self.store.awrite_path(pending.buckets)
                self.oram.write_done(pending)

    async def access(self, op: Op, addr: int, data: bytes | None = None) -> bytes | None:
        if self._write_behind:
            return await self._access_write_behind(op, addr, data)
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

    async def _access_write_behind(
        self, op: Op, addr: int, data: bytes | None
    ) -> bytes | None:
        async with self._lock:
            oram = self.oram
            store: WriteAheadStore = self.store  # type: ignore[assignment]
            pending = oram.unacknowledged_write
            req = oram.begin_access(op, addr, data, write_ahead=True)
            try:
                if pending is None:
                    buckets = await store.aread_path(req.indices)
                else:
                    buckets = await store.awrite_read_path(pending.buckets, req.indices)
                    oram.write_done(pending)
            except BaseException:
                oram.abort(req)
                raise
            result, _ = oram.finish_access(req, buckets)
            return result

    async def read(self, addr: int) -> bytes | None:
        return await self.access(Op.READ, addr)

    async def write(self, addr: int, data: bytes) -> bytes | None:
        return await self.access(Op.WRITE, addr, data)

    async def delete(self, addr: int) -> bytes | None:
        return await self.access(Op.DELETE, addr)

    async def aclose(self) -> None:
        await self.flush()
        await self.store.aclose()
