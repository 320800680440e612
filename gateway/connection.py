"""One WebSocket <-> one ServerSession. The only place that writes to the socket.

Reads feed the session; everything the session emits goes through one bounded outbound
queue drained by one writer task, so a slow reader can never grow the gateway's memory
past ``outbound_queue`` records: it is closed with SLOW_CONSUMER instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, TypeVar

from redis.exceptions import RedisError
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from crypto.errors import CloseCode
from crypto.events import (
    ApplicationData,
    HandshakeComplete,
    KeyUpdated,
    ResumptionRequested,
    SessionFailed,
)
from crypto.oram_errors import OramIntegrityError
from crypto.session import ServerSession, State
from gateway.auth import Action, AuthError, Principal
from gateway.channel_directory import DirectoryFull, RecordTooLarge
from gateway.channels import Delivery
from gateway.ops import OpError, Request, encode, parse_request
from gateway.ratelimit import TokenBucket
from gateway.stores.bus import BusUnavailable

if TYPE_CHECKING:
    from gateway.server import Gateway

log = logging.getLogger("plexigate.connection")
T = TypeVar("T")


class Connection:
    def __init__(self, ws: ServerConnection, gateway: Gateway) -> None:
        self.ws = ws
        self.gw = gateway
        self.session = ServerSession(gateway.session_config)
        self.principal: Principal | None = None
        self.user = "-"
        self.channels: set[str] = set()
        self.closing = False
        self.last_rx = time.monotonic()
        self._ticket_principal: Principal | None = None
        # Largest plaintext one record carries (the session's frame limit less overhead).
        self.max_payload = gateway.session_config.limits.max_record_size - 38
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._close: tuple[int, str] = (CloseCode.NORMAL, "")
        limits = gateway.config.limits
        self._bucket = TokenBucket(limits.publish_rate_per_s, limits.publish_burst)
        try:
            host, port = ws.remote_address[:2]
            self.peer = f"{host}:{port}"
        except (TypeError, ValueError):
            self.peer = "?"

    # -- lifecycle -------------------------------------------------------------------
    async def run(self) -> None:
        writer = asyncio.create_task(self._writer())
        limits = self.gw.config.limits
        try:
            try:
                async with asyncio.timeout(limits.handshake_timeout_s):
                    while self.principal is None and not self.closing:
                        await self._feed(await self.ws.recv())
            except TimeoutError:
                self.gw.metrics.count("handshake_timeout")
                self.fail(CloseCode.HANDSHAKE_TIMEOUT, "handshake timeout")
            # Idle connections are closed by the gateway's watchdog (one timer for all,
            # instead of a timeout object per frame on the hot path).
            while not self.closing:
                frame = await self.ws.recv()
                self.last_rx = time.monotonic()
                await self._feed(frame)
        except ConnectionClosed as exc:
            rcvd = exc.rcvd
            if rcvd is not None and rcvd.code not in (1000, 1001):
                log.info("peer %s user %s closed with %d", self.peer, self.user, rcvd.code)
            sent = exc.sent
            if sent is not None and sent.code == CloseCode.MESSAGE_TOO_BIG:
                log.info("closing %s: code=1009 reason=frame too large", self.peer)
                self.gw.metrics.count("close_1009")
        except Exception:
            # A bug must not take the gateway down or leak details: generic close code.
            log.exception("internal error on %s user %s", self.peer, self.user)
            self.gw.metrics.count("internal_error")
            self.fail(CloseCode.INTERNAL_ERROR, "internal error")
        finally:
            self.closing = True
            self._queue.put_nowait(None)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer, self.gw.close_timeout_s + 1)
            if not writer.done():
                writer.cancel()
                self.ws.transport.abort()
            self.gw.forget(self)

    async def _writer(self) -> None:
        ws = self.ws
        try:
            while True:
                frame = await self._queue.get()
                if frame is None:
                    break
                await ws.send(frame)
            code, reason = self._close
            await asyncio.wait_for(ws.close(code, reason), self.gw.close_timeout_s)
        except (ConnectionClosed, TimeoutError):
            pass
        except Exception:
            log.exception("writer for %s failed", self.peer)
            self.ws.transport.abort()

    def fail(self, code: int, reason: str) -> None:
        """Close the connection with ``code``; logged once, never with secrets."""
        if self.closing:
            return
        self.closing = True
        log.info("closing %s user %s: code=%d reason=%s", self.peer, self.user, code, reason)
        self.gw.metrics.count(f"close_{int(code)}")
        self._close = (int(code), reason)
        self._queue.put_nowait(None)

    # -- input -----------------------------------------------------------------------
    async def _feed(self, frame: str | bytes) -> None:
        if self.closing:
            return
        if isinstance(frame, str):
            self.fail(CloseCode.UNSUPPORTED_DATA, "text frame where binary was due")
            return
        self.session.receive_data(frame)
        self._flush()
        for event in self.session.events_received():
            if isinstance(event, ApplicationData):
                await self._on_request(event.data)
            elif isinstance(event, SessionFailed):
                self.gw.metrics.count("session_failed")
                self.fail(event.code, event.reason)
                return
            elif isinstance(event, HandshakeComplete):
                self.gw.metrics.count("resumptions" if event.resumed else "handshakes")
                if event.resumed:
                    self._resumed()
            elif isinstance(event, ResumptionRequested):
                await self._claim_ticket(event)
            elif isinstance(event, KeyUpdated):
                self.gw.metrics.count("rekeys")
                log.debug("session %s rekeyed to epoch %d", self.peer, event.epoch)
            if self.closing:
                return

    def _flush(self) -> None:
        for data in self.session.data_to_send():
            self._enqueue(data)

    def _enqueue(self, data: bytes) -> None:
        if self.closing:
            return
        if self._queue.qsize() >= self.gw.config.limits.outbound_queue:
            # Drop what is queued: the reader is too slow, and memory must stay bounded.
            while not self._queue.empty():
                self._queue.get_nowait()
            self.fail(CloseCode.SLOW_CONSUMER, "slow consumer")
            return
        self._queue.put_nowait(data)

    # -- output ----------------------------------------------------------------------
    def deliver(self, payload: bytes) -> bool:
        """Seal one application payload for this session and queue it; False if not sent.

        Never raises: a fan-out loop calls it for every member."""
        if self.closing or self.session.state is not State.ESTABLISHED:
            return False
        if len(payload) > self.max_payload:
            # Callers size their payloads; reaching this is a bug, not the peer's fault.
            log.error(
                "dropped a %d-byte payload for %s: over the record limit", len(payload), self.peer
            )
            return False
        self.session.send(payload)
        self._flush()
        for event in self.session.events_received():
            if isinstance(event, SessionFailed):
                self.fail(event.code, event.reason)
        return not self.closing

    def _reply(self, obj: dict[str, object]) -> None:
        self.deliver(encode(obj))

    # -- application requests ----------------------------------------------------------
    async def _on_request(self, data: bytes) -> None:
        limits = self.gw.config.limits
        try:
            req = parse_request(data, limits.max_body_bytes)
        except OpError as exc:
            if self.principal is None:  # the first request must be a valid auth
                self.fail(CloseCode.AUTH_REQUIRED, "request before authentication")
                return
            self._op_error(exc)
            return
        if self.principal is None:
            if req.op != "auth":
                self.fail(CloseCode.AUTH_REQUIRED, "request before authentication")
                return
            self._auth(req)
            return
        if self.principal.expires_at < time.time():
            self.fail(CloseCode.TOKEN_EXPIRED, "token expired")
            return
        try:
            if req.op == "auth":
                raise OpError("already_authenticated", "already authenticated", req.id)
            handler = getattr(self, f"_op_{req.op}")
            result = handler(req)
            if result is not None:  # directory ops go through the ORAM and are awaited
                await result
        except OpError as exc:
            exc.request_id = req.id
            self._op_error(exc)

    def _op_error(self, exc: OpError) -> None:
        log.info("request error from %s user %s: %s", self.peer, self.user, exc.code)
        self.gw.metrics.count(f"op_error_{exc.code}")
        self._reply({"op": "error", "id": exc.request_id, "code": exc.code, "message": exc.message})

    # -- resumption ---------------------------------------------------------------------
    async def _claim_ticket(self, event: ResumptionRequested) -> None:
        """A ticket passed its checks: restore who it authenticated, spend it once."""
        try:
            principal = Principal.from_bytes(event.principal)
        except AuthError:
            self.fail(CloseCode.TICKET_REJECTED, "ticket principal malformed")
            return
        if principal.expires_at < time.time():
            self.fail(CloseCode.TOKEN_EXPIRED, "token behind the ticket expired")
            return
        try:
            first = await self.gw.tickets.claim(event.ticket_id, event.issued_ms, event.expires_ms)
        except (OSError, RedisError):
            log.warning("ticket ledger unavailable; refusing resumption from %s", self.peer)
            first = False
        if self.closing:
            return
        if not first:
            self.gw.metrics.count("ticket_reused")
            self.session.reject_resumption()
            self.fail(CloseCode.TICKET_REJECTED, "ticket already used or ledger unavailable")
            return
        self._ticket_principal = principal
        self.session.accept_resumption()
        self._flush()

    def _resumed(self) -> None:
        principal = self._ticket_principal
        assert principal is not None
        if not self.gw.admit(principal.user, self):
            self.fail(CloseCode.TOO_MANY_CONNECTIONS, "too many connections for user")
            return
        self.principal = principal
        self.user = principal.user
        log.info("session %s resumed as %s", self.peer, self.user)
        self._reply(
            {
                "op": "auth_ok",
                "id": None,
                "user": principal.user,
                "expires": principal.expires_at,
                "resumed": True,
            }
        )
        self._issue_ticket()

    def _issue_ticket(self) -> None:
        """Give the client a fresh single-use ticket, valid no longer than its token."""
        assert self.principal is not None
        lifetime = min(
            self.gw.config.limits.ticket_lifetime_s, int(self.principal.expires_at - time.time())
        )
        if lifetime > 0 and self.session.issue_ticket(self.principal.to_bytes(), lifetime):
            self._flush()

    def _auth(self, req: Request) -> None:
        assert req.token is not None
        try:
            principal = self.gw.verifier.verify(req.token)
        except AuthError as exc:
            self.gw.metrics.count("auth_failed")
            self.fail(exc.close_code, exc.reason)
            return
        if not self.gw.admit(principal.user, self):
            self.fail(CloseCode.TOO_MANY_CONNECTIONS, "too many connections for user")
            return
        self.principal = principal
        self.user = principal.user
        log.info(
            "session %s authenticated as %s (%s)",
            self.peer,
            self.user,
            self.session.suite.name if self.session.suite else "?",
        )
        self._reply(
            {"op": "auth_ok", "id": req.id, "user": principal.user, "expires": principal.expires_at}
        )
        self._issue_ticket()

    def _require(self, channel: str, action: Action, rid: int | None) -> None:
        assert self.principal is not None
        if not self.principal.can(channel, action):
            raise OpError("forbidden", f"no {action.value} permission for this channel", rid)

    async def _op_join(self, req: Request) -> None:
        assert req.channel is not None
        self._require(req.channel, Action.SUBSCRIBE, req.id)
        if req.channel not in self.channels:
            if len(self.channels) >= self.gw.config.limits.max_channels_per_connection:
                raise OpError("too_many_channels", "channel limit reached", req.id)
            # Durable membership lives in the ORAM directory; the hub only knows sockets.
            await self._directory(req, "add_member", req.channel, self.user)
            if self.closing:
                return
            self.channels.add(req.channel)
            if self.gw.hub.join(self, req.channel) and self.gw.hub.clustered:
                await self.gw.hub.ready(req.channel)  # other nodes' messages reach us now
        self._reply({"op": "ok", "id": req.id, "channel": req.channel})

    async def _op_leave(self, req: Request) -> None:
        assert req.channel is not None
        await self._directory(req, "remove_member", req.channel, self.user)
        if req.channel in self.channels:
            self.channels.discard(req.channel)
            self.gw.hub.leave(self, req.channel)
        self._reply({"op": "ok", "id": req.id, "channel": req.channel})

    async def _op_members(self, req: Request) -> None:
        assert req.channel is not None
        self._require(req.channel, Action.SUBSCRIBE, req.id)
        members = await self._directory(req, "members", req.channel)
        self._reply(
            {"op": "members", "id": req.id, "channel": req.channel, "members": sorted(members)}
        )

    async def _op_channels(self, req: Request) -> None:
        channels = await self._directory(req, "channels_of", self.user)
        self._reply({"op": "channels", "id": req.id, "channels": sorted(channels)})

    async def _op_settings(self, req: Request) -> None:
        assert req.channel is not None
        self._require(req.channel, Action.SUBSCRIBE, req.id)
        settings = await self._directory(req, "get_settings", req.channel)
        self._reply({"op": "settings", "id": req.id, "channel": req.channel, "settings": settings})

    async def _op_set_settings(self, req: Request) -> None:
        assert req.channel is not None and req.settings is not None
        self._require(req.channel, Action.PUBLISH, req.id)
        if req.channel not in self.channels:
            # Settings records cost directory space: only members may create them.
            raise OpError("not_joined", "join the channel before changing its settings", req.id)
        await self._directory(req, "set_settings", req.channel, req.settings)
        self._reply({"op": "ok", "id": req.id, "channel": req.channel})

    async def _directory(self, req: Request, call: str, *args: Any) -> Any:
        """Run one directory call, charged to the user's budget of ORAM accesses; its
        failures become request errors, never crashes."""
        directory = self.gw.directory
        if not self.gw.charge_directory(self.user, directory.accesses_for(call)):
            raise OpError("rate_limited", "channel directory budget exceeded", req.id)
        for attempt in (1, 2):
            try:
                return await getattr(directory, call)(*args)
            except (DirectoryFull, RecordTooLarge):
                raise OpError(
                    "directory_full", "channel directory record is full", req.id
                ) from None
            except OramIntegrityError:
                if attempt == 1 and await directory.recover_if_wiped():
                    log.warning(
                        "channel directory storage was emptied (Redis restarted "
                        "without persistence?): started an empty directory; "
                        "durable memberships and settings were lost"
                    )
                    self.gw.metrics.count("directory_reset")
                    continue
                log.error(
                    "channel directory failed its integrity check (storage modified, "
                    "rolled back or partly lost); refusing directory operations"
                )
                self.gw.metrics.count("oram_integrity_error")
                raise OpError("unavailable", "channel directory unavailable", req.id) from None
            except (OSError, RedisError):
                log.warning("channel directory storage unavailable")
                raise OpError("unavailable", "channel directory unavailable", req.id) from None
        raise AssertionError("unreachable")

    def _op_publish(self, req: Request) -> None:
        assert req.channel is not None and req.body is not None
        self._require(req.channel, Action.PUBLISH, req.id)
        if not self._bucket.take(time.monotonic()):
            raise OpError("rate_limited", "publish rate exceeded", req.id)
        hub = self.gw.hub
        if hub.clustered:  # through Redis: ack (or error) when it took the message
            rid = req.id
            hub.publish_async(self, req.channel, req.body, lambda r: self._published(rid, r))
            return
        self._published(req.id, hub.publish(self, req.channel, req.body))

    def _published(self, rid: int | None, d: Delivery | BaseException) -> None:
        if isinstance(d, BaseException):
            self._op_error(OpError("unavailable", "message bus unavailable", rid))
            return
        self.gw.metrics.count("published")
        self._reply({"op": "ack", "id": rid, "mid": d.mid, "ts": d.ts, "delivered": d.delivered})

    def _op_history(self, req: Request) -> Awaitable[None] | None:
        assert req.channel is not None
        self._require(req.channel, Action.HISTORY, req.id)
        limit = min(
            req.limit if req.limit is not None else 50, self.gw.config.limits.history_per_channel
        )
        if self.gw.hub.clustered:
            return self._history_async(req, limit)
        self._send_history(req, self.gw.hub.history(req.channel, limit))
        return None

    async def _history_async(self, req: Request, limit: int) -> None:
        assert req.channel is not None
        try:
            entries = await self.gw.hub.ahistory(req.channel, limit)
        except (BusUnavailable, OSError, RedisError):
            raise OpError("unavailable", "history store unavailable", req.id) from None
        self._send_history(req, entries)

    def _send_history(self, req: Request, entries: list[bytes]) -> None:
        """One record: the newest entries that fit, oldest first (``truncated`` if cut)."""
        head = encode({"op": "history", "id": req.id, "channel": req.channel})[:-1]
        budget = self.max_payload - len(head) - 64
        kept: list[bytes] = []
        for entry in reversed(entries):
            budget -= len(entry) + 1
            if budget < 0:
                break
            kept.append(entry)
        kept.reverse()
        truncated = b"true" if len(kept) < len(entries) else b"false"
        self.deliver(
            head + b',"truncated":' + truncated + b',"messages":[' + b",".join(kept) + b"]}"
        )

    def _op_ping(self, req: Request) -> None:
        self._reply({"op": "pong", "id": req.id})

    def leave_all(self) -> None:
        for channel in self.channels:
            self.gw.hub.leave(self, channel)
        self.channels.clear()
