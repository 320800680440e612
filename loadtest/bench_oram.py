"""Path ORAM benchmark: ms per access in memory and over Redis, next to a raw path read+write
on the same store; the stash-size tail under round-robin access next to the paper's table;
and a long correctness run against a dict mirror.

    python -m loadtest.bench_oram                       # N=2**16, 256 B blocks, all rows
    python -m loadtest.bench_oram --n 4096 --ops 5000 --skip-redis
    python -m loadtest.bench_oram --redis-url redis://127.0.0.1:6379/0
    python -m loadtest.bench_oram --correctness 1000000 --n 4096 --block 32

Without --redis-url it starts its own redis-server on a free loopback port in a temp dir
and stops it afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import time

from crypto.oram import PAPER_STASH_TABLE, Op, OramParams, PathOram
from gateway.stores.oram_memory import MemoryBucketStore
from gateway.stores.oram_redis import RedisBucketStore
from gateway.stores.oram_store import OramClient
from loadtest.redis_server import RedisServerError, redis_server


def progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _random_ops(n: int, count: int, block: int) -> list[tuple[Op, int, bytes | None]]:
    """Half reads, half writes, uniformly random addresses among the N stored ones."""
    ops: list[tuple[Op, int, bytes | None]] = []
    payload = os.urandom(block)
    for _ in range(count):
        addr = secrets.randbelow(n)
        if secrets.randbelow(2):
            ops.append((Op.READ, addr, None))
        else:
            ops.append((Op.WRITE, addr, payload))
    return ops


def _raw_path(params: OramParams, size: int) -> tuple[tuple[int, ...], dict[int, bytes]]:
    leaf = secrets.randbelow(params.leaves)
    idx = params.path_indices(leaf)
    return idx, {i: os.urandom(size) for i in idx}


def bench_memory(n: int, ops: int, block: int, fill: int) -> dict[str, float]:
    params = OramParams(n, block_size=block)
    oram = PathOram(params)
    store = MemoryBucketStore()
    payload = os.urandom(block)
    t0 = time.perf_counter()
    for a in range(fill):
        oram.write(store, a, payload)
        if a and a % 16384 == 0:
            progress(f"  memory fill {a}/{fill}")
    fill_s = time.perf_counter() - t0
    plan = _random_ops(max(fill, 1), ops, block)
    t0 = time.perf_counter()
    for i, (op, addr, data) in enumerate(plan):
        oram.access(store, op, addr, data)
        if i and i % 10000 == 0:
            progress(f"  memory access {i}/{ops}")
    per_access = (time.perf_counter() - t0) / ops
    size = len(next(iter(store.buckets.values())))
    raws = [_raw_path(params, size) for _ in range(1000)]
    t0 = time.perf_counter()
    for idx, buckets in raws:
        store.read_path(idx)
        store.write_path(buckets)
    raw = (time.perf_counter() - t0) / len(raws)
    return {"ms": per_access * 1e3, "raw_ms": raw * 1e3, "fill_ms": fill_s / max(fill, 1) * 1e3,
            "max_stash": float(oram.max_stash), "bucket_bytes": float(size)}


async def bench_redis(
    url: str, n: int, ops: int, block: int, fill: int, write_behind: bool
) -> dict[str, float]:
    params = OramParams(n, block_size=block)
    store = RedisBucketStore.from_url(url, namespace="bench-oram")
    await store.aclear()
    client = OramClient(PathOram(params), store, write_behind=write_behind)
    payload = os.urandom(block)
    t0 = time.perf_counter()
    for a in range(fill):
        await client.write(a, payload)
        if a and a % 8192 == 0:
            progress(f"  redis fill {a}/{fill}")
    fill_s = time.perf_counter() - t0
    plan = _random_ops(max(fill, 1), ops, block)
    t0 = time.perf_counter()
    for i, (op, addr, data) in enumerate(plan):
        await client.access(op, addr, data)
        if i and i % 5000 == 0:
            progress(f"  redis access {i}/{ops}")
    per_access = (time.perf_counter() - t0) / ops
    size = len((await store.aread_path([0]))[0] or b"")
    raws = [_raw_path(params, size) for _ in range(1000)]
    t0 = time.perf_counter()
    for idx, buckets in raws:
        await store.aread_path(idx)
        await store.awrite_path(buckets)
    raw = (time.perf_counter() - t0) / len(raws)
    await store.aclear()
    await client.aclose()
    return {"ms": per_access * 1e3, "raw_ms": raw * 1e3, "fill_ms": fill_s / max(fill, 1) * 1e3,
            "max_stash": float(client.oram.max_stash)}


def paper_tail(r: int) -> float:
    """P(stash > R) for Z=4 from the paper's table (89, 147, 303 blocks for 2**-80, 2**-128,
    2**-256): a least-squares line through those points, lambda ~= (R + 8.3) / 1.216."""
    row = PAPER_STASH_TABLE[4]
    xs = list(row.values())
    ys = list(row.keys())
    mx, my = sum(xs) / 3, sum(ys) / 3
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mx) ** 2 for x in xs
    )
    lam = my + slope * (r - mx)
    return 2.0 ** -max(lam, 0.0)


def stash_tail(n: int, accesses: int, block: int) -> None:
    oram = PathOram(OramParams(n, block_size=block, z=4))
    store = MemoryBucketStore()
    payload = bytes(block)
    for a in range(n):  # round-robin fill, then round-robin reads (the paper's pattern)
        oram.write(store, a, payload)
    hist: dict[int, int] = {}
    for i in range(accesses):
        oram.read(store, i % n)
        s = oram.stash_size
        hist[s] = hist.get(s, 0) + 1
        if i and i % 50000 == 0:
            progress(f"  stash run {i}/{accesses}")
    top = max(hist)
    print(f"\nStash size after each access, Z=4, N={n}, {accesses} round-robin accesses "
          f"(capacity {oram.params.stash_limit} = paper's figure for 2^-80)")
    print(f"{'R':>4} {'observed P(stash > R)':>24} {'paper (fit) P(stash > R)':>26}")
    for r in range(top + 1):
        above = sum(c for s, c in hist.items() if s > r)
        obs = above / accesses
        obs_s = f"{obs:.3e}" if above else f"< {1 / accesses:.1e} (none)"
        print(f"{r:>4} {obs_s:>24} {paper_tail(r):>26.3e}")
    print(f"max observed stash: {top}; paper table Z=4: "
          + ", ".join(f"2^-{lam}: {s}" for lam, s in PAPER_STASH_TABLE[4].items()))


def correctness(n: int, total: int, block: int) -> int:
    oram = PathOram(OramParams(n, block_size=block))
    store = MemoryBucketStore()
    mirror: dict[int, bytes] = {}
    space = n + n // 4
    mismatches = 0
    rr = 0
    t0 = time.perf_counter()
    for i in range(total):
        if (i // 5000) % 2:
            addr = rr % space
            rr += 1
        else:
            addr = secrets.randbelow(space)
        r = secrets.randbelow(10)
        if r < 5:
            mismatches += oram.read(store, addr) != mirror.get(addr)
        elif r < 9:
            if addr not in mirror and len(mirror) >= n:
                addr = next(iter(mirror))
            data = os.urandom(block)
            mismatches += oram.write(store, addr, data) != mirror.get(addr)
            mirror[addr] = data
        else:
            mismatches += oram.delete(store, addr) != mirror.pop(addr, None)
        if i and i % 100000 == 0:
            progress(f"  correctness {i}/{total}, mismatches {mismatches}, "
                     f"max stash {oram.max_stash}")
    for addr, data in mirror.items():
        mismatches += oram.read(store, addr) != data
    dt = time.perf_counter() - t0
    print(f"correctness: {total} mixed random/round-robin ops, N={n}, block={block}: "
          f"{mismatches} mismatches, max stash {oram.max_stash}, {dt / total * 1e3:.3f} ms/op")
    return 1 if mismatches else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m loadtest.bench_oram", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2**16, help="blocks (default 65536)")
    ap.add_argument("--block", type=int, default=256, help="block size in bytes")
    ap.add_argument("--ops", type=int, default=20000, help="timed accesses per store")
    ap.add_argument("--fill", type=int, default=None, help="blocks written first (default N)")
    ap.add_argument("--redis-url", default=None)
    ap.add_argument("--skip-redis", action="store_true")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--stash-n", type=int, default=2**12, help="N for the stash-tail run")
    ap.add_argument("--stash-accesses", type=int, default=200000, help="0 skips it")
    ap.add_argument("--correctness", type=int, default=0, metavar="OPS",
                    help="only run OPS mixed ops against a dict mirror and report mismatches")
    args = ap.parse_args(argv)
    if args.correctness:
        return correctness(args.n, args.correctness, args.block)
    fill = args.n if args.fill is None else min(args.fill, args.n)
    rows: list[tuple[str, dict[str, float]]] = []
    if not args.skip_memory:
        progress(f"memory: N={args.n}, block={args.block}, fill={fill}, ops={args.ops}")
        rows.append(("memory", bench_memory(args.n, args.ops, args.block, fill)))
    def redis_rows(url: str) -> None:
        for label, wb in (("redis", False), ("redis-wb", True)):
            progress(f"{label}: N={args.n}, block={args.block}, fill={fill}, ops={args.ops}")
            rows.append((label, asyncio.run(
                bench_redis(url, args.n, args.ops, args.block, fill, wb))))

    if not args.skip_redis:
        if args.redis_url:
            redis_rows(args.redis_url)
        else:
            try:
                with redis_server("bench-oram-redis-") as url:
                    redis_rows(url)
            except RedisServerError as exc:
                raise SystemExit(f"{exc}; pass --redis-url or --skip-redis") from None
    height = OramParams(args.n).height
    print(f"\nPath ORAM, N={args.n} blocks of {args.block} B, Z=4, L={height} "
          f"({height + 1} buckets per path), {args.ops} random 50/50 read/write accesses")
    print("redis: 2 round trips per access (MGET, then MSET); redis-wb: write-behind, the "
          "MSET rides in the next access's MGET pipeline (1 round trip)")
    print(f"{'store':<8} {'ms/access':>10} {'raw path r+w ms':>16} {'ratio':>7} "
          f"{'fill ms/write':>14} {'max stash':>10} {'target':>8}")
    for name, r in rows:
        target = 0.3 if name == "memory" else 1.0
        print(f"{name:<8} {r['ms']:>10.3f} {r['raw_ms']:>16.4f} {r['ms'] / r['raw_ms']:>7.1f} "
              f"{r['fill_ms']:>14.3f} {int(r['max_stash']):>10} {'<= ' + str(target):>8}"
              f" {'met' if r['ms'] <= target else 'MISSED'}")
    if args.stash_accesses:
        stash_tail(args.stash_n, args.stash_accesses, 16)
    return 0


if __name__ == "__main__":
    sys.exit(main())
