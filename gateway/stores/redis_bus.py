"""RedisBus: channel messages between gateway nodes through Redis pub/sub, sealed.

Topology. Each channel maps to one pub/sub topic ``plexi:bus:<HMAC(names key, channel)>``
(32 hex digits). A node SUBSCRIBEs to a topic while it has at least one local member in
the channel (``watch`` on the first local join, ``unwatch`` after the last leave), on ONE
pub/sub connection per node; a publish is a PUBLISH on a second, pipelined connection
(:class:`RedisBatcher`). We chose per-channel topics over one cluster-wide topic so a node
only opens what it delivers; the price is that Redis sees which node listens on which
keyed-hash topic (see docs/CLUSTER.md, "What Redis learns").

Envelope. ``ClusterSealer`` blob (ChaCha20-Poly1305 under this node start's key, nonce =
per-node counter; AAD = header || topic) over ``ts_ms (8) || len(channel) (2) || channel ||
payload``. The payload is the encoded ``msg`` op the hub already built, so a receiving
node forwards it to its members without re-encoding.

Receiving. Each envelope must: open under the cluster key with AAD = the topic it came
on; name a channel whose topic is that topic; carry a counter above the last one seen from
its sender (Redis delivers one connection's publishes in order); and a timestamp within
``max_skew_ms`` of now and not before this node subscribed. Anything else - garbage,
a forgery, a replayed or reordered old envelope - is dropped, counted and logged (rate
limited), never delivered. Our own envelopes coming back are dropped before decryption:
the hub already delivered them locally.

Failures. A publish that cannot reach Redis fails its future with BusUnavailable (the
client gets ``unavailable``). The subscriber task reconnects with backoff and
re-subscribes every watched topic; messages published while it was away are lost for this
node (pub/sub is not durable; the Streams history keeps them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import time
from collections import OrderedDict
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gateway.clusterkey import ClusterKey, SealedBlobError
from gateway.stores.bus import BusUnavailable, OnMessage
from gateway.stores.redis_batch import RedisBatcher

log = logging.getLogger("plexigate.bus")

_TS_LEN = struct.Struct(">QH")


class RedisBus:
    def __init__(
        self,
        client: aioredis.Redis,
        key: ClusterKey,
        *,
        prefix: str = "plexi:bus:",
        max_skew_ms: int = 30_000,
        ready_timeout_s: float = 2.0,
        batcher: RedisBatcher | None = None,
        owns_client: bool = False,
        owns_batcher: bool | None = None,
    ) -> None:
        self._r = client
        self._key = key
        self._prefix = prefix
        self._sealer = key.sealer(b"bus")
        self.node = self._sealer.node
        self._batcher = batcher or RedisBatcher(client)
        self._owns_batcher = batcher is None if owns_batcher is None else owns_batcher
        self._owns_client = owns_client
        self._skew = max_skew_ms
        self._ready_timeout = ready_timeout_s
        self._topics: dict[str, str] = {}  # channel -> topic, watched channels
        self._channel_of: dict[bytes, str] = {}  # topic bytes -> channel
        self._subscribed: set[bytes] = set()  # confirmed by Redis on the current connection
        self._waiters: dict[bytes, list[asyncio.Future[None]]] = {}
        self._high: OrderedDict[bytes, int] = OrderedDict()  # sender salt -> last counter
        self._on_message: OnMessage | None = None
        self._pubsub: Any = None
        self._task: asyncio.Task[None] | None = None
        self._since_ms = time.time_ns() // 1_000_000
        self._dropped = 0
        self.stats = {"sent": 0, "received": 0, "dropped": 0}

    @classmethod
    def from_url(cls, url: str, key: ClusterKey, **kwargs: Any) -> RedisBus:
        client = aioredis.Redis.from_url(
            url, decode_responses=False, socket_connect_timeout=2.0, health_check_interval=0
        )
        return cls(client, key, owns_client=True, **kwargs)

    # -- names ----------------------------------------------------------------------------
    def topic(self, channel: str) -> str:
        return self._prefix + self._key.name(b"topic", channel.encode())

    # -- Bus interface ----------------------------------------------------------------------
    def start(self, on_message: OnMessage) -> None:
        self._on_message = on_message
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._listen(), name="redis-bus")

    def publish(self, channel: str, payload: bytes) -> asyncio.Future[None]:
        topic = self._topics.get(channel) or self.topic(channel)
        cb = channel.encode()
        body = _TS_LEN.pack(time.time_ns() // 1_000_000, len(cb)) + cb + payload
        _, blob = self._sealer.seal(body, topic.encode())
        self.stats["sent"] += 1
        return self._batcher.submit("PUBLISH", topic, blob)

    def watch(self, channel: str) -> None:
        if channel in self._topics:
            return
        topic = self.topic(channel)
        self._topics[channel] = topic
        self._channel_of[topic.encode()] = channel
        ps = self._pubsub
        if ps is not None:
            task = asyncio.get_running_loop().create_task(self._send(ps.subscribe, topic))
            task.add_done_callback(_quiet)

    def unwatch(self, channel: str) -> None:
        topic = self._topics.pop(channel, None)
        if topic is None:
            return
        tb = topic.encode()
        self._channel_of.pop(tb, None)
        self._subscribed.discard(tb)
        ps = self._pubsub
        if ps is not None:
            task = asyncio.get_running_loop().create_task(self._send(ps.unsubscribe, topic))
            task.add_done_callback(_quiet)

    async def ready(self, channel: str) -> None:
        topic = self._topics.get(channel)
        if topic is None:
            return
        tb = topic.encode()
        if tb in self._subscribed:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(tb, []).append(fut)
        try:
            await asyncio.wait_for(fut, self._ready_timeout)
        except TimeoutError:
            log.warning("bus: subscription not confirmed in %.1fs (redis down?)",
                        self._ready_timeout)
        finally:
            waiters = self._waiters.get(tb)
            if waiters and fut in waiters:
                waiters.remove(fut)
                if not waiters:
                    del self._waiters[tb]

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        if self._owns_batcher:
            await self._batcher.aclose()
        if self._owns_client:
            await self._r.aclose()

    # -- subscriber -------------------------------------------------------------------------
    async def _send(self, call: Any, topic: str) -> None:
        with contextlib.suppress(RedisError, OSError):
            await call(topic)

    async def _listen(self) -> None:
        backoff = 0.05
        # A topic nobody publishes to keeps the connection subscribed (so reads can block).
        anchor = self._prefix + self._key.name(b"node", self._sealer.salt)
        while True:
            ps: Any = self._r.pubsub()
            try:
                self._subscribed.clear()
                initial = set(self._topics.values())
                await ps.subscribe(anchor, *initial)
                self._pubsub = ps
                # watch() calls made while we were connecting saw no pubsub to send to:
                # subscribe what they added, or those channels would stay deaf here.
                missed = [t for t in self._topics.values() if t not in initial]
                if missed:
                    await ps.subscribe(*missed)
                if backoff > 0.05:
                    log.warning("bus: subscriber reconnected to redis (%d topics)",
                                len(self._topics))
                backoff = 0.05
                while True:
                    msg = await ps.get_message(timeout=None)
                    if msg is not None:
                        self._handle(msg)
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await ps.aclose()
                raise
            except (RedisError, OSError) as exc:
                self._pubsub = None
                self._subscribed.clear()
                if backoff <= 0.05:
                    log.warning("bus: subscriber lost redis (%s); reconnecting in the background",
                                type(exc).__name__)
                with contextlib.suppress(Exception):
                    await ps.aclose()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)

    def _handle(self, msg: dict[str, Any]) -> None:
        kind = msg.get("type")
        topic = msg.get("channel")
        if not isinstance(topic, bytes):
            return
        if kind == b"subscribe" or kind == "subscribe":
            if topic in self._channel_of:
                self._subscribed.add(topic)
                for fut in self._waiters.pop(topic, []):
                    if not fut.done():
                        fut.set_result(None)
            return
        if kind != b"message" and kind != "message":
            return
        data = msg.get("data")
        channel = self._channel_of.get(topic)
        if channel is None or not isinstance(data, bytes):
            return  # not (or no longer) watched here
        if data[1:17] == self._sealer.salt:
            return  # our own message: delivered locally when Redis accepted it
        try:
            salt, counter, body = self._sealer.open(data, topic)
            ts, n = _TS_LEN.unpack_from(body)
            got = body[_TS_LEN.size : _TS_LEN.size + n]
        except (SealedBlobError, struct.error):
            self._drop("does not open under the cluster key")
            return
        if got != channel.encode():
            self._drop("names a channel other than its topic")
            return
        now = time.time_ns() // 1_000_000
        if abs(now - ts) > self._skew or ts < self._since_ms - self._skew:
            self._drop("timestamp outside the allowed skew (replayed?)")
            return
        last = self._high.get(salt, 0)
        if counter <= last:
            self._drop("counter not above the last from its sender (replayed or reordered)")
            return
        self._high[salt] = counter
        self._high.move_to_end(salt)
        if len(self._high) > 4096:
            self._high.popitem(last=False)
        self.stats["received"] += 1
        assert self._on_message is not None
        self._on_message(channel, body[_TS_LEN.size + n :])

    def _drop(self, why: str) -> None:
        self.stats["dropped"] += 1
        self._dropped += 1
        if self._dropped <= 10 or self._dropped % 1000 == 0:
            log.warning("bus: dropped a message from redis: %s (%d dropped so far)",
                        why, self._dropped)


def _quiet(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()


__all__ = ["BusUnavailable", "RedisBus"]
