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
from collections import deque
from collections.abc import Awaitable
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
    def __init__(self, per_channel: int = 100, sealer: HistorySealer | None = None) -> None:
        self._per = per_channel
        self._sealer = sealer
        self._entries: dict[str, deque[bytes]] = {}

    # -- synchronous (the hub's fast path) -------------------------------------------------
    def queue(self, channel: str) -> deque[bytes]:
        """The channel's deque (created empty): the hub keeps a reference to it."""
        q = self._entries.get(channel)
        if q is None:
            q = self._entries[channel] = deque(maxlen=self._per)
        return q

    def add(self, channel: str, entry: bytes) -> None:
        q = self._entries.get(channel)
        if q is None:
            q = self._entries[channel] = deque(maxlen=self._per)
        if self._sealer is None:
            q.append(entry)
            return
        try:
            q.append(self._sealer.seal(entry, _history_aad(channel)))
        except KeyStoreError as exc:
            log.warning("history entry not kept for a channel: %s", type(exc).__name__)

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

    # -- History interface -----------------------------------------------------------------
    async def append(self, channel: str, entry: bytes) -> None:
        self.add(channel, entry)

    async def read(self, channel: str, limit: int) -> list[bytes]:
        return self.get(channel, limit)

    async def aclose(self) -> None:
        return None


def _history_aad(channel: str) -> bytes:
    return b"history/" + channel.encode()
