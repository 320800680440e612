"""Plaintext baseline: the gateway's relay and fan-out over plain WebSockets and JSON.

Same library (websockets asyncio server), same event loop (uvloop), same frame settings
and the same shape as ``gateway/connection.py`` (one reader loop, one bounded outbound
queue and writer task per connection, JSON ops ``join``/``publish``/``ping``, an ``ack`` per
publish and a ``msg`` object with the same fields for each recipient), but no handshake,
no records, no authentication. The harness runs it next to the gateway so every figure has
a ratio: secure / plaintext.

    python -m loadtest.baseline_server --port 0     # prints "baseline listening on ws://..."
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import signal
import time
from typing import Any

import orjson
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

MAX_FRAME = 65_536 + 38
OUTBOUND_QUEUE = 1024


class PlainConn:
    __slots__ = ("channels", "closing", "queue", "user", "ws")

    def __init__(self, ws: ServerConnection) -> None:
        self.ws = ws
        self.user = "anon"
        self.channels: set[str] = set()
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.closing = False

    def deliver(self, payload: bytes) -> None:
        if self.closing:
            return
        if self.queue.qsize() >= OUTBOUND_QUEUE:
            self.closing = True
            self.queue.put_nowait(None)
            return
        self.queue.put_nowait(payload)


class PlainHub:
    def __init__(self) -> None:
        self.channels: dict[str, set[PlainConn]] = {}
        self.node = os.urandom(4).hex()
        self.counter = itertools.count(1)

    async def handler(self, ws: ServerConnection) -> None:
        conn = PlainConn(ws)
        writer = asyncio.create_task(self._writer(conn))
        try:
            async for frame in ws:
                self._on_request(conn, frame)
                if conn.closing:
                    break
        except ConnectionClosed:
            pass
        finally:
            conn.closing = True
            conn.queue.put_nowait(None)
            for ch in conn.channels:
                members = self.channels.get(ch)
                if members is not None:
                    members.discard(conn)
                    if not members:
                        del self.channels[ch]
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer, 3)

    async def _writer(self, conn: PlainConn) -> None:
        try:
            while (frame := await conn.queue.get()) is not None:
                await conn.ws.send(frame)
            await conn.ws.close()
        except ConnectionClosed:
            pass

    def _on_request(self, conn: PlainConn, frame: str | bytes) -> None:
        try:
            req: Any = orjson.loads(frame)
        except orjson.JSONDecodeError:
            conn.deliver(orjson.dumps({"op": "error", "code": "bad_request"}))
            return
        if not isinstance(req, dict):
            return
        op = req.get("op")
        rid = req.get("id")
        channel = req.get("channel")
        if op == "hello":
            conn.user = str(req.get("user", "anon"))
            conn.deliver(orjson.dumps({"op": "auth_ok", "id": rid, "user": conn.user}))
        elif op == "join" and isinstance(channel, str):
            conn.channels.add(channel)
            self.channels.setdefault(channel, set()).add(conn)
            conn.deliver(orjson.dumps({"op": "ok", "id": rid, "channel": channel}))
        elif op == "publish" and isinstance(channel, str):
            mid = f"{self.node}-{next(self.counter)}"
            ts = time.time_ns() // 1_000_000
            payload = orjson.dumps(
                {"op": "msg", "channel": channel, "from": conn.user, "body": req.get("body"),
                 "mid": mid, "ts": ts}
            )  # fmt: skip
            delivered = 0
            for member in tuple(self.channels.get(channel, ())):
                if member is not conn:
                    member.deliver(payload)
                    delivered += 1
            conn.deliver(
                orjson.dumps({"op": "ack", "id": rid, "mid": mid, "ts": ts, "delivered": delivered})
            )
        elif op == "ping":
            conn.deliver(orjson.dumps({"op": "pong", "id": rid}))
        else:
            conn.deliver(orjson.dumps({"op": "error", "id": rid, "code": "unknown_op"}))


async def main_async(host: str, port: int) -> int:
    hub = PlainHub()
    server = await serve(
        hub.handler,
        host,
        port,
        max_size=MAX_FRAME,
        max_queue=16,
        compression=None,
        ping_interval=30,
        ping_timeout=30,
        close_timeout=2.0,
        server_header=None,
    )
    bound = next(iter(server.sockets)).getsockname()[1]
    print(f"baseline listening on ws://{host}:{bound}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    await server.wait_closed()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--no-uvloop", action="store_true")
    args = parser.parse_args()
    if not args.no_uvloop:
        with contextlib.suppress(ImportError):
            import uvloop

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return asyncio.run(main_async(args.host, args.port))


if __name__ == "__main__":
    raise SystemExit(main())
