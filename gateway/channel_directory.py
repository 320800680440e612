"""Channel membership and channel settings, kept through Path ORAM.

Three kinds of record, each stored under addresses derived from its name by HMAC-SHA256
with a key only this process holds (Redis never sees a name, a user id or an address):

- members of a channel   (kind ``m`` + shard byte): sorted list of user ids, spread over
  ``member_shards`` records (default 64) by a keyed hash of the user id
- channels of a user     (kind ``u`` + shard byte): sorted list of channel names, spread
  over ``user_shards`` records (default 8) by a keyed hash of the channel name
- settings of a channel  (kind ``s``): a small JSON object

A record is ``len (4 bytes) || orjson`` cut into ``chunks_per_record`` blocks of
``block_size`` bytes (defaults 4 x 256 B, so up to 1020 bytes of JSON).  Chunk ``i`` of a
record lives at ORAM address ``HMAC(key, kind || i || name)[:8] >> 1``; with 63-bit
addresses an accidental collision between two records is negligible (< 2**-30 with a full
2**16-block ORAM).  Every read of a record accesses all its chunks and every write writes
or deletes all of them, so the number of ORAM accesses of a call depends only on which call
it is (read of one record: C; ``set_settings``: C; ``add_member``/``remove_member``: 4C),
never on names, sizes or whether the user was already a member.  With
``uniform_calls=True`` every call is padded with dummy accesses to 4C, so Redis cannot even
tell a lookup from a join.  A record too large for its chunks is refused with
RecordTooLarge before anything is written.

Calls are serialised by one asyncio.Lock (a call is a read-modify-write of up to two
records), and both records of add/remove are encoded and size-checked before either is
written, so a refused call changes nothing.  The directory caches nothing of the records in
memory; the gateway process holds only the ORAM client state (keys, position map, stash,
Merkle root).  That state is not persisted: a new ChannelDirectory starts empty and wipes
its Redis namespace on first use.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
from collections.abc import Mapping
from typing import Any

import orjson

from crypto.oram import OramParams, PathOram
from crypto.oram_errors import OramFull
from gateway.stores.oram_memory import MemoryBucketStore
from gateway.stores.oram_redis import RedisBucketStore
from gateway.stores.oram_store import AsyncBucketStore, OramClient

__all__ = ["ChannelDirectory", "DirectoryFull", "RecordTooLarge"]

MEMBERS = b"m"
CHANNELS = b"u"
SETTINGS = b"s"
MAX_NAME_BYTES = 256
# Members of a channel are spread over S shard records by a keyed hash of the user, so a
# channel holds about S x 90 members at the default 4 x 256-byte records; a join touches one
# shard, ``members`` reads all S whatever the channel's size.
DEFAULT_MEMBER_SHARDS = 64
DEFAULT_USER_SHARDS = 8  # a user's channel list likewise: about 8 x 60 channels


class RecordTooLarge(ValueError):
    """A membership list or settings object does not fit in its chunks; nothing changed."""


class DirectoryFull(OramFull):
    """The ORAM has no room for the blocks this call needs; nothing changed."""


def _name(value: str, what: str) -> bytes:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str")
    raw = value.encode("utf-8")
    if not 1 <= len(raw) <= MAX_NAME_BYTES:
        raise ValueError(f"{what} must be 1..{MAX_NAME_BYTES} bytes of UTF-8")
    return raw


class ChannelDirectory:
    """Async channel directory over one ORAM.  Build it with ``memory()`` or ``redis()``."""

    def __init__(
        self,
        client: OramClient,
        *,
        name_key: bytes | None = None,
        chunks_per_record: int = 4,
        member_shards: int = DEFAULT_MEMBER_SHARDS,
        user_shards: int = DEFAULT_USER_SHARDS,
        uniform_calls: bool = False,
        wipe_store_first: bool = False,
    ) -> None:
        if not 1 <= chunks_per_record <= 64:
            raise ValueError("chunks_per_record must be between 1 and 64")
        if not 1 <= member_shards <= 256 or not 1 <= user_shards <= 256:
            raise ValueError("member_shards and user_shards must be between 1 and 256")
        self._shards = member_shards
        self._ushards = user_shards
        self._client = client
        self._oram = client.oram
        self._key = os.urandom(32) if name_key is None else name_key
        if len(self._key) < 16:
            raise ValueError("name_key must be at least 16 bytes")
        self._chunks = chunks_per_record
        self._bsize = client.oram.params.block_size
        self._uniform = uniform_calls
        self._wipe = wipe_store_first
        self._marker: bytes | None = None  # set when this directory takes over its store
        self._lock = asyncio.Lock()
        self._n = 0
        self.last_call_accesses = 0
        """ORAM accesses made by the last completed call (for tests and metrics)."""

    # -- construction -------------------------------------------------------------------

    @classmethod
    def memory(
        cls,
        *,
        capacity: int = 2**16,
        block_size: int = 256,
        chunks_per_record: int = 4,
        member_shards: int = DEFAULT_MEMBER_SHARDS,
        uniform_calls: bool = False,
        store: AsyncBucketStore | None = None,
    ) -> ChannelDirectory:
        """The embedded default: sealed buckets in this process's memory."""
        oram = PathOram(OramParams(capacity, block_size=block_size))
        client = OramClient(oram, store if store is not None else MemoryBucketStore())
        return cls(
            client,
            chunks_per_record=chunks_per_record,
            member_shards=member_shards,
            uniform_calls=uniform_calls,
        )

    @classmethod
    def redis(
        cls,
        url: str,
        *,
        namespace: str = "plexi:chanmeta",
        capacity: int = 2**16,
        block_size: int = 256,
        chunks_per_record: int = 4,
        member_shards: int = DEFAULT_MEMBER_SHARDS,
        uniform_calls: bool = False,
    ) -> ChannelDirectory:
        """Sealed buckets in Redis under ``{namespace}:<index>`` (wiped on first use)."""
        oram = PathOram(OramParams(capacity, block_size=block_size))
        client = OramClient(oram, RedisBucketStore.from_url(url, namespace), write_behind=True)
        return cls(
            client,
            chunks_per_record=chunks_per_record,
            member_shards=member_shards,
            uniform_calls=uniform_calls,
            wipe_store_first=True,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    def accesses_for(self, call: str) -> int:
        """ORAM accesses one call makes (what a caller's rate budget is charged)."""
        c = self._chunks
        if self._uniform:
            return max(4, self._shards, self._ushards) * c
        return {
            "members": self._shards * c,
            "channels_of": self._ushards * c,
            "add_member": 4 * c,
            "remove_member": 4 * c,
        }.get(call, c)

    async def recover_if_wiped(self) -> bool:
        """Start a fresh, empty directory if Redis lost this directory's data (its marker
        key is gone: a restart without persistence, a flush); True if it did. With the
        marker in place a failed verification is tampering or partial loss, and the
        directory keeps failing closed. Deleting the marker only makes the directory start
        empty (denial of service, which whoever can write Redis can cause anyway); it can
        never make forged buckets verify: the new ORAM has new keys."""
        store = self._client.store
        if not isinstance(store, RedisBucketStore) or self._marker is None:
            return False
        if await store.aget_marker() == self._marker:
            return False
        async with self._lock:
            old = self._client
            oram = PathOram(old.oram.params)  # new keys, position map and root
            self._client = OramClient(oram, store, write_behind=old.write_behind)
            self._oram = oram
            self._wipe = True  # clear leftovers and set a new marker before the next access
        return True

    # -- public API ---------------------------------------------------------------------

    async def members(self, channel: str) -> frozenset[str]:
        """Every shard is read, whatever the channel's size: S x C accesses."""
        key = _name(channel, "channel")
        out: set[str] = set()
        async with self._lock:
            self._n = 0
            for shard in range(self._shards):
                value, _ = await self._read(self._members_kind(shard), key)
                out.update(value or ())
            await self._pad()
        return frozenset(out)

    async def channels_of(self, user: str) -> frozenset[str]:
        """Every shard is read: U x C accesses."""
        key = _name(user, "user")
        out: set[str] = set()
        async with self._lock:
            self._n = 0
            for shard in range(self._ushards):
                value, _ = await self._read(CHANNELS + shard.to_bytes(1, "big"), key)
                out.update(value or ())
            await self._pad()
        return frozenset(out)

    async def add_member(self, channel: str, user: str) -> bool:
        """Add ``user`` to ``channel``; True if they were not a member before."""
        return await self._change_membership(channel, user, add=True)

    async def remove_member(self, channel: str, user: str) -> bool:
        """Remove ``user`` from ``channel``; True if they were a member."""
        return await self._change_membership(channel, user, add=False)

    async def get_settings(self, channel: str) -> dict[str, Any]:
        key = _name(channel, "channel")
        async with self._lock:
            self._n = 0
            value, _ = await self._read(SETTINGS, key)
            await self._pad()
        return dict(value) if isinstance(value, dict) else {}

    async def set_settings(self, channel: str, settings: Mapping[str, Any]) -> None:
        """Replace the settings of ``channel`` (an empty mapping deletes them)."""
        key = _name(channel, "channel")
        if not isinstance(settings, Mapping) or not all(isinstance(k, str) for k in settings):
            raise TypeError("settings must be a mapping with str keys")
        payload = self._encode(dict(settings)) if settings else None
        async with self._lock:
            self._n = 0
            # settings replace blindly, so one record's worth of accesses suffices; the
            # capacity check cannot know the old size, so it assumes the worst case
            if payload is not None:
                need = self._blocks(payload)
                if self._oram.size + need > self._oram.params.capacity:
                    raise DirectoryFull("the channel directory is full")
            await self._write(SETTINGS, key, payload)
            await self._pad()

    # -- internals ----------------------------------------------------------------------

    async def _change_membership(self, channel: str, user: str, *, add: bool) -> bool:
        ckey = _name(channel, "channel")
        ukey = _name(user, "user")
        async with self._lock:
            self._n = 0
            m_kind = self._members_kind(self._shard_of(ckey, ukey))
            members, m_chunks = await self._read(m_kind, ckey)
            u_kind = CHANNELS + self._user_shard_of(ukey, ckey).to_bytes(1, "big")
            channels, u_chunks = await self._read(u_kind, ukey)
            mset = set(members or ())
            cset = set(channels or ())
            changed = (user not in mset) if add else (user in mset)
            if add:
                mset.add(user)
                cset.add(channel)
            else:
                mset.discard(user)
                cset.discard(channel)
            m_payload = self._encode(sorted(mset)) if mset else None
            u_payload = self._encode(sorted(cset)) if cset else None
            grow = self._blocks(m_payload) - m_chunks + self._blocks(u_payload) - u_chunks
            if self._oram.size + grow > self._oram.params.capacity:
                raise DirectoryFull("the channel directory is full")
            # both records are written even when nothing changed, so that "already a
            # member" costs the same accesses as a real join
            await self._write(m_kind, ckey, m_payload)
            await self._write(u_kind, ukey, u_payload)
            await self._pad()
        return changed

    def _shard_of(self, channel: bytes, user: bytes) -> int:
        """Which member shard of ``channel`` holds ``user`` (keyed, so Redis cannot tell)."""
        mac = hmac.new(
            self._key, b"shard" + len(channel).to_bytes(2, "big") + channel + user, hashlib.sha256
        ).digest()
        return int.from_bytes(mac[:4], "big") % self._shards

    def _user_shard_of(self, user: bytes, channel: bytes) -> int:
        mac = hmac.new(
            self._key, b"ushard" + len(user).to_bytes(2, "big") + user + channel, hashlib.sha256
        ).digest()
        return int.from_bytes(mac[:4], "big") % self._ushards

    def _members_kind(self, shard: int) -> bytes:
        return MEMBERS + shard.to_bytes(1, "big")

    def _addresses(self, kind: bytes, key: bytes) -> list[int]:
        out = []
        for i in range(self._chunks):
            mac = hmac.new(self._key, kind + bytes((i,)) + key, hashlib.sha256).digest()
            out.append(int.from_bytes(mac[:8], "big") >> 1)
        return out

    def _encode(self, value: Any) -> bytes:
        body = orjson.dumps(value)
        framed = len(body).to_bytes(4, "big") + body
        limit = self._chunks * self._bsize
        if len(framed) > limit:
            raise RecordTooLarge(
                f"record of {len(framed)} bytes exceeds {limit} "
                f"({self._chunks} chunks of {self._bsize} bytes)"
            )
        return framed

    def _blocks(self, payload: bytes | None) -> int:
        if payload is None:
            return 0
        return -(-len(payload) // self._bsize)

    async def _access_ready(self) -> None:
        if self._wipe:
            store = self._client.store
            if isinstance(store, RedisBucketStore):
                await store.aclear()
                self._marker = os.urandom(16).hex().encode()
                await store.aset_marker(self._marker)
            self._wipe = False

    async def _read(self, kind: bytes, key: bytes) -> tuple[Any, int]:
        """Read every chunk of a record; returns (decoded value or None, chunks present)."""
        await self._access_ready()
        chunks: list[bytes | None] = []
        for addr in self._addresses(kind, key):
            chunks.append(await self._client.read(addr))
            self._n += 1
        present = 0
        for c in chunks:
            if c is None:
                break
            present += 1
        if present == 0:
            return None, 0
        data = b"".join(c for c in chunks[:present] if c is not None)
        length = int.from_bytes(data[:4], "big")
        if 4 + length > len(data):
            raise ValueError("directory record is truncated")  # a bug, never storage
        return orjson.loads(data[4 : 4 + length]), present

    async def _write(self, kind: bytes, key: bytes, payload: bytes | None) -> None:
        """Write (or delete) every chunk of a record: always C accesses."""
        await self._access_ready()
        bsize = self._bsize
        for i, addr in enumerate(self._addresses(kind, key)):
            piece = b"" if payload is None else payload[i * bsize : (i + 1) * bsize]
            if piece:
                await self._client.write(addr, piece.ljust(bsize, b"\0"))
            else:
                await self._client.delete(addr)
            self._n += 1

    async def _pad(self) -> None:
        """With uniform_calls, top every call up to max(4, S) x C accesses with dummy
        (miss) reads: the cost of the dearest call, ``members`` or a join."""
        if self._uniform:
            while self._n < max(4, self._shards, self._ushards) * self._chunks:
                await self._client.read(int.from_bytes(os.urandom(8), "big") >> 1)
                self._n += 1
        self.last_call_accesses = self._n
