"""Replay window of one receiving direction: check before decrypting, commit after.

The transport (a WebSocket over TCP) is ordered, so the window is exact: the next record
must carry exactly the expected sequence number of the current epoch. That makes every
check O(1) in time and memory (a jump of 2^31 costs nothing to refuse) and lets the
ratchet stay one step ahead, never searching.

Timestamps are judged against the peer's clock as measured at the handshake
(``offset_ms`` = peer clock - our clock), so a client whose clock is hours off still works,
while a record held back or sent ahead by more than ``max_skew_ms`` is refused. Nothing in
the window moves until :meth:`commit`, which the caller runs only after the tag verified.
"""

from __future__ import annotations

from dataclasses import dataclass

from crypto.errors import LimitExceeded, ReplayError, SequenceError, TimestampError


@dataclass(frozen=True, slots=True)
class ReplayState:
    """Everything needed to resume checking on another node (it is not secret)."""

    epoch: int = 0
    next_seq: int = 0
    last_timestamp_ms: int = 0
    offset_ms: int = 0


class ReplayWindow:
    """Mutable on the hot path (one record, no allocation); ``state`` exports a snapshot."""

    __slots__ = ("epoch", "last_timestamp_ms", "max_seq", "max_skew_ms", "next_seq", "offset_ms")

    def __init__(self, state: ReplayState, max_skew_ms: int, max_seq: int) -> None:
        self.epoch = state.epoch
        self.next_seq = state.next_seq
        self.last_timestamp_ms = state.last_timestamp_ms
        self.offset_ms = state.offset_ms
        self.max_skew_ms = max_skew_ms
        self.max_seq = max_seq

    @property
    def state(self) -> ReplayState:
        return ReplayState(self.epoch, self.next_seq, self.last_timestamp_ms, self.offset_ms)

    def check(self, epoch: int, seq: int, timestamp_ms: int, now_ms: int) -> None:
        if epoch != self.epoch:
            raise SequenceError("record from an unexpected epoch")
        if seq < self.next_seq:
            raise ReplayError()
        if seq > self.next_seq:
            raise SequenceError("record sequence number skips ahead")
        if seq > self.max_seq:
            raise LimitExceeded("peer exceeded the sequence limit")
        if abs(timestamp_ms - (now_ms + self.offset_ms)) > self.max_skew_ms:
            raise TimestampError()
        if timestamp_ms + self.max_skew_ms < self.last_timestamp_ms:
            raise TimestampError("record timestamp went backwards")

    def commit(self, seq: int, timestamp_ms: int) -> None:
        self.next_seq = seq + 1
        if timestamp_ms > self.last_timestamp_ms:
            self.last_timestamp_ms = timestamp_ms

    def next_epoch(self) -> None:
        self.epoch += 1
        self.next_seq = 0
