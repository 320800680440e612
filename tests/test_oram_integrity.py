"""Integrity of ORAM buckets: flip, swap, rollback of a bucket or of the root are detected
before any client state changes, and the ORAM goes on once storage is repaired."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from oram_helpers import snapshot

from crypto.oram import Op, OramParams, PathOram, PathRequest
from crypto.oram_errors import OramIntegrityError
from crypto.oram_integrity import BucketSealer, digest
from gateway.stores.oram_memory import MemoryBucketStore

BS = 16
Loaded = tuple[PathOram, MemoryBucketStore, dict[int, bytes]]


@pytest.fixture()
def loaded() -> Loaded:
    o = PathOram(OramParams(32, block_size=BS))
    store = MemoryBucketStore()
    mirror: dict[int, bytes] = {}
    for a in range(32):
        mirror[a] = os.urandom(BS)
        o.write(store, a, mirror[a])
    for _ in range(400):  # touch every path so every bucket exists
        o.read(store, 10_000)
    assert len(store.buckets) == o.params.num_buckets
    return o, store, mirror


def _request_through(o: PathOram, index: int) -> PathRequest:
    """Begin a (miss) read whose path contains bucket ``index`` (aborting others)."""
    while True:
        req = o.begin_access(Op.READ, 20_000)
        if index in req.indices:
            return req
        o.abort(req)


def _expect_detected(
    o: PathOram,
    store: MemoryBucketStore,
    mirror: dict[int, bytes],
    tamper: Callable[[], None],
    index: int,
) -> None:
    good = dict(store.buckets)
    before = snapshot(o)
    tamper()
    req = _request_through(o, index)
    with pytest.raises(OramIntegrityError):
        o.finish_access(req, store.read_path(req.indices))
    assert snapshot(o) == before  # detected before anything changed
    assert o.unacknowledged_write is None
    store.buckets.clear()
    store.buckets.update(good)  # repair: the ORAM carries on, every block intact
    for a, data in mirror.items():
        assert o.read(store, a) == data


def test_bit_flip_in_a_deep_bucket(loaded: Loaded) -> None:
    o, store, mirror = loaded
    idx = o.params.num_buckets - 3  # a leaf bucket

    def flip() -> None:
        b = bytearray(store.buckets[idx])
        b[len(b) // 2] ^= 0x04
        store.buckets[idx] = bytes(b)

    _expect_detected(o, store, mirror, flip, idx)


def test_bit_flip_in_the_version_header(
    loaded: Loaded,
) -> None:
    o, store, mirror = loaded

    def flip() -> None:
        b = bytearray(store.buckets[1])
        b[7] ^= 1
        store.buckets[1] = bytes(b)

    _expect_detected(o, store, mirror, flip, 1)


def test_swap_of_sibling_buckets(loaded: Loaded) -> None:
    o, store, mirror = loaded

    def swap() -> None:
        store.buckets[3], store.buckets[4] = store.buckets[4], store.buckets[3]

    _expect_detected(o, store, mirror, swap, 3)


def test_rollback_of_one_bucket(loaded: Loaded) -> None:
    o, store, mirror = loaded
    idx = 5
    old = store.buckets[idx]
    while store.buckets[idx] == old:  # until bucket 5 is rewritten
        o.read(store, 10_000)

    def rollback() -> None:
        store.buckets[idx] = old

    _expect_detected(o, store, mirror, rollback, idx)


def test_rollback_of_the_root_and_whole_tree(
    loaded: Loaded,
) -> None:
    o, store, mirror = loaded
    old_tree = dict(store.buckets)
    o.write(store, 0, os.urandom(BS))
    mirror[0] = o.read(store, 0) or b""

    def rollback() -> None:  # a consistent older tree: every digest matches but the root
        store.buckets.clear()
        store.buckets.update(old_tree)

    _expect_detected(o, store, mirror, rollback, 0)


def test_deleted_and_injected_buckets() -> None:
    o = PathOram(OramParams(16, block_size=BS))
    store = MemoryBucketStore()
    o.write(store, 1, os.urandom(BS))
    before = snapshot(o)
    saved = store.buckets.pop(0)
    with pytest.raises(OramIntegrityError):
        o.read(store, 1)
    assert snapshot(o) == before
    store.buckets[0] = saved
    # a bucket the client never wrote appears (say, copied from another ORAM)
    other = PathOram(OramParams(16, block_size=BS))
    ostore = MemoryBucketStore()
    for _ in range(40):
        other.write(ostore, 2, os.urandom(BS))
    missing = next(i for i in ostore.buckets if i not in store.buckets)
    store.buckets[missing] = ostore.buckets[missing]
    req = _request_through(o, missing)
    with pytest.raises(OramIntegrityError):
        o.finish_access(req, store.read_path(req.indices))
    assert snapshot(o) == before


def test_sealer_binds_index_and_version() -> None:
    s = BucketSealer(os.urandom(32))
    sealed = s.seal(7, 3, b"x" * 40)
    assert s.open(7, sealed, digest(sealed)) == (3, b"x" * 40)
    with pytest.raises(OramIntegrityError):
        s.open(8, sealed, digest(sealed))  # right digest, wrong index: AEAD AD fails
    forged = (4).to_bytes(8, "big") + sealed[8:]
    with pytest.raises(OramIntegrityError):
        s.open(7, forged, digest(forged))  # version changed: AEAD AD fails
    with pytest.raises(OramIntegrityError):
        s.open(7, sealed, digest(b"other"))
    with pytest.raises(ValueError):
        BucketSealer(b"short")
