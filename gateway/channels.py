"""Channels: live membership of connections, fan-out, and a short history per channel.

The hub holds only what must be in process memory (which live connections to write to).
Fan-out encodes each message once and hands it to every member, whose own session
seals it under its own ratchet (re-encrypted per recipient).

With a ``sealer`` (the gateway's storage :class:`crypto.rotation.RotatingKey` when a key store
is configured) every history entry is kept sealed (AES-256-GCM, AAD ``history/<channel>``)
and opened on read, so entries stay readable across key rotations while their version is
enabled. An entry that no longer opens (its version disabled or destroyed) is left out of
the reply and logged; a seal failure keeps the message out of history (it is still
delivered live). Nothing is ever stored in plaintext instead.

Clustering (``bus=``/``history=``, see docs/CLUSTER.md): with the default MemoryBus and
in-process history nothing changes (``publish`` and ``history`` stay synchronous). With a
RedisBus and/or a RedisHistory the hub is ``clustered``: ``publish_async`` queues the
history append and the bus publish (one pipelined round trip), then fans out to the
local members once Redis accepted both, or reports the failure; messages from other nodes
arrive through the bus and go to every local member. Message ids are ``<node>-<n>`` with
the bus's per-start node id, unique across nodes.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway.ops import encode
from gateway.stores.bus import Bus, MemoryBus
from gateway.stores.history import History, HistorySealer, MemoryHistory

__all__ = ["ChannelHub", "Delivery", "HistorySealer", "Member"]

log = logging.getLogger("plexigate.channels")


class Member(Protocol):
    user: str

    def deliver(self, payload: bytes) -> bool: ...


@dataclass(frozen=True, slots=True)
class Delivery:
    mid: str
    ts: int
    delivered: int


@dataclass(slots=True)
class _Channel:
    members: set[Member] = field(default_factory=set)
    history: deque[bytes] = field(default_factory=deque)


_NO_HISTORY: deque[bytes] = deque(maxlen=0)


class ChannelHub:
    def __init__(
        self,
        history_per_channel: int = 100,
        sealer: HistorySealer | None = None,
        *,
        bus: Bus | None = None,
        history: History | None = None,
        history_max_bytes: int = 64 * 1024 * 1024,
        history_max_channels: int = 10_000,
    ) -> None:
        self._channels: dict[str, _Channel] = {}
        self._bus: Bus = bus if bus is not None else MemoryBus()
        # In-process history (the sync fast path) unless a history store is given.
        self._mem: MemoryHistory | None = None
        self._store: History
        if history is None:
            self._mem = self._store = MemoryHistory(
                history_per_channel,
                sealer,
                max_bytes=history_max_bytes,
                max_channels=history_max_channels,
            )
            self._mem.on_evict = self._evicted
        else:
            self._store = history
        self.clustered = not isinstance(self._bus, MemoryBus) or history is not None
        self._node = self._bus.node
        self._counter = itertools.count(1)

    def _channel(self, channel: str) -> _Channel:
        ch = self._channels.get(channel)
        if ch is None:
            q = self._mem.queue(channel) if self._mem is not None else _NO_HISTORY
            ch = self._channels[channel] = _Channel(history=q)
        return ch

    def _evicted(self, channel: str) -> None:
        """History of ``channel`` was dropped to bound memory: forget an unused channel."""
        ch = self._channels.get(channel)
        if ch is None:
            return
        if ch.members:
            ch.history = _NO_HISTORY  # the store starts a fresh deque on the next add
        else:
            del self._channels[channel]

    @property
    def channel_count(self) -> int:
        return len(self._channels)

    # -- lifecycle (Gateway.start/close) -------------------------------------------------
    def start(self) -> None:
        self._bus.start(self._from_bus)

    async def aclose(self) -> None:
        await self._bus.aclose()
        await self._store.aclose()

    # -- membership ------------------------------------------------------------------------
    def join(self, member: Member, channel: str) -> bool:
        ch = self._channel(channel)
        if member in ch.members:
            return False
        ch.members.add(member)
        if len(ch.members) == 1:
            self._bus.watch(channel)
        return True

    async def ready(self, channel: str) -> None:
        """Wait (bounded) until other nodes' messages of ``channel`` reach this node."""
        await self._bus.ready(channel)

    def leave(self, member: Member, channel: str) -> bool:
        ch = self._channels.get(channel)
        if ch is None or member not in ch.members:
            return False
        ch.members.discard(member)
        if not ch.members:
            self._bus.unwatch(channel)
            if not ch.history:
                del self._channels[channel]
                self._store.forget_if_empty(channel)
        return True

    def is_member(self, member: Member, channel: str) -> bool:
        ch = self._channels.get(channel)
        return ch is not None and member in ch.members

    def members(self, channel: str) -> int:
        ch = self._channels.get(channel)
        return len(ch.members) if ch else 0

    # -- publish ---------------------------------------------------------------------------
    def _message(self, sender: Member, channel: str, body: str) -> tuple[str, int, bytes]:
        mid = f"{self._node}-{next(self._counter)}"
        ts = time.time_ns() // 1_000_000
        payload = encode(
            {
                "op": "msg",
                "channel": channel,
                "from": sender.user,
                "body": body,
                "mid": mid,
                "ts": ts,
            }
        )
        return mid, ts, payload

    def _fan_out(self, channel: str, payload: bytes, sender: Member | None) -> int:
        ch = self._channels.get(channel)
        if ch is None:
            return 0
        delivered = 0
        for member in tuple(ch.members):
            if member is not sender and member.deliver(payload):
                delivered += 1
        return delivered

    def publish(self, sender: Member, channel: str, body: str) -> Delivery:
        """Single node: keep in history, deliver to every other member, synchronously."""
        if self.clustered:
            raise RuntimeError("a clustered hub publishes with publish_async")
        assert self._mem is not None
        self._channel(channel)
        mid, ts, payload = self._message(sender, channel, body)
        self._mem.add(channel, payload)
        return Delivery(mid, ts, self._fan_out(channel, payload, sender))

    def publish_async(
        self,
        sender: Member,
        channel: str,
        body: str,
        done: Callable[[Delivery | BaseException], None],
    ) -> None:
        """Clustered: queue history append + bus publish now (in this order, so messages
        keep their order), then fan out locally and call ``done`` with the Delivery
        (``delivered`` counts this node's recipients) or with the exception
        (BusUnavailable) - in which case no local member got it."""
        mid, ts, payload = self._message(sender, channel, body)
        waits: list[Awaitable[Any]] = [self._store.append(channel, payload)]
        sent = self._bus.publish(channel, payload)
        if sent is not None:
            waits.append(sent)
        fut = asyncio.gather(*waits)

        def finish(f: asyncio.Future[list[Any]]) -> None:
            exc = asyncio.CancelledError() if f.cancelled() else f.exception()
            if exc is not None:
                done(exc)
                return
            done(Delivery(mid, ts, self._fan_out(channel, payload, sender)))

        fut.add_done_callback(finish)

    def _from_bus(self, channel: str, payload: bytes) -> None:
        """A message another node published: to every local member, once."""
        self._fan_out(channel, payload, None)

    # -- history ---------------------------------------------------------------------------
    def history(self, channel: str, limit: int) -> list[bytes]:
        """In-process history (single node), oldest first."""
        if self._mem is None:
            raise RuntimeError("a clustered hub reads history with ahistory")
        return self._mem.get(channel, limit)

    async def ahistory(self, channel: str, limit: int) -> list[bytes]:
        """History from the configured store (raises BusUnavailable when it is down)."""
        if self._mem is not None:
            return self._mem.get(channel, limit)
        return await self._store.read(channel, limit)
