"""A real gateway on a loopback port (port 0), in-process, wired like `plexigate demo`."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from session_helpers import deployment

from clients.sdk import Client, ClientOptions
from gateway.auth import TokenVerifier
from gateway.config import GatewayConfig
from gateway.connection import Connection
from gateway.server import Gateway
from plexigate.devtoken import issue_token

ALL = ("sub", "pub", "hist")


@dataclass
class Running:
    gateway: Gateway
    hs256_secret: bytes
    ed25519_key: Ed25519PrivateKey
    clients: list[Client] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.gateway.url

    @property
    def root_public(self) -> bytes:
        return deployment().root_public

    def token(
        self,
        user: str,
        grants: Mapping[str, Sequence[str]] | None = None,
        ttl_s: int = 3600,
        *,
        eddsa: bool = False,
        now: float | None = None,
    ) -> str:
        g = grants if grants is not None else {"*": ALL}
        if eddsa:
            return issue_token(user, g, ttl_s, ed25519_key=self.ed25519_key, now=now)
        return issue_token(user, g, ttl_s, hs256_secret=self.hs256_secret, now=now)

    async def client(
        self, token: str | None = None, options: ClientOptions | None = None
    ) -> Client:
        c = await Client.connect(self.url, self.root_public, token, options)
        self.clients.append(c)
        return c

    def connections(self) -> list[Connection]:
        return [c for conns in self.gateway._by_user.values() for c in conns]


@asynccontextmanager
async def running_gateway(
    config: GatewayConfig | None = None, **verifier_kwargs: Any
) -> AsyncIterator[Running]:
    secret = secrets.token_bytes(32)
    ed_key = Ed25519PrivateKey.generate()
    kwargs: dict[str, Any] = {
        "hs256_secrets": (secret,),
        "ed25519_keys": (ed_key.public_key(),),
    }
    kwargs.update(verifier_kwargs)
    gw = Gateway(config or GatewayConfig(port=0), deployment().credentials, TokenVerifier(**kwargs))
    await gw.start()
    run = Running(gw, secret, ed_key)
    try:
        yield run
    finally:
        for c in run.clients:
            try:
                await c.close()
            except Exception:  # best-effort cleanup
                pass
        await gw.close()
