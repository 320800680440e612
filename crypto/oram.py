"""Path ORAM (Stefanov et al., CCS 2013) as a sans-I/O state machine.

Theory of operation
-------------------
The server stores a complete binary tree of ``2**(L+1) - 1`` buckets in heap order (root 0,
children of ``i`` at ``2i+1`` and ``2i+2``), ``2**L >= N`` leaves, ``Z`` block slots per
bucket.  The client (this object) keeps a position map (address -> leaf), a stash of blocks
not yet evicted, the AEAD key, the digest of the root bucket and the access counter.

One access, whatever the operation (read, write, delete; hit or miss)::

    req = oram.begin_access(op, addr, data)   # -> PathRequest(leaf, indices): one full path
    buckets = <storage reads req.indices>     # one round trip
    result, write = oram.finish_access(req, buckets)   # -> PathWrite: the same full path
    <storage writes write.buckets>            # one round trip
    oram.write_done(write)

``begin_access`` looks up the block's leaf (a fresh uniform leaf if the address is not
stored, so a miss reads a path exactly like a hit) and draws its next leaf.  Leaves come from
``os.urandom`` only.  ``finish_access`` first verifies the whole path against the Merkle
digests (crypto/oram_integrity.py); only then does it merge the path into a copy of the
stash, apply the operation, remap the block, and evict greedily from leaf to root (a block
may sit at a level when its leaf shares that prefix with the path's leaf).  If more than the
fixed stash capacity would remain, it raises StashOverflow and nothing changes.  Otherwise it
re-seals every bucket of the path with the next version and commits the new client state.

Until ``write_done`` acknowledges the write, ``begin_access`` refuses to start: a driver whose
write failed (or was cancelled) re-sends ``unacknowledged_write`` first, so storage never
lags the client's root digest for longer than one failed write.  A failed read, an integrity
error or a stash overflow leave the client state exactly as before the access.

Position map: kept whole on the client (a dict, ~100 bytes per stored block in CPython,
~6.5 MB at the supported 2**16 blocks).  A recursive position map would add a further ORAM
access (two more round trips) per level of recursion to every access and break the
1 ms/access target over Redis; it pays off only once the map no longer fits the gateway's
memory (beyond ~2**22 blocks), which channel metadata does not reach.  Addresses are opaque
integers below 2**64 - 1, so callers can use keyed hashes of names directly.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from crypto.oram_errors import OramFull, OramIntegrityError, OramUsageError, StashOverflow
from crypto.oram_integrity import ABSENT, DIGEST_SIZE, BucketSealer, digest

__all__ = [
    "DUMMY_ADDR",
    "MAX_ADDR",
    "PAPER_STASH_TABLE",
    "BucketStorage",
    "Op",
    "OramParams",
    "PathOram",
    "PathRequest",
    "PathWrite",
    "stash_capacity_for",
]

DUMMY_ADDR = 2**64 - 1
"""Address marking an empty slot inside a bucket; never a valid block address."""
MAX_ADDR = DUMMY_ADDR - 1
MAX_CAPACITY = 2**24

PAPER_STASH_TABLE: Mapping[int, Mapping[int, int]] = {
    4: {80: 89, 128: 147, 256: 303},
    5: {80: 63, 128: 105, 256: 218},
    6: {80: 53, 128: 89, 256: 186},
}
"""Stefanov et al. (CCS 2013), "required stash size" for a failure probability of
2**-lambda per access sequence (bucket size Z -> {lambda: stash blocks}), measured with a
round-robin access pattern and extrapolated; the paper reports it independent of N."""

_U64 = struct.Struct(">Q")


def stash_capacity_for(z: int, security_bits: int) -> int:
    """Stash capacity from the paper's table: the smallest listed lambda >= security_bits."""
    row = PAPER_STASH_TABLE.get(z)
    if row is None:
        raise ValueError(f"no published stash size for Z={z}; pass stash_capacity")
    for lam in sorted(row):
        if lam >= security_bits:
            return row[lam]
    raise ValueError(f"no published stash size for lambda={security_bits}")


