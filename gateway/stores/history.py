"""Channel history: the last ``per_channel`` messages of each channel.

A tiny interface with two implementations:

- :class:`MemoryHistory` (embedded default): a bounded deque per channel in this process,
  optionally sealed by a ``HistorySealer`` (the key store's rotating storage key). It also
  has synchronous ``add``/``get``, which the hub uses so the single-node path awaits nothing.
- :class:`gateway.stores.redis_history.RedisHistory`: one Redis Stream per channel, entries
  sealed under the cluster key, readable from every node.

Entries are the encoded ``msg`` ops (JSON bytes), oldest first.
"""

from __future__ import annotations

import logging
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from typing import Protocol

from crypto.keystore import KeyStoreError

log = logging.getLogger("plexigate.channels")


class HistorySealer(Protocol):
    """What history needs to keep entries sealed (a RotatingKey fits)."""

    def seal(self, plaintext: bytes, aad: bytes = b"") -> bytes: ...

    def open(self, blob: bytes, aad: bytes = b"") -> bytes: ...


class History(Protocol):
    def append(self, channel: str, entry: bytes) -> Awaitable[None]:
        """Keep ``entry`` (queued at call time, so it is ordered with the bus publish that
        follows); the awaitable raises BusUnavailable when the store cannot take it."""
        ...

    def read(self, channel: str, limit: int) -> Awaitable[list[bytes]]:
        """The last ``limit`` entries, oldest first."""
        ...

    def forget_if_empty(self, channel: str) -> None:
        """A hint that the channel has no local members left (memory may drop its state)."""
        ...

    async def aclose(self) -> None: ...


class MemoryHistory:
    """Bounded three ways: ``per_channel`` entries per channel, ``max_bytes`` in all and
    ``max_channels`` channels; past a bound the least recently written channel's history
    is dropped (``on_evict`` tells the hub). Without the global bounds, a client allowed
    to publish on a wildcard could grow the gateway's memory one channel at a time."""

    def __init__(
        self,
        per_channel: int = 100,
        sealer: HistorySealer | None = None,
        *,
        max_bytes: int = 64 * 1024 * 1024,
        max_channels: int = 10_000,
    ) -> None:
        self._per = per_channel
        self._sealer = sealer
        self._entries: OrderedDict[str, deque[bytes]] = OrderedDict()
        self._sizes: dict[str, int] = {}
        self._total = 0
        self._max_bytes = max_bytes
        self._max_channels = max_channels
        self.on_evict: Callable[[str], None] | None = None
        self.evicted = 0

    @property
    def total_bytes(self) -> int:
        return self._total

    def __len__(self) -> int:
        return len(self._entries)

    # -- synchronous (the hub's fast path) -------------------------------------------------
    def queue(self, channel: str) -> deque[bytes]:
        """The channel's deque (created empty): the hub keeps a reference to it."""
        q = self._entries.get(channel)
        if q is None:
            q = self._entries[channel] = deque(maxlen=self._per)
            self._sizes[channel] = 0
            self._evict(keep=channel)
        return q

    def add(self, channel: str, entry: bytes) -> None:
        q = self.queue(channel)
        if self._sealer is not None:
            try:
                entry = self._sealer.seal(entry, _history_aad(channel))
            except KeyStoreError as exc:
                log.warning("history entry not kept for a channel: %s", type(exc).__name__)
                return
        if q.maxlen is not None and len(q) == q.maxlen and q:
            dropped = len(q[0])  # the deque drops its oldest entry on append
            self._sizes[channel] -= dropped
            self._total -= dropped
        q.append(entry)
        self._sizes[channel] += len(entry)
        self._total += len(entry)
        self._entries.move_to_end(channel)
        self._evict(keep=channel)

    def _evict(self, keep: str) -> None:
        while (self._total > self._max_bytes or len(self._entries) > self._max_channels) and (
            len(self._entries) > 1
        ):
            name = next(iter(self._entries))
            if name == keep:
                self._entries.move_to_end(name)
                name = next(iter(self._entries))
            q = self._entries.pop(name)
            q.clear()
            self._total -= self._sizes.pop(name)
            self.evicted += 1
            if self.on_evict is not None:
                self.on_evict(name)

    def get(self, channel: str, limit: int) -> list[bytes]:
        q = self._entries.get(channel)
        if q is None or limit <= 0:
            return []
        entries = list(q)[-limit:]
        if self._sealer is None:
            return entries
        out: list[bytes] = []
        failed: dict[str, int] = {}
        aad = _history_aad(channel)
        for blob in entries:
            try:
                out.append(self._sealer.open(blob, aad))
            except KeyStoreError as exc:  # disabled/destroyed version, forged entry
                failed[type(exc).__name__] = failed.get(type(exc).__name__, 0) + 1
        if failed:
            log.warning("history: %s entries no longer open (%s)", sum(failed.values()),
                        ", ".join(f"{k} x{v}" for k, v in sorted(failed.items())))
        return out

    def has(self, channel: str) -> bool:
        return bool(self._entries.get(channel))

    def forget_if_empty(self, channel: str) -> None:
        q = self._entries.get(channel)
        if q is not None and not q:
            del self._entries[channel]
            self._total -= self._sizes.pop(channel, 0)

    # -- History interface -----------------------------------------------------------------
    async def append(self, channel: str, entry: bytes) -> None:
        self.add(channel, entry)

    async def read(self, channel: str, limit: int) -> list[bytes]:
        return self.get(channel, limit)

    async def aclose(self) -> None:
        return None


def _history_aad(channel: str) -> bytes:
    return b"history/" + channel.encode()
