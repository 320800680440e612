"""Automatic pipelining of fire-and-confirm Redis commands.

Every command submitted while a round trip is in flight joins the next pipeline, so N
publishes cost about one round trip rather than N, and order is kept (one connection,
FIFO). Each submitter gets a future with its own reply; a connection failure fails every
command of that batch with :class:`BusUnavailable` (they may or may not have been applied:
the caller reports "unavailable", never a silent drop). The redis client reconnects on the
next batch by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gateway.stores.bus import BusUnavailable

log = logging.getLogger("plexigate.redis")


class RedisBatcher:
    def __init__(
        self, client: aioredis.Redis, *, max_batch: int = 512, max_backlog: int = 20_000
    ) -> None:
        self._r = client
        self._max_batch = max_batch
        self._max_backlog = max_backlog
        self._queue: deque[tuple[tuple[Any, ...], asyncio.Future[Any]]] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._down = False

    def submit(self, *command: Any) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        if len(self._queue) >= self._max_backlog:
            fut.set_exception(BusUnavailable("redis backlog full"))
            return fut
        self._queue.append((command, fut))
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run(), name="redis-batcher")
        self._wake.set()
        return fut

    async def _run(self) -> None:
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
            batch = [self._queue.popleft() for _ in range(min(len(self._queue), self._max_batch))]
            pipe = self._r.pipeline(transaction=False)
            for command, _ in batch:
                pipe.execute_command(*command)
            try:
                replies = await pipe.execute(raise_on_error=False)
            except (RedisError, OSError) as exc:
                if not self._down:
                    log.warning("redis unreachable (%s): commands fail until it is back",
                                type(exc).__name__)
                    self._down = True
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(BusUnavailable("redis unreachable"))
                continue
            if self._down:
                log.warning("redis reachable again")
                self._down = False
            for (_, fut), reply in zip(batch, replies, strict=True):
                if fut.done():
                    continue
                if isinstance(reply, Exception):
                    fut.set_exception(BusUnavailable(f"redis error: {type(reply).__name__}"))
                else:
                    fut.set_result(reply)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        while self._queue:
            _, fut = self._queue.popleft()
            if not fut.done():
                fut.set_exception(BusUnavailable("closed"))
