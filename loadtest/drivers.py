"""One client connection, secure or plaintext, behind the same small interface.

``SecureDriver`` is the real SDK (``clients.sdk.Client``: TCP + WebSocket + X-Wing
handshake + token auth); ``PlainDriver`` is a plain websockets client with the same shape
(a reader task, a writer queue, futures keyed by request id) speaking the baseline's JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from typing import Any, Protocol

import jwt
import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from clients.sdk import Client, ClientOptions
from loadtest.servers import Target

MAX_FRAME = 65_536 + 38


def dev_token(user: str, secret: bytes, ttl_s: int = 3600) -> str:
    """A development HS256 token granting every channel (same claims as `plexigate token`)."""
    now = int(time.time())
    claims = {"sub": user, "iat": now, "exp": now + ttl_s, "chans": {"*": ["sub", "pub", "hist"]}}
    return jwt.encode(claims, secret, algorithm="HS256")


class Driver(Protocol):
    async def connect(self, user: str) -> None: ...
    async def join(self, channel: str) -> None: ...
    async def publish(self, channel: str, body: str) -> None: ...
    def publish_nowait(self, channel: str, body: str) -> None: ...
    async def recv_body(self) -> str: ...
    async def close(self) -> None: ...


class SecureDriver:
    def __init__(self, target: Target, timeout_s: float = 15.0) -> None:
        self.target = target
        self.options = ClientOptions(timeout_s=timeout_s)
        self.client: Client | None = None

    async def connect(self, user: str) -> None:
        token = dev_token(user, self.target.token_secret)
        self.client = await Client.connect(
            self.target.url, self.target.root_public_key, token, self.options
        )

    async def join(self, channel: str) -> None:
        assert self.client is not None
        await self.client.join(channel)

    async def publish(self, channel: str, body: str) -> None:
        assert self.client is not None
        await self.client.publish(channel, body)

    def publish_nowait(self, channel: str, body: str) -> None:
        assert self.client is not None
        self.client.send_raw(orjson.dumps({"op": "publish", "channel": channel, "body": body}))

    async def recv_body(self) -> str:
        assert self.client is not None
        return (await self.client.recv()).body

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()


class PlainClosed(Exception):
    pass


class PlainDriver:
    def __init__(self, target: Target, timeout_s: float = 15.0) -> None:
        self.target = target
        self.timeout_s = timeout_s
        self.ws: ClientConnection | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._messages: asyncio.Queue[str | None] = asyncio.Queue()
        self._out: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []

    async def connect(self, user: str) -> None:
        self.ws = await connect(
            self.target.url, max_size=MAX_FRAME, compression=None, open_timeout=self.timeout_s
        )
        self._tasks = [asyncio.create_task(self._read()), asyncio.create_task(self._write())]
        self.user = user

    async def hello(self, user: str) -> None:
        """The baseline's stand-in for auth: names the user, one round trip."""
        await self._request({"op": "hello", "user": user})

    async def join(self, channel: str) -> None:
        await self._request({"op": "join", "channel": channel})

    async def publish(self, channel: str, body: str) -> None:
        await self._request({"op": "publish", "channel": channel, "body": body})

    def publish_nowait(self, channel: str, body: str) -> None:
        self._out.put_nowait(orjson.dumps({"op": "publish", "channel": channel, "body": body}))

    async def recv_body(self) -> str:
        body = await self._messages.get()
        if body is None:
            self._messages.put_nowait(None)
            raise PlainClosed("connection closed")
        return body

    async def _request(self, obj: dict[str, Any]) -> dict[str, Any]:
        rid = next(self._ids)
        obj["id"] = rid
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        self._out.put_nowait(orjson.dumps(obj))
        try:
            async with asyncio.timeout(self.timeout_s):
                return await fut
        finally:
            self._pending.pop(rid, None)

    async def _write(self) -> None:
        assert self.ws is not None
        with contextlib.suppress(ConnectionClosed):
            while (frame := await self._out.get()) is not None:
                await self.ws.send(frame)

    async def _read(self) -> None:
        assert self.ws is not None
        try:
            async for frame in self.ws:
                obj = orjson.loads(frame)
                if obj.get("op") == "msg":
                    self._messages.put_nowait(str(obj["body"]))
                    continue
                fut = self._pending.get(obj.get("id"))
                if fut is not None and not fut.done():
                    fut.set_result(obj)
        except ConnectionClosed:
            pass
        finally:
            self._messages.put_nowait(None)
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(PlainClosed("connection closed"))

    async def close(self) -> None:
        if self.ws is None:
            return
        self._out.put_nowait(None)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._tasks[1], 2)
        await self.ws.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def make_driver(target: Target) -> SecureDriver | PlainDriver:
    return SecureDriver(target) if target.kind == "secure" else PlainDriver(target)


async def open_session(target: Target, user: str, full: bool = True) -> SecureDriver | PlainDriver:
    """Connect one client. Secure: TCP + WebSocket + handshake + auth. Plain: TCP +
    WebSocket, plus one hello round trip when ``full`` (the baseline's stand-in for auth)."""
    drv = make_driver(target)
    await drv.connect(user)
    if full and isinstance(drv, PlainDriver):
        await drv.hello(user)
    return drv
