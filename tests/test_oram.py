"""Path ORAM core: correctness against a dict mirror, obliviousness, randomness, stash."""

from __future__ import annotations

import ast
import itertools
import os
import random
import secrets
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from oram_helpers import RecordingStore, chi_square, chi_square_critical, snapshot

import crypto.oram as oram_mod
from crypto.oram import (
    PAPER_STASH_TABLE,
    Op,
    OramParams,
    PathOram,
    stash_capacity_for,
)
from crypto.oram_errors import OramFull, OramUsageError, StashOverflow
from gateway.stores.oram_memory import MemoryBucketStore

REPO = Path(__file__).resolve().parent.parent


def _block(tag: int, size: int = 32) -> bytes:
    return tag.to_bytes(8, "big") * (size // 8)


# -- parameters -------------------------------------------------------------------------


def test_params_shape_and_paper_stash_default() -> None:
    p = OramParams(2**16)
    assert (p.height, p.leaves, p.num_buckets) == (16, 2**16, 2**17 - 1)
    assert p.stash_limit == PAPER_STASH_TABLE[4][80] == 89
    assert OramParams(100).leaves == 128  # leaf count is a power of two >= N
    assert stash_capacity_for(4, 128) == 147
    with pytest.raises(ValueError):
        stash_capacity_for(3, 80)
    with pytest.raises(ValueError):
        OramParams(1)
    idx = p.path_indices(p.leaves - 1)
    assert idx[0] == 0 and idx[-1] == p.num_buckets - 1 and len(idx) == 17
    for parent, child in itertools.pairwise(idx):
        assert child in (2 * parent + 1, 2 * parent + 2)


def test_bad_arguments_raise_at_once() -> None:
    o = PathOram(OramParams(16, block_size=32))
    with pytest.raises(ValueError):
        o.begin_access(Op.WRITE, 1, b"short")
    with pytest.raises(TypeError):
        o.begin_access(Op.WRITE, 1, None)
    with pytest.raises(OramUsageError):
        o.begin_access(Op.READ, 1, _block(1))
    with pytest.raises(ValueError):
        o.begin_access(Op.READ, 2**64 - 1)
    req = o.begin_access(Op.READ, 3)
    with pytest.raises(OramUsageError):
        o.begin_access(Op.READ, 4)  # one access at a time
    o.abort(req)
    o.begin_access(Op.READ, 4)


# -- correctness ------------------------------------------------------------------------


def _mixed_run(n: int, ops: int, block_size: int = 32) -> PathOram:
    """Random and round-robin reads/writes/deletes against a dict mirror."""
    o = PathOram(OramParams(n, block_size=block_size))
    store = MemoryBucketStore()
    mirror: dict[int, bytes] = {}
    space = n + n // 4  # some addresses are always misses
    rr = 0
    for i in range(ops):
        phase = (i // 2000) % 2  # alternate random and round-robin phases
        if phase == 0:
            addr = secrets.randbelow(space)
        else:
            addr = rr % space
            rr += 1
        r = secrets.randbelow(10)
        if r < 5:
            assert o.read(store, addr) == mirror.get(addr), f"op {i}"
        elif r < 9:
            if addr not in mirror and len(mirror) >= n:
                continue
            data = os.urandom(block_size)
            assert o.write(store, addr, data) == mirror.get(addr), f"op {i}"
            mirror[addr] = data
        else:
            assert o.delete(store, addr) == mirror.pop(addr, None), f"op {i}"
        assert o.stash_size <= o.params.stash_limit
    assert o.size == len(mirror)
    for addr, data in mirror.items():
        assert o.read(store, addr) == data
    return o


def test_correctness_20k_mixed_ops() -> None:
    o = _mixed_run(256, 20_000)
    assert o.version > 20_000 - 100


@pytest.mark.slow
def test_correctness_one_million_ops() -> None:
    _mixed_run(1024, 1_000_000, block_size=16)


def test_full_oram_refuses_new_addresses() -> None:
    o = PathOram(OramParams(8, block_size=8))
    store = MemoryBucketStore()
    for a in range(8):
        o.write(store, a, _block(a, 8))
    with pytest.raises(OramFull):
        o.write(store, 100, _block(100, 8))
    o.write(store, 3, _block(33, 8))  # overwrite is fine
    o.delete(store, 0)
    o.write(store, 100, _block(100, 8))
    assert o.read(store, 100) == _block(100, 8)


def test_unacknowledged_write_is_resent_before_next_access() -> None:
    o = PathOram(OramParams(32, block_size=16))
    store = MemoryBucketStore()
    o.write(store, 1, _block(1, 16))
    req = o.begin_access(Op.WRITE, 2, _block(2, 16))
    _, write = o.finish_access(req, store.read_path(req.indices))
    # the write "fails": never reaches the store; the sync driver re-sends it first
    with pytest.raises(OramUsageError):
        o.begin_access(Op.READ, 1)
    assert o.unacknowledged_write is write
    assert o.read(store, 2) == _block(2, 16)
    assert o.read(store, 1) == _block(1, 16)


class OramMachine(RuleBasedStateMachine):
    """Hypothesis state machine: any op sequence matches a dict."""

    def __init__(self) -> None:
        super().__init__()
        self.o = PathOram(OramParams(16, block_size=8))
        self.store = MemoryBucketStore()
        self.mirror: dict[int, bytes] = {}

    @rule(addr=st.integers(0, 20), data=st.binary(min_size=8, max_size=8))
    def write(self, addr: int, data: bytes) -> None:
        if addr not in self.mirror and len(self.mirror) >= 16:
            with pytest.raises(OramFull):
                self.o.write(self.store, addr, data)
            return
        assert self.o.write(self.store, addr, data) == self.mirror.get(addr)
        self.mirror[addr] = data

    @rule(addr=st.integers(0, 20))
    def read(self, addr: int) -> None:
        assert self.o.read(self.store, addr) == self.mirror.get(addr)

    @rule(addr=st.integers(0, 20))
    def delete(self, addr: int) -> None:
        assert self.o.delete(self.store, addr) == self.mirror.pop(addr, None)

    @invariant()
    def sizes(self) -> None:
        assert self.o.size == len(self.mirror)
        assert self.o.stash_size <= self.o.params.stash_limit


TestOramMachine = OramMachine.TestCase
TestOramMachine.settings = settings(max_examples=40, stateful_step_count=60, deadline=None)


# -- obliviousness ----------------------------------------------------------------------


def _leaf_of(o: PathOram, indices: tuple[int, ...]) -> int:
    return indices[-1] - (o.params.leaves - 1)


def test_accessed_leaves_pass_chi_square_even_for_one_hot_address() -> None:
    o = PathOram(OramParams(64, block_size=16))
    store = RecordingStore()
    for a in range(64):
        o.write(store, a, _block(a, 16))
    store.log.clear()
    # a maximally skewed logical pattern: address 7 over and over, then round-robin
    for i in range(6400):
        o.read(store, 7 if i < 3200 else i % 64)
    leaves = [_leaf_of(o, e[1]) for e in store.log if e[0] == "read"]
    counts = [0] * o.params.leaves
    for leaf in leaves:
        counts[leaf] += 1
    assert chi_square(counts) < chi_square_critical(o.params.leaves - 1)
    # consecutive accesses to the same address land on independent leaves
    same = sum(a % 8 == b % 8 for a, b in itertools.pairwise(leaves[:3200]))
    assert abs(same / 3199 - 1 / 8) < 0.04


def test_storage_calls_have_identical_shape_for_every_kind_of_access() -> None:
    o = PathOram(OramParams(32, block_size=24))
    store = RecordingStore()
    for a in range(20):
        o.write(store, a, _block(a, 24))
    # make every bucket on every path exist, so byte lengths are comparable
    for _ in range(300):
        o.read(store, 1000 + secrets.randbelow(1000))
    scenarios = {
        "read hit": (Op.READ, 3, None),
        "read miss": (Op.READ, 999, None),
        "write existing": (Op.WRITE, 4, _block(44, 24)),
        "write new": (Op.WRITE, 25, _block(25, 24)),
        "delete hit": (Op.DELETE, 5, None),
        "delete miss": (Op.DELETE, 998, None),
        "repeat 1": (Op.READ, 6, None),
        "repeat 2": (Op.READ, 6, None),
        "repeat 3": (Op.READ, 6, None),
    }
    shapes = set()
    for op, addr, data in scenarios.values():
        store.log.clear()
        o.access(store, op, addr, data)
        assert len(store.log) == 2
        (r_kind, r_idx, r_len), (w_kind, w_idx, w_len) = store.log
        assert (r_kind, w_kind) == ("read", "write")
        assert len(r_idx) == o.params.height + 1
        assert r_idx == o.params.path_indices(_leaf_of(o, r_idx))  # a root-to-leaf path
        assert sorted(r_idx) == list(w_idx)  # writes back exactly the path it read
        shapes.add((len(r_idx), r_len, w_len))
    assert len(shapes) == 1, shapes


# -- randomness -------------------------------------------------------------------------


def test_oram_module_does_not_import_random() -> None:
    for name in ("oram.py", "oram_integrity.py"):
        tree = ast.parse((REPO / "crypto" / name).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                assert all(a.name.split(".")[0] != "random" for a in node.names)
            if isinstance(node, ast.ImportFrom):
                assert (node.module or "").split(".")[0] != "random"
    assert not hasattr(oram_mod, "random")


def test_no_leaf_comes_from_the_random_module(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_a: object, **_k: object) -> None:
        raise AssertionError("the random module was used")

    names = ("random", "getrandbits", "randrange", "randint", "choice", "choices",
             "shuffle", "sample", "uniform", "randbytes")
    for name in names:
        if hasattr(random, name):
            monkeypatch.setattr(random, name, boom)
        for cls in (random.Random, random.SystemRandom):
            if hasattr(cls, name):
                monkeypatch.setattr(cls, name, boom)
    calls = 0
    real = os.urandom

    def counting(n: int) -> bytes:
        nonlocal calls
        calls += 1
        return real(n)

    monkeypatch.setattr(os, "urandom", counting)
    o = PathOram(OramParams(128, block_size=16))
    store = MemoryBucketStore()
    for i in range(3000):
        o.write(store, i % 100, _block(i, 16))
    assert calls >= 1  # leaves (and the key) came from os.urandom


def test_leaves_are_exactly_what_urandom_gives(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = bytes(range(256)) * 16  # 4096 known bytes
    o = PathOram(OramParams(16, block_size=8), key=bytes(32))
    monkeypatch.setattr(os, "urandom", lambda n: stream[:n])
    req = o.begin_access(Op.READ, 5)  # a miss: leaf from the first 4 bytes
    assert req.leaf == int.from_bytes(stream[0:4], "big") & 15


# -- stash ------------------------------------------------------------------------------


def test_stash_overflow_fails_closed_without_state_change() -> None:
    o = PathOram(OramParams(64, block_size=8, z=1, stash_capacity=1))
    store = MemoryBucketStore()
    mirror: dict[int, bytes] = {}
    overflowed = 0
    for i in range(400):
        addr = i % 64
        before = snapshot(o)
        stored = dict(store.buckets)
        try:
            o.write(store, addr, _block(i, 8))
        except StashOverflow as exc:
            overflowed += 1
            assert "capacity 1" in str(exc)
            assert snapshot(o) == before  # nothing changed in the client
            assert store.buckets == stored  # nothing written to storage
            continue
        mirror[addr] = _block(i, 8)
        assert o.stash_size <= 1
    assert overflowed > 0
    for addr, data in mirror.items():
        try:
            assert o.read(store, addr) == data
        except StashOverflow:
            pass
