"""Resumption over real sockets: resume without the token, once, on any node (Redis)."""

from __future__ import annotations

import os
from contextlib import asynccontextmanager

import pytest
import redis.asyncio as aioredis
from pki import GatewayOptions, pki, running_gateway, token

from clients.sdk import Client, RequestError, SessionClosed
from crypto.errors import CloseCode
from crypto.ticket import AeadTicketSealer
from gateway.config import GatewayConfig
from gateway.server import Gateway
from gateway.stores.tickets import RedisTicketLedger


@asynccontextmanager
async def node(redis_url: str, ticket_key: bytes):
    o = GatewayOptions()
    gw = Gateway(
        GatewayConfig(port=0, policy=o.policy, limits=o.limits),
        pki().credentials,
        o.verifier,
        ticket_sealer=AeadTicketSealer.single(ticket_key),
        tickets=RedisTicketLedger.from_url(redis_url),
    )
    await gw.start()
    try:
        yield gw
    finally:
        await gw.close()


async def test_resume_without_token_then_ticket_is_single_use():
    async with running_gateway() as gw:
        root = pki().root_public
        first = await Client.connect(gw.url, root, token("alice", {"room": ["sub", "pub"]}))
        ticket = await first.next_ticket()
        await first.close()

        resumed = await Client.connect(gw.url, root, ticket=ticket)
        assert resumed.resumed and resumed.user == "alice"
        await resumed.join("room")
        ack = await resumed.publish("room", "hello again")
        assert ack["mid"]
        # the grants came back with the ticket: still no access to other channels
        with pytest.raises(RequestError) as err:
            await resumed.join("other")
        assert err.value.code == "forbidden"
        new_ticket = await resumed.next_ticket()
        assert new_ticket.ticket_id != ticket.ticket_id
        await resumed.close()

        # the same ticket again: refused with its close code ...
        with pytest.raises(SessionClosed) as closed:
            await Client.connect(gw.url, root, ticket=ticket)
        assert closed.value.code == CloseCode.TICKET_REJECTED
        # ... and with a token the SDK falls back to a full handshake
        fallback = await Client.connect(gw.url, root, token("alice"), ticket=ticket)
        assert not fallback.resumed and fallback.user == "alice"
        await fallback.close()
        assert gw.metrics.counters["ticket_reused"] == 2


async def test_resume_on_another_node_and_replay_refused_cluster_wide(redis_flushed):
    key = os.urandom(32)
    root = pki().root_public
    async with node(redis_flushed, key) as a, node(redis_flushed, key) as b:
        c = await Client.connect(a.url, root, token("bob"))
        await c.join("room")
        ticket = await c.next_ticket()
        await c.close()
        on_b = await Client.connect(b.url, root, ticket=ticket)
        assert on_b.resumed and on_b.user == "bob"
        await on_b.ping()
        await on_b.close()
        # replaying the spent ticket on node A is refused: the ledger is shared
        with pytest.raises(SessionClosed) as closed:
            await Client.connect(a.url, root, ticket=ticket)
        assert closed.value.code == CloseCode.TICKET_REJECTED
    r = aioredis.from_url(redis_flushed)
    keys = [k async for k in r.scan_iter("plexi:ticket:*") if k != b"plexi:ticket:epoch"]
    assert keys == [b"plexi:ticket:" + ticket.ticket_id.hex().encode()]
    ttl = await r.pttl(keys[0])
    assert 0 < ttl <= 24 * 3600 * 1000  # kept only until the ticket expires
    await r.aclose()


async def test_ticket_from_a_node_with_another_key_is_refused(redis_flushed):
    root = pki().root_public
    async with node(redis_flushed, os.urandom(32)) as a, node(redis_flushed, os.urandom(32)) as b:
        c = await Client.connect(a.url, root, token("carol"))
        ticket = await c.next_ticket()
        await c.close()
        with pytest.raises(SessionClosed) as closed:
            await Client.connect(b.url, root, ticket=ticket)
        assert closed.value.code == CloseCode.TICKET_REJECTED


async def test_ticket_lifetime_never_exceeds_the_token():
    async with running_gateway() as gw:
        c = await Client.connect(gw.url, pki().root_public, token("dave", ttl=90))
        ticket = await c.next_ticket()
        await c.close()
        import time

        assert ticket.expires_at_ms <= (time.time() + 91) * 1000


async def test_ticket_issued_before_a_restart_is_refused_by_a_memory_ledger():
    key = os.urandom(32)
    o = GatewayOptions()

    def make() -> Gateway:
        return Gateway(GatewayConfig(port=0, policy=o.policy, limits=o.limits),
                       pki().credentials, o.verifier,
                       ticket_sealer=AeadTicketSealer.single(key))

    first = make()
    await first.start()
    c = await Client.connect(first.url, pki().root_public, token("carol"))
    ticket = await c.next_ticket()
    await c.close()
    await first.close()
    restarted = make()  # same ticket key, fresh in-memory ledger: cannot know it was unused
    await restarted.start()
    try:
        with pytest.raises(SessionClosed) as closed:
            await Client.connect(restarted.url, pki().root_public, ticket=ticket)
        assert closed.value.code == CloseCode.TICKET_REJECTED
    finally:
        await restarted.close()


async def test_tickets_from_before_redis_lost_the_ledger_are_refused(redis_flushed):
    key = os.urandom(32)
    root = pki().root_public
    async with node(redis_flushed, key) as a:
        c = await Client.connect(a.url, root, token("dan"))
        ticket = await c.next_ticket()
        await c.close()
        r = aioredis.from_url(redis_flushed)
        await r.flushall()  # the storage operator (or a restart) loses every ledger key
        await r.aclose()
        with pytest.raises(SessionClosed) as closed:
            await Client.connect(a.url, root, ticket=ticket)
        assert closed.value.code == CloseCode.TICKET_REJECTED
        # tickets issued after that still resume
        c = await Client.connect(a.url, root, token("dan"))
        fresh = await c.next_ticket()
        await c.close()
        again = await Client.connect(a.url, root, ticket=fresh)
        assert again.resumed
        await again.close()
