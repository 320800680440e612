"""Channels: live membership of connections, fan-out, and a short history per channel.

The hub holds only what must be in process memory (which live connections to write to).
Fan-out encodes each message once and hands it to every member, whose own session
seals it under its own ratchet (re-encrypted per recipient).
"""

from __future__ import annotations

import itertools
import os
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from gateway.ops import encode


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
    def __init__(self, history_per_channel: int = 100) -> None:
        self._channels: dict[str, _Channel] = {}
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
        ch.history.append(payload)
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
        return list(ch.history)[-limit:]
