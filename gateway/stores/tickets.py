"""Ticket ledger: each resumption ticket is accepted once, cluster-wide.

This is the "nonce" part of the replay checks that must be shared between nodes: a
ticket is single use, so a captured ResumeHello cannot be replayed on any node. (Record
sequence numbers are checked in the node that holds the session, in O(1); a resumed
session starts fresh keys and fresh sequence numbers, so nothing else needs sharing.)
"""

from __future__ import annotations

import time
from typing import Protocol

import redis.asyncio as aioredis


class TicketLedger(Protocol):
    async def start(self) -> None:
        """Called once when the gateway starts."""
        ...

    async def claim(self, ticket_id: bytes, issued_ms: int, expires_ms: int) -> bool:
        """True the first time ``ticket_id`` is claimed; kept until it expires.

        A ledger only vouches for tickets issued after its own records begin (its
        *epoch*): it refuses older ones, because it cannot know whether they were spent
        before (a restarted process, a Redis that lost its data)."""
        ...

    async def aclose(self) -> None: ...


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class MemoryTicketLedger:
    """The embedded default: one process's memory (single node)."""

    def __init__(self, max_entries: int = 1_000_000) -> None:
        self._seen: dict[bytes, int] = {}
        self._max = max_entries
        self.epoch_ms = _now_ms()  # this process's memory starts here

    async def start(self) -> None:
        return None

    async def claim(self, ticket_id: bytes, issued_ms: int, expires_ms: int) -> bool:
        now = _now_ms()
        if issued_ms < self.epoch_ms:
            return False  # issued before this process: it may have been spent already
        if len(self._seen) >= self._max:
            self._seen = {k: v for k, v in self._seen.items() if v > now}
            if len(self._seen) >= self._max:
                return False  # fail closed rather than grow without bound
        if ticket_id in self._seen and self._seen[ticket_id] > now:
            return False
        self._seen[ticket_id] = expires_ms
        return True

    async def aclose(self) -> None:
        self._seen.clear()


class RedisTicketLedger:
    """``SET plexi:ticket:<id> 1 NX PXAT expires``: atomic, shared by every node."""

    def __init__(self, client: aioredis.Redis, prefix: str = "plexi:ticket:") -> None:
        self._r = client
        self._prefix = prefix
        self._epoch_key = prefix + "epoch"

    @classmethod
    def from_url(cls, url: str, prefix: str = "plexi:ticket:") -> RedisTicketLedger:
        return cls(aioredis.from_url(url), prefix)

    async def start(self) -> None:
        # The first node of a deployment sets the epoch; later nodes keep it.
        await self._r.set(self._epoch_key, str(_now_ms()).encode(), nx=True)

    async def claim(self, ticket_id: bytes, issued_ms: int, expires_ms: int) -> bool:
        # Ticket ids are random: the key reveals nothing about the user or the session.
        pipe = self._r.pipeline(transaction=False)
        pipe.get(self._epoch_key)
        pipe.set(self._prefix + ticket_id.hex(), b"1", nx=True, pxat=expires_ms)
        epoch, ok = await pipe.execute()
        if epoch is None:
            # Redis lost the ledger (restart without persistence, flush): start a new epoch
            # now and refuse every ticket issued before it.
            await self._r.set(self._epoch_key, str(_now_ms()).encode(), nx=True)
            return False
        return bool(ok) and issued_ms >= int(epoch)

    async def aclose(self) -> None:
        await self._r.aclose()
