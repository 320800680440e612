"""Test helpers: a deployment PKI, in-memory session pairs, and an in-process gateway."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import lru_cache

from crypto.cert import RootKey
from crypto.handshake import GatewayCredential
from crypto.kem import KEMS, KemId
from crypto.session import (
    ClientConfig,
    ClientSession,
    ServerConfig,
    ServerSession,
    Session,
    SessionLimits,
)
from crypto.suite import SuitePolicy
from gateway.auth import TokenVerifier
from gateway.config import GatewayConfig, GatewayLimits
from gateway.server import Gateway
from plexigate.devtoken import issue_token

HS256_SECRET = b"test-secret-test-secret-test-sec"


@dataclass(frozen=True)
class Pki:
    root: RootKey
    root_public: bytes
    credentials: dict[KemId, GatewayCredential]


@lru_cache(maxsize=1)
def pki() -> Pki:
    root = RootKey.from_seed(bytes(range(32)))
    now = int(time.time())
    creds = {}
    for kem in KEMS.values():
        key = kem.from_seed(bytes([kem.kem_id]) * 32)
        cert = root.certify(kem, key.public_bytes, now - 3600, now + 86400 * 30)
        creds[kem.kem_id] = GatewayCredential(key, cert)
    return Pki(root, root.public_bytes(), creds)


def session_pair(
    client_policy: SuitePolicy | None = None,
    server_policy: SuitePolicy | None = None,
    limits: SessionLimits | None = None,
    client_clock: Callable[[], int] | None = None,
    server_clock: Callable[[], int] | None = None,
) -> tuple[ClientSession, ServerSession]:
    p = pki()
    lim = limits or SessionLimits()
    c = ClientSession(
        ClientConfig(p.root_public, client_policy or SuitePolicy(), lim), client_clock
    )
    s = ServerSession(
        ServerConfig(p.credentials, server_policy or SuitePolicy(), lim), server_clock
    )
    return c, s


def pump(a: Session, b: Session, mutate: Callable[[bytes], bytes] | None = None) -> int:
    """Move every queued frame from a to b; returns how many moved."""
    frames = a.data_to_send()
    for f in frames:
        b.receive_data(mutate(f) if mutate else f)
    return len(frames)


def handshake(c: ClientSession, s: ServerSession) -> None:
    c.connect()
    while pump(c, s) + pump(s, c):
        pass


def token(user: str, grants: dict[str, list[str]] | None = None, ttl: int = 3600) -> str:
    return issue_token(
        user, grants or {"*": ["sub", "pub", "hist"]}, ttl, hs256_secret=HS256_SECRET
    )


@dataclass
class GatewayOptions:
    policy: SuitePolicy = field(default_factory=SuitePolicy)
    limits: GatewayLimits = field(default_factory=GatewayLimits)
    session: SessionLimits = field(default_factory=SessionLimits)
    verifier: TokenVerifier = field(
        default_factory=lambda: TokenVerifier(hs256_secrets=(HS256_SECRET,))
    )


@asynccontextmanager
async def running_gateway(options: GatewayOptions | None = None) -> AsyncIterator[Gateway]:
    """A real gateway on a random loopback port."""
    o = options or GatewayOptions()
    config = GatewayConfig(port=0, policy=o.policy, session=o.session, limits=o.limits)
    gw = Gateway(config, pki().credentials, o.verifier)
    await gw.start()
    try:
        yield gw
    finally:
        await gw.close()
