"""Bounded-time mutation fuzzing without extra dependencies.

Each target gives valid seed inputs and a ``check(data)`` that must return or raise only
the defined error types; anything else is a finding. Mutations: bit flips, byte
replacement, insertion, deletion, truncation, duplication of a slice, splicing two seeds,
and interesting integers written over length fields. Findings are printed as hex with the
seed of the random generator, so a run can be reproduced with ``--seed``.

    python fuzz/fuzz_record.py --seconds 10 [--seed N]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

INTERESTING = (0, 1, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0xFFFFFFFF)


def mutate(rng: random.Random, data: bytes, seeds: Sequence[bytes]) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(9)
        pos = rng.randrange(len(b) + 1)
        if op == 0 and b:
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        elif op == 1 and b:
            b[rng.randrange(len(b))] = rng.randrange(256)
        elif op == 2:
            b[pos:pos] = rng.randbytes(rng.randint(1, 16))
        elif op == 3 and b:
            del b[pos : pos + rng.randint(1, 32)]
        elif op == 4:
            del b[pos:]
        elif op == 5 and b:
            start = rng.randrange(len(b))
            chunk = b[start : start + rng.randint(1, 64)]
            b[pos:pos] = chunk
        elif op == 6:
            other = rng.choice(seeds)
            cut = rng.randrange(len(other) + 1)
            b = b[:pos] + bytearray(other[cut:])
        elif op == 7 and len(b) >= 2:
            i = rng.randrange(len(b) - 1)
            v = rng.choice(INTERESTING) & 0xFFFF
            b[i : i + 2] = v.to_bytes(2, "big")
        elif op == 8:
            b = bytearray(rng.randbytes(rng.randint(0, 64)))
    return bytes(b)


def run(
    name: str,
    seeds: Sequence[bytes],
    check: Callable[[bytes], None],
    argv: Sequence[str] | None = None,
) -> int:
    p = argparse.ArgumentParser(prog=name)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--max-iterations", type=int, default=None)
    args = p.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    rng = random.Random(seed)
    deadline = time.monotonic() + args.seconds
    corpus = list(seeds)
    n = 0
    for s in seeds:  # the seeds themselves must pass
        check(s)
    while time.monotonic() < deadline:
        if args.max_iterations is not None and n >= args.max_iterations:
            break
        data = mutate(rng, rng.choice(corpus), seeds)
        try:
            check(data)
        except Exception:
            print(f"{name}: FINDING after {n} inputs (seed {seed}): {data.hex()}")
            traceback.print_exc()
            return 1
        n += 1
        if n % 64 == 0 and len(corpus) < 256:
            corpus.append(data)  # keep some mutants as new starting points
    print(f"{name}: {n} inputs in {args.seconds:.1f}s, no finding (seed {seed})")
    return 0
