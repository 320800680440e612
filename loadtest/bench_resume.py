"""Resumption cost, and the cost of keeping the single-use ticket ledger in Redis.

    python -m loadtest.bench_resume [--count 300]

One process, one gateway on loopback, sequential sessions from the SDK (each row: TCP +
WebSocket + handshake + auth, or + resumption). Rows run interleaved in rounds so machine
noise hits them alike; the report gives ratios within this run:

- full handshake vs resumption (what resumption saves);
- resumption with the ticket ledger in Redis vs in memory: the DESIGN target is that
  Redis-backed replay checks cost <= 15% of throughput.

This benchmark starts gateways in-process (it imports gateway/ on purpose, as a benchmark
of the gateway, not a client of it).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path

from clients.sdk import Client
from crypto.ticket import AeadTicketSealer
from gateway.auth import TokenVerifier
from gateway.config import GatewayConfig
from gateway.keyfiles import init_keys, load_auth_secret, load_credentials, load_root_public
from gateway.server import Gateway
from gateway.stores.tickets import MemoryTicketLedger, RedisTicketLedger, TicketLedger
from loadtest.bench_oram import redis_server
from plexigate.devtoken import issue_token

_KEYS = Path(tempfile.mkdtemp(prefix="plexi-bench-"))
init_keys(_KEYS)
_CREDS = load_credentials(_KEYS)
_ROOT = load_root_public(_KEYS)
_SECRET = load_auth_secret(_KEYS)


def token(user: str) -> str:
    return issue_token(user, hs256_secret=_SECRET)


async def _gateway(stack: AsyncExitStack, ledger: TicketLedger, key: bytes) -> Gateway:
    gw = Gateway(
        GatewayConfig(port=0),
        _CREDS,
        TokenVerifier(hs256_secrets=(_SECRET,)),
        ticket_sealer=AeadTicketSealer.single(key),
        tickets=ledger,
    )
    await gw.start()
    stack.push_async_callback(gw.close)
    return gw


async def _full(url: str, n: int) -> float:
    root, tok = _ROOT, token("bench")
    t0 = time.perf_counter()
    for _ in range(n):
        c = await Client.connect(url, root, tok)
        await c.close()
    return n / (time.perf_counter() - t0)


async def _resume(url: str, n: int) -> float:
    root = _ROOT
    c = await Client.connect(url, root, token("bench"))
    ticket = await c.next_ticket()
    await c.close()
    t0 = time.perf_counter()
    for _ in range(n):
        c = await Client.connect(url, root, ticket=ticket)
        ticket = await c.next_ticket()  # each ticket once: take the next one
        await c.close()
    return n / (time.perf_counter() - t0)


async def main(count: int, rounds: int) -> int:
    key = os.urandom(32)
    with redis_server() as url:
        async with AsyncExitStack() as stack:
            mem = await _gateway(stack, MemoryTicketLedger(), key)
            red = await _gateway(stack, RedisTicketLedger.from_url(url), key)
            rows: dict[str, list[float]] = {"full": [], "resume-memory": [], "resume-redis": []}
            per = max(1, count // rounds)
            for r in range(rounds):
                rows["full"].append(await _full(mem.url, per))
                rows["resume-memory"].append(await _resume(mem.url, per))
                rows["resume-redis"].append(await _resume(red.url, per))
                print(f"\r  round {r + 1}/{rounds}", end="", file=sys.stderr, flush=True)
            print(file=sys.stderr)
    med = {k: sorted(v)[len(v) // 2] for k, v in rows.items()}
    print(f"{'sessions/s (median of rounds)':32} {'rate':>8}  ratio")
    print(f"{'full handshake + auth':32} {med['full']:8.1f}  1.00")
    print(
        f"{'resumption, ledger in memory':32} {med['resume-memory']:8.1f}  "
        f"{med['resume-memory'] / med['full']:.2f} x full"
    )
    cost = 1 - med["resume-redis"] / med["resume-memory"]
    print(
        f"{'resumption, ledger in Redis':32} {med['resume-redis']:8.1f}  "
        f"{med['resume-redis'] / med['resume-memory']:.2f} x memory ledger"
    )
    verdict = "met" if cost <= 0.15 else "NOT met"
    print(f"DESIGN 7: Redis-backed replay checks cost <= 15%: {cost * 100:.1f}% -> {verdict}")
    return 0


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=300, help="sessions per row")
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    try:
        sys.exit(asyncio.run(main(a.count, a.rounds)))
    finally:
        shutil.rmtree(_KEYS, ignore_errors=True)
