"""The gateway: a websockets asyncio server whose handler runs one Connection each."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import defaultdict
from collections.abc import Mapping
from typing import TYPE_CHECKING

from websockets.asyncio.server import Server, ServerConnection, serve

from crypto.errors import CloseCode
from crypto.handshake import GatewayCredential
from crypto.kem import KemId
from crypto.session import ServerConfig
from crypto.ticket import AeadTicketSealer, TicketSealer
from gateway.auth import TokenVerifier
from gateway.channel_directory import ChannelDirectory
from gateway.channels import ChannelHub
from gateway.config import GatewayConfig
from gateway.connection import Connection
from gateway.metrics import Metrics
from gateway.ratelimit import TokenBucket
from gateway.stores.bus import Bus
from gateway.stores.history import History
from gateway.stores.tickets import MemoryTicketLedger, TicketLedger
from gateway.webclient import WebClient

if TYPE_CHECKING:
    from gateway.keyruntime import KeyRuntime

log = logging.getLogger("plexigate.server")


class Gateway:
    def __init__(
        self,
        config: GatewayConfig,
        credentials: Mapping[KemId, GatewayCredential],
        verifier: TokenVerifier,
        hub: ChannelHub | None = None,
        *,
        keys: KeyRuntime | None = None,
        directory: ChannelDirectory | None = None,
        bus: Bus | None = None,
        history: History | None = None,
        ticket_sealer: TicketSealer | None = None,
        tickets: TicketLedger | None = None,
        serve_web_client: bool = False,
    ) -> None:
        self.config = config
        # Resumption tickets: sealed under a key every node shares (keys dir or key store);
        # without one, a per-process key (tickets then resume on this process only).
        sealer = ticket_sealer or AeadTicketSealer.single(os.urandom(32))
        self.session_config = ServerConfig(
            dict(credentials), config.policy, config.session, ticket_sealer=sealer
        )
        self.tickets: TicketLedger = tickets or MemoryTicketLedger()
        self.verifier = verifier
        # keys: key store + storage key + rotator (serve --keystore); history is sealed
        # under the storage key and start()/close() run/stop automatic rotation.
        self.keys = keys
        # bus/history: MemoryBus + in-process history by default; RedisBus + RedisHistory
        # make this process one node of a cluster (serve --redis --cluster-key-file).
        self.hub = hub or ChannelHub(
            config.limits.history_per_channel,
            sealer=keys.storage if keys else None,
            bus=bus,
            history=history,
            history_max_bytes=config.limits.history_max_bytes,
            history_max_channels=config.limits.history_max_channels,
        )
        # Channel membership and settings, through Path ORAM (in memory by default).
        self.directory = directory or ChannelDirectory.memory(
            capacity=config.limits.directory_blocks
        )
        self.metrics = Metrics()
        # Development: the browser client over plain HTTP GET on the same port (webclient.py).
        self.web_client = WebClient() if serve_web_client else None
        self.close_timeout_s = 2.0
        self._by_user: dict[str, set[Connection]] = defaultdict(set)
        self._server: Server | None = None
        self._connections: set[Connection] = set()
        self._directory_budget: dict[str, TokenBucket] = {}
        self._watchdog: asyncio.Task[None] | None = None

    # -- connections ----------------------------------------------------------------
    async def _handler(self, ws: ServerConnection) -> None:
        self.metrics.count("connections")
        conn = Connection(ws, self)
        self._connections.add(conn)
        try:
            await conn.run()
        finally:
            self._connections.discard(conn)

    async def _watch_idle(self) -> None:
        """Close authenticated connections that sent nothing for ``idle_timeout_s``, and
        sessions whose token expired (a session that only rekeys or listens would
        otherwise outlive its token: expiry is not only checked at the next request)."""
        timeout = self.config.limits.idle_timeout_s
        while True:
            await asyncio.sleep(min(1.0, max(0.05, timeout / 4)))
            deadline = time.monotonic() - timeout
            now = time.time()
            # Budgets outlive connections (a reconnect must not refill one); drop only
            # those that have refilled completely.
            mono = time.monotonic()
            for user, bucket in tuple(self._directory_budget.items()):
                if bucket.is_full(mono):
                    del self._directory_budget[user]
            for conn in tuple(self._connections):
                principal = conn.principal
                if principal is None:
                    continue
                if principal.expires_at < now:
                    conn.fail(CloseCode.TOKEN_EXPIRED, "token expired")
                elif conn.last_rx < deadline:
                    conn.fail(CloseCode.IDLE_TIMEOUT, "idle timeout")

    def charge_directory(self, user: str, accesses: int) -> bool:
        """Charge a directory call to the user's budget (shared by their connections):
        ORAM work is CPU on the event loop, so one user must not starve the others."""
        limits = self.config.limits
        bucket = self._directory_budget.get(user)
        if bucket is None:
            bucket = self._directory_budget[user] = TokenBucket(
                limits.directory_accesses_per_s, limits.directory_accesses_burst
            )
        return bucket.take(time.monotonic(), accesses)

    def admit(self, user: str, conn: Connection) -> bool:
        conns = self._by_user[user]
        if len(conns) >= self.config.limits.max_connections_per_user:
            return False
        conns.add(conn)
        return True

    def forget(self, conn: Connection) -> None:
        conn.leave_all()
        conns = self._by_user.get(conn.user)
        if conns is not None:
            conns.discard(conn)
            if not conns:
                del self._by_user[conn.user]

    @property
    def sessions(self) -> int:
        return sum(len(c) for c in self._by_user.values())

    # -- server ---------------------------------------------------------------------
    async def start(self) -> Server:
        self._server = await serve(
            self._handler,
            self.config.host,
            self.config.port,
            max_size=self.config.limits.max_frame_bytes,
            max_queue=16,
            compression=None,  # compressing ciphertext is useless; no CRIME-style leaks
            ping_interval=30,
            ping_timeout=30,
            close_timeout=self.close_timeout_s,
            server_header=None,
            process_request=self.web_client,
        )
        self.hub.start()
        if self.keys is not None:
            self.keys.start()
        await self.tickets.start()
        self._watchdog = asyncio.create_task(self._watch_idle())
        return self._server

    @property
    def port(self) -> int:
        assert self._server is not None
        for sock in self._server.sockets:
            return int(sock.getsockname()[1])
        raise RuntimeError("server has no socket")

    @property
    def url(self) -> str:
        return f"ws://{self.config.host}:{self.port}"

    async def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        await self.hub.aclose()
        await self.directory.aclose()
        await self.tickets.aclose()
        if self.keys is not None:
            await self.keys.aclose()


def install_uvloop() -> bool:
    """Use uvloop when installed (faster event loop); returns whether it is in use."""
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True
