"""Token bucket for per-connection publish rates."""

from __future__ import annotations


class TokenBucket:
    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate_per_s: float, burst: int) -> None:
        self.rate = rate_per_s
        self.burst = float(burst)
        self._tokens = float(burst)
        self._last: float | None = None

    def take(self, now: float, cost: float = 1.0) -> bool:
        if self._last is not None:
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= cost:
            self._tokens -= cost
            return True
        return False

    def is_full(self, now: float) -> bool:
        """Whether the bucket has refilled to its burst (its state can be forgotten)."""
        if self._last is None:
            return True
        return self._tokens + (now - self._last) * self.rate >= self.burst
