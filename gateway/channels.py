"""Channels: live membership of connections, fan-out, and a short history per channel.

The hub holds only what must be in process memory (which live connections to write to).
Fan-out encodes each message once and hands it to every member, whose own session
seals it under its own ratchet (re-encrypted per recipient).

With a ``sealer`` (the gateway's storage :class:`crypto.rotation.RotatingKey` when a key store
is configured) every history entry is kept sealed (AES-256-GCM, AAD ``history/<channel>``)
and opened on read, so entries stay readable across key rotations while their version is
enabled. An entry that no longer opens (its version disabled or destroyed) is left out of
the reply and logged; a seal failure keeps the message out of history (it is still
delivered live). Nothing is ever stored in plaintext instead.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from crypto.keystore import KeyStoreError
from gateway.ops import encode

log = logging.getLogger("plexigate.channels")


class HistorySealer(Protocol):
    """What ChannelHub needs to keep history sealed (a RotatingKey fits)."""

    def seal(self, plaintext: bytes, aad: bytes = b"") -> bytes: ...

    def open(self, blob: bytes, aad: bytes = b"") -> bytes: ...


class Member(Protocol):
    user: str

    def deliver(self, payload: bytes) -> None: ...


@dataclass(frozen=True, slots=True)
class Delivery:
    mid: str
    ts: int
    delivered: int


@dataclass(slots=True)
class _Channel:
    members: set[Member] = field(default_factory=set)
    history: deque[bytes] = field(default_factory=deque)


class ChannelHub:
    def __init__(
        self, history_per_channel: int = 100, sealer: HistorySealer | None = None
    ) -> None:
        self._channels: dict[str, _Channel] = {}
        self._sealer = sealer
        self._history = history_per_channel
        self._node = os.urandom(4).hex()
        self._counter = itertools.count(1)

    def join(self, member: Member, channel: str) -> bool:
        ch = self._channels.setdefault(channel, _Channel(history=deque(maxlen=self._history)))
        if member in ch.members:
            return False
        ch.members.add(member)
        return True

    def leave(self, member: Member, channel: str) -> bool:
        ch = self._channels.get(channel)
        if ch is None or member not in ch.members:
            return False
        ch.members.discard(member)
        if not ch.members and not ch.history:
            del self._channels[channel]
        return True

    def is_member(self, member: Member, channel: str) -> bool:
        ch = self._channels.get(channel)
        return ch is not None and member in ch.members

    def members(self, channel: str) -> int:
        ch = self._channels.get(channel)
        return len(ch.members) if ch else 0

    def publish(self, sender: Member, channel: str, body: str) -> Delivery:
        ch = self._channels.setdefault(channel, _Channel(history=deque(maxlen=self._history)))
        mid = f"{self._node}-{next(self._counter)}"
        ts = time.time_ns() // 1_000_000
        payload = encode(
            {
                "op": "msg",
                "channel": channel,
                "from": sender.user,
                "body": body,
                "mid": mid,
                "ts": ts,
            }
        )
        if self._sealer is None:
            ch.history.append(payload)
        else:
            try:
                ch.history.append(self._sealer.seal(payload, _history_aad(channel)))
            except KeyStoreError as exc:
                log.warning("history entry not kept for a channel: %s", type(exc).__name__)
        delivered = 0
        for member in tuple(ch.members):
            if member is not sender:
                member.deliver(payload)
                delivered += 1
        return Delivery(mid, ts, delivered)

    def history(self, channel: str, limit: int) -> list[bytes]:
        ch = self._channels.get(channel)
        if ch is None or limit <= 0:
            return []
        entries = list(ch.history)[-limit:]
        if self._sealer is None:
            return entries
        out: list[bytes] = []
        failed: dict[str, int] = {}
        aad = _history_aad(channel)
        for blob in entries:
            try:
                out.append(self._sealer.open(blob, aad))
            except KeyStoreError as exc:  # disabled/destroyed version, forged entry
                failed[type(exc).__name__] = failed.get(type(exc).__name__, 0) + 1
        if failed:
            log.warning("history: %s entries no longer open (%s)", sum(failed.values()),
                        ", ".join(f"{k} x{v}" for k, v in sorted(failed.items())))
        return out


def _history_aad(channel: str) -> bytes:
    return b"history/" + channel.encode()
