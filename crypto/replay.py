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

from dataclasses import dataclass, replace

from crypto.errors import LimitExceeded, ReplayError, SequenceError, TimestampError


@dataclass(frozen=True, slots=True)
class ReplayState:
    """Everything needed to resume checking on another node (it is not secret)."""

    epoch: int = 0
    next_seq: int = 0
    last_timestamp_ms: int = 0
    offset_ms: int = 0


@dataclass(slots=True)
class ReplayWindow:
    state: ReplayState
    max_skew_ms: int
    max_seq: int

    def check(self, epoch: int, seq: int, timestamp_ms: int, now_ms: int) -> None:
        s = self.state
        if epoch != s.epoch:
            raise SequenceError("record from an unexpected epoch")
        if seq < s.next_seq:
            raise ReplayError()
        if seq > s.next_seq:
            raise SequenceError("record sequence number skips ahead")
        if seq > self.max_seq:
            raise LimitExceeded("peer exceeded the sequence limit")
        expected = now_ms + s.offset_ms
        if abs(timestamp_ms - expected) > self.max_skew_ms:
            raise TimestampError()
        if timestamp_ms + self.max_skew_ms < s.last_timestamp_ms:
            raise TimestampError("record timestamp went backwards")

    def commit(self, seq: int, timestamp_ms: int) -> None:
        self.state = replace(
            self.state,
            next_seq=seq + 1,
            last_timestamp_ms=max(timestamp_ms, self.state.last_timestamp_ms),
        )

    def next_epoch(self) -> None:
        self.state = replace(self.state, epoch=self.state.epoch + 1, next_seq=0)
