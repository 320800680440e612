"""In-memory bucket store for the Path ORAM (the embedded default and the tests' twin).

It holds sealed buckets only, exactly what Redis would hold; the ORAM client state lives in
crypto.oram.PathOram.  Both a synchronous interface (crypto.oram.BucketStorage) and the
asynchronous one (gateway.stores.oram_store.AsyncBucketStore) are provided.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


class MemoryBucketStore:
    """A dict from bucket index to sealed bucket bytes."""

    __slots__ = ("buckets",)

    def __init__(self) -> None:
        self.buckets: dict[int, bytes] = {}

    def read_path(self, indices: Sequence[int]) -> list[bytes | None]:
        get = self.buckets.get
        return [get(i) for i in indices]

    def write_path(self, buckets: Mapping[int, bytes]) -> None:
        self.buckets.update(buckets)

    async def aread_path(self, indices: Sequence[int]) -> list[bytes | None]:
        return self.read_path(indices)

    async def awrite_path(self, buckets: Mapping[int, bytes]) -> None:
        self.write_path(buckets)

    async def aclose(self) -> None:
        return None
