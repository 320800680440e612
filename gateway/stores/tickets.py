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
    async def claim(self, ticket_id: bytes, expires_ms: int) -> bool:
        """True the first time ``ticket_id`` is claimed; kept until it expires."""
        ...

    async def aclose(self) -> None: ...


class MemoryTicketLedger:
    """The embedded default: one process's memory (single node)."""

    def __init__(self, max_entries: int = 1_000_000) -> None:
        self._seen: dict[bytes, int] = {}
        self._max = max_entries

    async def claim(self, ticket_id: bytes, expires_ms: int) -> bool:
        now = time.time_ns() // 1_000_000
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

    @classmethod
    def from_url(cls, url: str, prefix: str = "plexi:ticket:") -> RedisTicketLedger:
        return cls(aioredis.from_url(url), prefix)

    async def claim(self, ticket_id: bytes, expires_ms: int) -> bool:
        # Ticket ids are random: the key reveals nothing about the user or the session.
        ok = await self._r.set(self._prefix + ticket_id.hex(), b"1", nx=True, pxat=expires_ms)
        return bool(ok)

    async def aclose(self) -> None:
        await self._r.aclose()
