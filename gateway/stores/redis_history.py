"""RedisHistory: channel history in Redis Streams, shared by every node of a cluster.

One stream per channel at ``plexi:hist:<HMAC(names key, channel)>``; each entry has one
field ``e``, a ``ClusterSealer`` blob (ChaCha20-Poly1305 under the cluster key, AAD =
header || stream key) of the encoded ``msg`` op. Appends are ``XADD key MAXLEN ~ N * e
blob``, pipelined with the node's bus publishes (same :class:`RedisBatcher`, so one round
trip carries both, in order); reads are ``XREVRANGE key + - COUNT limit``.

Redis can drop, duplicate or reorder entries (it holds them); it cannot read, forge or
move one to another channel. Entries that do not open are left out of the reply and
logged; duplicates of one sealed entry are returned once. Completeness is NOT protected
(unlike the ORAM directory, a stream has no Merkle root): a storage operator can truncate
history. Stream ids (``<ms>-<seq>``) show Redis when each message was kept.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gateway.clusterkey import ClusterKey, SealedBlobError
from gateway.stores.bus import BusUnavailable
from gateway.stores.redis_batch import RedisBatcher

log = logging.getLogger("plexigate.history")


class RedisHistory:
    def __init__(
        self,
        client: aioredis.Redis,
        key: ClusterKey,
        *,
        per_channel: int = 100,
        prefix: str = "plexi:hist:",
        batcher: RedisBatcher | None = None,
        owns_client: bool = False,
    ) -> None:
        self._r = client
        self._key = key
        self._sealer = key.sealer(b"history")
        self._per = per_channel
        self._prefix = prefix
        self._batcher = batcher or RedisBatcher(client)
        self._owns_batcher = batcher is None
        self._owns_client = owns_client
        self._names: dict[str, str] = {}

    @classmethod
    def from_url(cls, url: str, key: ClusterKey, **kwargs: Any) -> RedisHistory:
        client = aioredis.Redis.from_url(url, decode_responses=False, socket_connect_timeout=2.0)
        return cls(client, key, owns_client=True, **kwargs)

    def stream(self, channel: str) -> str:
        name = self._names.get(channel)
        if name is None:
            name = self._prefix + self._key.name(b"history", channel.encode())
            if len(self._names) < 100_000:
                self._names[channel] = name
        return name

    def append(self, channel: str, entry: bytes) -> asyncio.Future[Any]:
        stream = self.stream(channel)
        _, blob = self._sealer.seal(entry, stream.encode())
        return self._batcher.submit("XADD", stream, "MAXLEN", "~", self._per, "*", "e", blob)

    async def read(self, channel: str, limit: int) -> list[bytes]:
        if limit <= 0:
            return []
        stream = self.stream(channel)
        try:
            rows = await self._r.xrevrange(stream, "+", "-", count=limit)
        except (RedisError, OSError):
            raise BusUnavailable("redis unreachable") from None
        aad = stream.encode()
        out: list[bytes] = []
        seen: set[tuple[bytes, int]] = set()
        bad = dup = 0
        for _, fields in reversed(rows or []):
            blob = fields.get(b"e") if isinstance(fields, dict) else None
            if not isinstance(blob, bytes):
                bad += 1
                continue
            try:
                salt, counter, entry = self._sealer.open(blob, aad)
            except SealedBlobError:
                bad += 1
                continue
            if (salt, counter) in seen:
                dup += 1
                continue
            seen.add((salt, counter))
            out.append(entry)
        if bad or dup:
            log.warning("history: left out %d entries that do not open and %d duplicates "
                        "(storage tampering?)", bad, dup)
        return out

    def forget_if_empty(self, channel: str) -> None:
        self._names.pop(channel, None)

    async def aclose(self) -> None:
        if self._owns_batcher:
            await self._batcher.aclose()
        if self._owns_client:
            await self._r.aclose()
