"""Authentication, permissions and per-connection limits, end to end on real sockets.

Each test starts gateway.server.Gateway on a loopback port (port 0) in this process and
talks to it with clients.sdk.Client, so every request crosses the handshake, the record
layer and the gateway's op handlers.
"""

from __future__ import annotations

import asyncio
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from gateway_helpers import running_gateway

from clients.sdk import Client, RequestError, SessionClosed
from gateway.config import GatewayConfig, GatewayLimits
from plexigate.devtoken import issue_token


def _limits(**kw: object) -> GatewayConfig:
    return GatewayConfig(port=0, limits=GatewayLimits(**kw))  # type: ignore[arg-type]


async def _refused(url: str, root: bytes, token: str) -> int:
    with pytest.raises(SessionClosed) as info:
        await Client.connect(url, root, token)
    return info.value.code


async def _forbidden(coro: object) -> str:
    with pytest.raises(RequestError) as info:
        await coro  # type: ignore[misc]
    return info.value.code


async def test_token_lacking_channel_cannot_join_publish_or_read_history() -> None:
    async with running_gateway() as gw:
        owner = await gw.client(gw.token("owner", {"secret": ["sub", "pub", "hist"]}))
        await owner.join("secret")
        await owner.publish("secret", "classified")
        outsider = await gw.client(gw.token("eve", {"public": ["sub", "pub", "hist"]}))
        assert await _forbidden(outsider.join("secret")) == "forbidden"
        assert await _forbidden(outsider.publish("secret", "spam")) == "forbidden"
        assert await _forbidden(outsider.history("secret")) == "forbidden"
        # still connected and serving its own grants
        await outsider.join("public")
        await outsider.ping()
        assert [m.body for m in await owner.history("secret")] == ["classified"]


async def test_each_action_is_granted_separately() -> None:
    async with running_gateway() as gw:
        reader = await gw.client(gw.token("r", {"news": ["sub"]}))
        await reader.join("news")
        assert await _forbidden(reader.publish("news", "x")) == "forbidden"
        assert await _forbidden(reader.history("news")) == "forbidden"
        writer = await gw.client(gw.token("w", {"news": ["pub"]}))
        assert await _forbidden(writer.join("news")) == "forbidden"
        await writer.publish("news", "headline")
        assert (await asyncio.wait_for(reader.recv(), 5)).body == "headline"
        archivist = await gw.client(gw.token("h", {"news": ["hist"]}))
        assert [m.body for m in await archivist.history("news")] == ["headline"]
        assert await _forbidden(archivist.join("news")) == "forbidden"


async def test_wildcard_namespace_grant_does_not_leak_to_lookalike_channels() -> None:
    async with running_gateway() as gw:
        c = await gw.client(gw.token("t", {"team:*": ["sub", "pub", "hist"]}))
        for ok in ("team:a", "team:ops.eu", "team:x:y"):
            await c.join(ok)
            await c.publish(ok, "hi")
        for bad in ("teamx", "team", "teamx:a", "xteam:a", "team_a"):
            assert await _forbidden(c.join(bad)) == "forbidden", bad
            assert await _forbidden(c.publish(bad, "x")) == "forbidden", bad
        # "team:" alone is not inside the namespace, and is not a valid grant target either
        assert await _forbidden(c.join("team:")) in ("forbidden", "bad_channel")


