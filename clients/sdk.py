"""asyncio client SDK: drives the same ClientSession state machine as the gateway's peer.

async with await Client.connect(url, root_public_key, token) as client:
    await client.join("lobby")
    await client.publish("lobby", "hello")
    msg = await client.recv()
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from crypto.errors import CloseCode
from crypto.events import (
    ApplicationData,
    HandshakeComplete,
    KeyUpdated,
    SessionFailed,
    TicketReceived,
)
from crypto.session import ClientConfig, ClientSession, SessionLimits
from crypto.suite import SuitePolicy
from crypto.ticket import ResumptionTicket

log = logging.getLogger("plexichat.client")


class ClientError(Exception):
    """Base of the SDK's errors."""


class SessionClosed(ClientError):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"session closed: code={code} reason={reason}")
        self.code = code
        self.reason = reason


class RequestError(ClientError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Message:
    channel: str
    sender: str
    body: str
    mid: str
    ts: int


@dataclass(slots=True)
class ClientOptions:
    policy: SuitePolicy = field(default_factory=SuitePolicy)
    limits: SessionLimits = field(default_factory=SessionLimits)
    timeout_s: float = 10.0
    max_frame_bytes: int = 65_536 + 38


_CLOSED = object()
# Close codes after which a refused resumption falls back to a full handshake.
_RESUME_FALLBACK = frozenset(
    {CloseCode.TICKET_REJECTED, CloseCode.TOKEN_EXPIRED, CloseCode.HANDSHAKE_FAILED}
)


class Client:
    def __init__(self, ws: ClientConnection, session: ClientSession, options: ClientOptions):
        self._ws = ws
        self.session = session
        self.options = options
        self.suite = session.suite.name if session.suite else "?"
        self.user: str | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._messages: asyncio.Queue[Message | object] = asyncio.Queue()
        self._out: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.closed: SessionClosed | None = None
        self.rekeys = 0
        self.resumed = False
        self.ticket: ResumptionTicket | None = None  # newest; each ticket resumes once
        self._ticket_ready = asyncio.Event()
        self._authenticated = asyncio.Event()
        self._reader = asyncio.create_task(self._read_loop())
        self._writer = asyncio.create_task(self._write_loop())

    # -- connecting ------------------------------------------------------------------
    @classmethod
    async def connect(
        cls,
        url: str,
        root_public_key: bytes,
        token: str | None = None,
        options: ClientOptions | None = None,
        ticket: ResumptionTicket | None = None,
    ) -> Client:
        """Open a secure session; with ``ticket``, resume (no token needed) and fall back
        to a full handshake with ``token`` if the gateway refuses the ticket."""
        opts = options or ClientOptions()
        if ticket is not None and ticket.expires_at_ms > time.time_ns() // 1_000_000:
            try:
                client = await cls._open(url, root_public_key, opts, ticket)
                try:
                    async with asyncio.timeout(opts.timeout_s):
                        await client._authenticated.wait()  # also set when closed
                    if client.closed is not None:
                        raise client.closed
                except BaseException:
                    await client.close()
                    raise
                return client
            except SessionClosed as exc:
                if token is None or exc.code not in _RESUME_FALLBACK:
                    raise
                log.info("ticket refused (%d); full handshake", exc.code)
        client = await cls._open(url, root_public_key, opts, None)
        if token is not None:
            try:
                await client.authenticate(token)
            except BaseException:
                await client.close()  # no half-open client left behind
                raise
        return client

    @classmethod
    async def _open(
        cls,
        url: str,
        root_public_key: bytes,
        opts: ClientOptions,
        ticket: ResumptionTicket | None,
    ) -> Client:
        ws = await connect(
            url, max_size=opts.max_frame_bytes, compression=None, open_timeout=opts.timeout_s
        )
        config = ClientConfig(root_public_key, opts.policy, opts.limits)
        session = ClientSession(config, None, ticket)
        try:
            async with asyncio.timeout(opts.timeout_s):
                session.connect()
                while True:
                    for frame in session.data_to_send():
                        await ws.send(frame)
                    done = False
                    for event in session.events_received():
                        if isinstance(event, SessionFailed):
                            await ws.close(event.code, event.reason)
                            raise SessionClosed(event.code, event.reason)
                        if isinstance(event, HandshakeComplete):
                            done = True
                    if done:
                        break
                    frame_in = await ws.recv()
                    if isinstance(frame_in, str):
                        await ws.close(CloseCode.UNSUPPORTED_DATA, "text frame")
                        raise SessionClosed(CloseCode.UNSUPPORTED_DATA, "text frame")
                    session.receive_data(frame_in)
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd else 1006
            reason = exc.rcvd.reason if exc.rcvd else "connection lost"
            raise SessionClosed(code, reason) from None
        except BaseException:
            await ws.close()
            raise
        return cls(ws, session, opts)

    async def next_ticket(self, timeout_s: float = 5.0) -> ResumptionTicket:
        """The newest resumption ticket, waiting for the first one if none arrived yet."""
        async with asyncio.timeout(timeout_s):
            await self._ticket_ready.wait()
        assert self.ticket is not None
        return self.ticket

    # -- requests --------------------------------------------------------------------
    async def authenticate(self, token: str) -> dict[str, Any]:
        reply = await self._request({"op": "auth", "token": token})
        self.user = str(reply.get("user"))
        self._authenticated.set()
        return reply

    async def join(self, channel: str) -> None:
        await self._request({"op": "join", "channel": channel})

    async def leave(self, channel: str) -> None:
        await self._request({"op": "leave", "channel": channel})

    async def publish(self, channel: str, body: str) -> dict[str, Any]:
        """Publish and wait for the gateway's acknowledgement (mid, ts, delivered)."""
        return await self._request({"op": "publish", "channel": channel, "body": body})

    async def history(self, channel: str, limit: int = 50) -> list[Message]:
        reply = await self._request({"op": "history", "channel": channel, "limit": limit})
        return [_message(m) for m in reply.get("messages", [])]

    async def members(self, channel: str) -> list[str]:
        """Durable members of a channel (kept by the gateway through Path ORAM)."""
        reply = await self._request({"op": "members", "channel": channel})
        return [str(m) for m in reply.get("members", [])]

    async def channels(self) -> list[str]:
        """The channels this user is a member of (to rejoin after a reconnect)."""
        reply = await self._request({"op": "channels"})
        return [str(c) for c in reply.get("channels", [])]

    async def settings(self, channel: str) -> dict[str, Any]:
        reply = await self._request({"op": "settings", "channel": channel})
        settings = reply.get("settings", {})
        return dict(settings) if isinstance(settings, dict) else {}

    async def set_settings(self, channel: str, settings: dict[str, Any]) -> None:
        await self._request({"op": "set_settings", "channel": channel, "settings": settings})

    async def ping(self) -> None:
        await self._request({"op": "ping"})

    def rekey(self) -> None:
        """Start an in-band rekey now (the session also rekeys by its own limits)."""
        self.session.start_rekey()
        self._flush()

    async def recv(self) -> Message:
        item = await self._messages.get()
        if item is _CLOSED:
            self._messages.put_nowait(_CLOSED)
            assert self.closed is not None
            raise self.closed
        assert isinstance(item, Message)
        return item

    async def messages(self) -> AsyncIterator[Message]:
        while True:
            try:
                yield await self.recv()
            except SessionClosed:
                return

    async def _request(self, obj: dict[str, Any]) -> dict[str, Any]:
        if self.closed is not None:
            raise self.closed
        rid = next(self._ids)
        obj["id"] = rid
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        self.send_raw(orjson.dumps(obj))
        try:
            async with asyncio.timeout(self.options.timeout_s):
                reply = await fut
        finally:
            self._pending.pop(rid, None)
        if reply.get("op") == "error":
            raise RequestError(str(reply.get("code")), str(reply.get("message")))
        return reply

    def send_raw(self, payload: bytes) -> None:
        """Seal and queue one application payload (no reply tracking)."""
        if self.closed is not None:
            raise self.closed
        self.session.send(payload)
        self._flush()

    def _flush(self) -> None:
        for frame in self.session.data_to_send():
            self._out.put_nowait(frame)
        self._handle_events()

    # -- I/O tasks -------------------------------------------------------------------
    async def _write_loop(self) -> None:
        try:
            while (frame := await self._out.get()) is not None:
                await self._ws.send(frame)
        except ConnectionClosed:
            pass

    async def _read_loop(self) -> None:
        try:
            async for frame in self._ws:
                if isinstance(frame, str):
                    await self._ws.close(CloseCode.UNSUPPORTED_DATA, "text frame")
                    break
                self.session.receive_data(frame)
                self._flush()
                if self.closed is not None:
                    break
        except ConnectionClosed:
            pass
        finally:
            rcvd = self._ws.protocol.close_rcvd
            if self.closed is None:
                self._set_closed(
                    SessionClosed(rcvd.code, rcvd.reason) if rcvd else SessionClosed(1006, "lost")
                )

    def _handle_events(self) -> None:
        for event in self.session.events_received():
            if isinstance(event, ApplicationData):
                self._on_payload(event.data)
            elif isinstance(event, TicketReceived):
                self.ticket = event.ticket
                self._ticket_ready.set()
            elif isinstance(event, KeyUpdated):
                self.rekeys += 1
            elif isinstance(event, SessionFailed):
                log.warning("session failed: code=%d reason=%s", event.code, event.reason)
                self._set_closed(SessionClosed(event.code, event.reason))
                self._out.put_nowait(None)
                asyncio.get_running_loop().create_task(self._ws.close(event.code, event.reason))

    def _on_payload(self, data: bytes) -> None:
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            log.warning("gateway sent a payload that is not JSON")
            return
        if not isinstance(obj, dict):
            return
        if obj.get("op") == "auth_ok" and obj.get("id") is None:  # resumed session
            self.user = str(obj.get("user"))
            self.resumed = bool(obj.get("resumed"))
            self._authenticated.set()
            return
        if obj.get("op") == "msg":
            with contextlib.suppress(KeyError, TypeError):
                self._messages.put_nowait(_message(obj))
            return
        fut = self._pending.get(obj.get("id"))  # type: ignore[arg-type]
        if fut is not None and not fut.done():
            fut.set_result(obj)

    def _set_closed(self, exc: SessionClosed) -> None:
        if self.closed is None:
            self.closed = exc
        self._authenticated.set()  # wake a resuming connect() waiting for auth_ok
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(exc)
        self._messages.put_nowait(_CLOSED)

    # -- closing ---------------------------------------------------------------------
    async def close(self) -> None:
        self._out.put_nowait(None)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._writer, 2)
        await self._ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader
        if self.closed is None:
            self._set_closed(SessionClosed(1000, "closed by client"))

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


def _message(obj: dict[str, Any]) -> Message:
    return Message(
        str(obj["channel"]), str(obj["from"]), str(obj["body"]), str(obj["mid"]), int(obj["ts"])
    )