class Op(Enum):
    READ = "read"
    WRITE = "write"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class OramParams:
    """Shape of one ORAM.

    capacity: N, the most real blocks it holds (2 <= N <= 2**24).
    block_size: bytes per block (every write carries exactly this many).
    z: slots per bucket.  security_bits: lambda for the stash table.
    stash_capacity: blocks the stash may hold between accesses; by default the paper's
    figure for (z, security_bits), 89 for Z=4 and 2**-80.
    """

    capacity: int
    block_size: int = 256
    z: int = 4
    security_bits: int = 80
    stash_capacity: int | None = None

    def __post_init__(self) -> None:
        if not 2 <= self.capacity <= MAX_CAPACITY:
            raise ValueError("capacity must be between 2 and 2**24")
        if not 1 <= self.block_size <= 65536:
            raise ValueError("block_size must be between 1 and 65536")
        if not 1 <= self.z <= 64:
            raise ValueError("z must be between 1 and 64")
        if self.stash_capacity is None:
            object.__setattr__(
                self, "stash_capacity", stash_capacity_for(self.z, self.security_bits)
            )
        elif self.stash_capacity < 0:
            raise ValueError("stash_capacity must be >= 0")

    @property
    def height(self) -> int:
        """L: the leaves are at level L; 2**L >= capacity."""
        return (self.capacity - 1).bit_length()

    @property
    def leaves(self) -> int:
        return 1 << self.height

    @property
    def num_buckets(self) -> int:
        return (1 << (self.height + 1)) - 1

    @property
    def stash_limit(self) -> int:
        assert self.stash_capacity is not None
        return self.stash_capacity

    @property
    def bucket_plaintext_size(self) -> int:
        return 2 * DIGEST_SIZE + self.z * (8 + self.block_size)

    def path_indices(self, leaf: int) -> tuple[int, ...]:
        """Bucket indices from the root (level 0) down to ``leaf`` (level L)."""
        height = self.height
        node = (1 << height) + leaf
        return tuple((node >> (height - level)) - 1 for level in range(height + 1))


@dataclass(frozen=True, slots=True)
class PathRequest:
    """Read these buckets (one full path, root first) and pass them to finish_access."""

    serial: int
    leaf: int
    indices: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class PathWrite:
    """Write these sealed buckets (the same full path), then call write_done."""

    serial: int
    buckets: Mapping[int, bytes]


class BucketStorage(Protocol):
    """Synchronous storage of sealed buckets (the in-memory store implements it)."""

    def read_path(self, indices: Sequence[int]) -> list[bytes | None]: ...

    def write_path(self, buckets: Mapping[int, bytes]) -> None: ...


@dataclass(frozen=True, slots=True)
class _InFlight:
    serial: int
    op: Op
    addr: int
    data: bytes | None
    leaf: int
    new_leaf: int


class _LeafSource:
    """Uniform leaves from os.urandom, buffered (4 bytes per leaf, masked to L bits)."""

    __slots__ = ("_buf", "_mask", "_off")

    def __init__(self, height: int) -> None:
        self._mask = (1 << height) - 1
        self._buf = b""
        self._off = 0

    def draw(self) -> int:
        off = self._off
        if off + 4 > len(self._buf):
            self._buf = os.urandom(4096)
            off = 0
        self._off = off + 4
        return int.from_bytes(self._buf[off : off + 4], "big") & self._mask