async def test_expired_token_closes_4022_alg_none_and_other_key_4021() -> None:
    async with running_gateway() as gw:
        now = time.time()
        assert await _refused(gw.url, gw.root_public, gw.token("a", now=now - 7200)) == 4022
        none_token = jwt.encode({"sub": "a", "exp": int(now) + 600}, None, algorithm="none")
        assert await _refused(gw.url, gw.root_public, none_token) == 4021
        other_hs = issue_token("a", hs256_secret=b"k" * 32)
        assert await _refused(gw.url, gw.root_public, other_hs) == 4021
        other_ed = issue_token("a", ed25519_key=Ed25519PrivateKey.generate())
        assert await _refused(gw.url, gw.root_public, other_ed) == 4021
        garbage = "not.a.jwt"
        assert await _refused(gw.url, gw.root_public, garbage) == 4021
        # HS256 signed with the Ed25519 *public* key bytes (algorithm confusion)
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        pub = gw.ed25519_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        confused = jwt.encode({"sub": "a", "exp": int(now) + 600}, pub, algorithm="HS256")
        assert await _refused(gw.url, gw.root_public, confused) == 4021


async def test_token_expiring_during_session_closes_4022() -> None:
    async with running_gateway() as gw:
        c = await gw.client(gw.token("short", ttl_s=1))
        await c.ping()
        await asyncio.sleep(1.2)
        with pytest.raises(SessionClosed) as info:
            await c.ping()
        assert info.value.code == 4022


async def test_eddsa_tokens_verified_with_configured_public_keys() -> None:
    async with running_gateway() as gw:
        c = await gw.client(gw.token("ed", {"room": ["sub", "pub"]}, eddsa=True))
        assert c.user == "ed"
        await c.join("room")
        assert await _forbidden(c.history("room")) == "forbidden"
    # a gateway configured with HS256 only refuses EdDSA tokens, and vice versa
    async with running_gateway(ed25519_keys=()) as gw:
        assert await _refused(gw.url, gw.root_public, gw.token("ed", eddsa=True)) == 4021
    async with running_gateway(hs256_secrets=()) as gw:
        assert await _refused(gw.url, gw.root_public, gw.token("hs")) == 4021
        c = await gw.client(gw.token("ed", eddsa=True))
        await c.ping()


async def test_request_before_auth_closes_4020() -> None:
    async with running_gateway() as gw:
        for op in ("ping", "join", "publish", "history"):
            c = await gw.client()  # handshake only, no token
            with pytest.raises(SessionClosed) as info:
                if op == "ping":
                    await c.ping()
                elif op == "join":
                    await c.join("lobby")
                elif op == "publish":
                    await c.publish("lobby", "x")
                else:
                    await c.history("lobby")
            assert info.value.code == 4020, op


async def test_too_many_connections_per_user_closes_4023() -> None:
    async with running_gateway(_limits(max_connections_per_user=2)) as gw:
        token = gw.token("bob")
        first = await gw.client(token)
        await gw.client(token)
        assert await _refused(gw.url, gw.root_public, token) == 4023
        other = await gw.client(gw.token("carol"))  # other users are unaffected
        await other.ping()
        await first.close()
        for _ in range(50):
            if gw.gateway.sessions == 2:
                break
            await asyncio.sleep(0.02)
        again = await gw.client(token)  # a slot freed up
        await again.ping()


async def test_publish_rate_limit_returns_rate_limited_and_refills() -> None:
    async with running_gateway(_limits(publish_rate_per_s=5.0, publish_burst=3)) as gw:
        c = await gw.client(gw.token("p"))
        for i in range(3):
            await c.publish("room", f"{i}")
        assert await _forbidden(c.publish("room", "too fast")) == "rate_limited"
        await c.ping()  # the connection stays open
        await asyncio.sleep(0.45)
        await c.publish("room", "refilled")
        assert [m.body for m in await c.history("room")] == ["0", "1", "2", "refilled"]


async def test_channels_per_connection_limit() -> None:
    async with running_gateway(_limits(max_channels_per_connection=3)) as gw:
        c = await gw.client(gw.token("j"))
        for ch in ("a", "b", "c"):
            await c.join(ch)
        assert await _forbidden(c.join("d")) == "too_many_channels"
        await c.join("a")  # joining a channel it is already in does not count twice
        await c.leave("b")
        await c.join("d")
        conn = next(x for x in gw.connections() if x.user == "j")
        assert conn.channels == {"a", "c", "d"}
