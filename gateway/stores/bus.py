"""The message bus: how a channel message published on one node reaches the others.

A tiny interface with two implementations:

- :class:`MemoryBus` (embedded default): one process is the whole cluster, so there is
  nothing to send; ``publish`` returns ``None`` and the hub fans out to its local members
  at once, synchronously, with the payload it already encoded (the single-node path costs
  what it cost before the bus existed).
- :class:`gateway.stores.redis_bus.RedisBus`: sealed envelopes through Redis pub/sub;
  ``publish`` returns a future that completes when Redis accepted the message (or fails
  with :class:`BusUnavailable`), and messages from other nodes arrive through the
  ``on_message`` callback given to :meth:`Bus.start`.

The hub tells the bus which channels have local members (``watch``/``unwatch``, on the
first join and the last leave), so a node only receives the channels it needs.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Protocol

OnMessage = Callable[[str, bytes], None]
"""Called with (channel, payload) for each message from another node, once."""


class BusUnavailable(Exception):
    """The bus cannot take the message now (storage down, backlog full); nothing was sent."""


class Bus(Protocol):
    node: str
    """Public id of this node start, the prefix of its message ids."""

    def start(self, on_message: OnMessage) -> None: ...

    def publish(self, channel: str, payload: bytes) -> asyncio.Future[None] | None:
        """None: delivered in process, nothing to wait for. A future: done once sent."""
        ...

    def watch(self, channel: str) -> None: ...

    def unwatch(self, channel: str) -> None: ...

    async def ready(self, channel: str) -> None:
        """Wait (bounded) until messages of a watched channel reach this node."""
        ...

    async def aclose(self) -> None: ...


class MemoryBus:
    """In-process bus: the local fan-out is the whole delivery."""

    def __init__(self, node: str | None = None) -> None:
        self.node = node or os.urandom(6).hex()

    def start(self, on_message: OnMessage) -> None:
        pass

    def publish(self, channel: str, payload: bytes) -> asyncio.Future[None] | None:
        return None

    def watch(self, channel: str) -> None:
        pass

    def unwatch(self, channel: str) -> None:
        pass

    async def ready(self, channel: str) -> None:
        return None

    async def aclose(self) -> None:
        return None