class PathOram:
    """The client side of one Path ORAM.  See the module docstring."""

    def __init__(self, params: OramParams, *, key: bytes | None = None) -> None:
        self.params = params
        self._sealer = BucketSealer(os.urandom(32) if key is None else key)
        self._height = params.height
        self._z = params.z
        self._bsize = params.block_size
        self._stash_limit = params.stash_limit
        self._leaves = _LeafSource(self._height)
        self._pos: dict[int, int] = {}
        self._stash: dict[int, bytes] = {}
        self._root = ABSENT
        self._version = 0
        self._serial = 0
        self._inflight: _InFlight | None = None
        self._unacked: PathWrite | None = None
        self._empty_slot = _U64.pack(DUMMY_ADDR) + bytes(self._bsize)
        self.max_stash = 0

    # -- read-only state --------------------------------------------------------------

    @property
    def size(self) -> int:
        """Number of real blocks stored."""
        return len(self._pos)

    @property
    def stash_size(self) -> int:
        return len(self._stash)

    @property
    def version(self) -> int:
        """Accesses completed (the version of the root bucket)."""
        return self._version

    @property
    def root_digest(self) -> bytes:
        return self._root

    @property
    def unacknowledged_write(self) -> PathWrite | None:
        """A path write the storage has not confirmed yet; re-send it before anything else."""
        return self._unacked

    # -- the access protocol ----------------------------------------------------------

    def begin_access(
        self, op: Op, addr: int, data: bytes | None = None, *, write_ahead: bool = False
    ) -> PathRequest:
        """Start an access.  With ``write_ahead=True`` an unacknowledged write may still be
        pending: the driver promises to store it before reading this path (for example in
        the same pipeline) and to call write_done before finish_access."""
        if self._unacked is not None and not write_ahead:
            raise OramUsageError("the previous path write was not acknowledged")
        if self._inflight is not None:
            raise OramUsageError("another access is in flight")
        if not isinstance(op, Op):
            raise TypeError("op must be an Op")
        if not isinstance(addr, int) or isinstance(addr, bool):
            raise TypeError("addr must be an int")
        if not 0 <= addr <= MAX_ADDR:
            raise ValueError("addr out of range")
        if op is Op.WRITE:
            if not isinstance(data, bytes):
                raise TypeError("write needs bytes")
            if len(data) != self._bsize:
                raise ValueError(f"data must be exactly {self._bsize} bytes")
            if addr not in self._pos and len(self._pos) >= self.params.capacity:
                raise OramFull("every block slot is in use")
        elif data is not None:
            raise OramUsageError(f"{op.value} takes no data")
        leaf = self._pos.get(addr)
        if leaf is None:
            leaf = self._leaves.draw()
        new_leaf = self._leaves.draw()
        self._serial += 1
        self._inflight = _InFlight(self._serial, op, addr, data, leaf, new_leaf)
        return PathRequest(self._serial, leaf, self.params.path_indices(leaf))

    def abort(self, req: PathRequest) -> None:
        """Forget an access whose path read failed; nothing changes."""
        if self._inflight is not None and self._inflight.serial == req.serial:
            self._inflight = None

    def finish_access(
        self, req: PathRequest, buckets: Sequence[bytes | None]
    ) -> tuple[bytes | None, PathWrite]:
        """Verify the path read for ``req``, apply the access, return (result, write).

        result: the block's data before the access (None when it was not stored).
        Raises OramIntegrityError or StashOverflow with the client state unchanged.
        """
        inflight = self._inflight
        if inflight is None or inflight.serial != req.serial:
            raise OramUsageError("no such access in flight")
        self._inflight = None
        if self._unacked is not None:
            raise OramUsageError("the previous path write was not acknowledged")
        height = self._height
        if len(buckets) != height + 1:
            raise OramUsageError("storage returned a path of the wrong length")
        z = self._z
        bsize = self._bsize
        slot = 8 + bsize
        leaf = inflight.leaf
        indices = req.indices
        unpack = _U64.unpack_from
        open_ = self._sealer.open

        # 1. Verify the whole path top-down; nothing is changed before this loop ends.
        stash = dict(self._stash)
        siblings: list[tuple[bytes, bytes]] = []
        expected = self._root
        level = 0
        for index, stored in zip(indices, buckets, strict=True):
            if stored is None:
                if expected != ABSENT:
                    raise OramIntegrityError(f"bucket {index} is missing")
                siblings.append((ABSENT, ABSENT))
            else:
                if expected == ABSENT:
                    raise OramIntegrityError(f"bucket {index} should not exist")
                _, pt = open_(index, stored, expected)
                left = pt[:DIGEST_SIZE]
                right = pt[DIGEST_SIZE : 2 * DIGEST_SIZE]
                siblings.append((left, right))
                off = 2 * DIGEST_SIZE
                for _ in range(z):
                    a = unpack(pt, off)[0]
                    if a != DUMMY_ADDR:
                        if a in stash:
                            raise OramIntegrityError(f"bucket {index} repeats a block")
                        stash[a] = pt[off + 8 : off + slot]
                    off += slot
                if level < height:
                    expected = right if (leaf >> (height - level - 1)) & 1 else left
            level += 1

        # 2. Apply the operation and remap the block.
        addr = inflight.addr
        result = stash.get(addr)
        op = inflight.op
        if op is Op.WRITE:
            assert inflight.data is not None
            stash[addr] = inflight.data
        elif op is Op.DELETE and result is not None:
            del stash[addr]
        new_leaf = inflight.new_leaf

        # 3. Greedy eviction from the leaf up.
        pos = self._pos
        by_depth: list[list[int]] = [[] for _ in range(height + 1)]
        for a in stash:
            lf = new_leaf if a == addr else pos[a]
            by_depth[height - (lf ^ leaf).bit_length()].append(a)
        placed: list[list[int]] = [[] for _ in range(height + 1)]
        pool: list[int] = []
        for lvl in range(height, -1, -1):
            pool.extend(by_depth[lvl])
            if pool:
                take = pool[-z:]
                del pool[-z:]
                placed[lvl] = take
        if len(pool) > self._stash_limit:
            raise StashOverflow(
                f"stash would hold {len(pool)} blocks (capacity {self._stash_limit})"
            )

        # 4. Seal the path bottom-up, chaining the Merkle digests.
        version = self._version + 1
        seal = self._sealer.seal
        empty = self._empty_slot
        pack = _U64.pack
        out: dict[int, bytes] = {}
        below = ABSENT
        for lvl in range(height, -1, -1):
            if lvl == height:
                parts = [ABSENT, ABSENT]
            else:
                old_left, old_right = siblings[lvl]
                if (leaf >> (height - lvl - 1)) & 1:
                    parts = [old_left, below]
                else:
                    parts = [below, old_right]
            blocks = placed[lvl]
            for a in blocks:
                parts.append(pack(a))
                parts.append(stash[a])
            if len(blocks) < z:
                parts.append(empty * (z - len(blocks)))
            index = indices[lvl]
            sealed = seal(index, version, b"".join(parts))
            out[index] = sealed
            below = digest(sealed)

        # 5. Commit.
        if op is Op.DELETE:
            pos.pop(addr, None)
        elif addr in stash:
            pos[addr] = new_leaf
        self._stash = {a: stash[a] for a in pool}
        if len(pool) > self.max_stash:
            self.max_stash = len(pool)
        self._root = below
        self._version = version
        write = PathWrite(req.serial, out)
        self._unacked = write
        return result, write

    def write_done(self, write: PathWrite) -> None:
        """The storage confirmed ``write``; the next access may begin."""
        if self._unacked is None or self._unacked.serial != write.serial:
            raise OramUsageError("no such write pending")
        self._unacked = None

    # -- a synchronous driver ---------------------------------------------------------

    def access(
        self, storage: BucketStorage, op: Op, addr: int, data: bytes | None = None
    ) -> bytes | None:
        """One full access against a synchronous store (one path read, one path write)."""
        pending = self._unacked
        if pending is not None:
            storage.write_path(pending.buckets)
            self.write_done(pending)
        req = self.begin_access(op, addr, data)
        try:
            buckets = storage.read_path(req.indices)
        except BaseException:
            self.abort(req)
            raise
        result, write = self.finish_access(req, buckets)
        storage.write_path(write.buckets)
        self.write_done(write)
        return result

    def read(self, storage: BucketStorage, addr: int) -> bytes | None:
        return self.access(storage, Op.READ, addr)

    def write(self, storage: BucketStorage, addr: int, data: bytes) -> bytes | None:
        return self.access(storage, Op.WRITE, addr, data)

    def delete(self, storage: BucketStorage, addr: int) -> bytes | None:
        return self.access(storage, Op.DELETE, addr)
