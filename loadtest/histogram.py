"""Log-linear latency histogram (HDR-style), mergeable across processes.

Values are non-negative integers (the harness records nanoseconds). Values below
``2**SUB_BITS`` get a bucket each; above that, every power of two is split into
``2**(SUB_BITS-1)`` equal buckets, so a reported percentile is within ``2**-(SUB_BITS-1)``
(1.6 % with the default 7 bits) of the true sample, whatever the range. Memory is one dict
entry per bucket in use, so millions of samples cost a few kilobytes. Exact ``min``,
``max``, ``count`` and ``sum`` are kept alongside.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

SUB_BITS = 7
_SUB = 1 << SUB_BITS
_HALF = _SUB >> 1


def bucket_index(value: int) -> int:
    if value < _SUB:
        return value
    shift = value.bit_length() - SUB_BITS
    mantissa = value >> shift  # in [_HALF, _SUB)
    return _SUB + (shift - 1) * _HALF + (mantissa - _HALF)


def bucket_bounds(index: int) -> tuple[int, int]:
    """Lowest and highest value that fall in bucket ``index``."""
    if index < _SUB:
        return index, index
    shift = (index - _SUB) // _HALF + 1
    mantissa = (index - _SUB) % _HALF + _HALF
    return mantissa << shift, ((mantissa + 1) << shift) - 1


class Histogram:
    __slots__ = ("count", "counts", "max", "min", "total")

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.count = 0
        self.total = 0
        self.min: int | None = None
        self.max: int | None = None

    def record(self, value: int) -> None:
        if value < 0:
            value = 0
        idx = bucket_index(value)
        self.counts[idx] = self.counts.get(idx, 0) + 1
        self.count += 1
        self.total += value
        if self.min is None or value < self.min:
            self.min = value
        if self.max is None or value > self.max:
            self.max = value

    def record_many(self, values: Iterable[int]) -> None:
        for v in values:
            self.record(v)

    def merge(self, other: Histogram) -> None:
        for idx, n in other.counts.items():
            self.counts[idx] = self.counts.get(idx, 0) + n
        self.count += other.count
        self.total += other.total
        if other.min is not None and (self.min is None or other.min < self.min):
            self.min = other.min
        if other.max is not None and (self.max is None or other.max > self.max):
            self.max = other.max

    def percentile(self, p: float) -> int | None:
        """The value at percentile ``p`` (0-100): the highest value of its bucket, capped
        by the exact maximum, so a percentile never under-reports."""
        if self.count == 0:
            return None
        if p >= 100:
            return self.max
        rank = max(1, int(-(-p * self.count // 100)))  # ceil(p/100 * count)
        seen = 0
        for idx in sorted(self.counts):
            seen += self.counts[idx]
            if seen >= rank:
                high = bucket_bounds(idx)[1]
                assert self.max is not None
                return min(high, self.max)
        return self.max

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None

    def summary(self, scale: float = 1e-3) -> dict[str, float | int | None]:
        """count and p50/p90/p99/max/mean, divided by ``1/scale`` (default ns -> us)."""

        def sc(v: float | int | None) -> float | None:
            return None if v is None else round(v * scale, 3)

        return {
            "count": self.count,
            "p50": sc(self.percentile(50)),
            "p90": sc(self.percentile(90)),
            "p99": sc(self.percentile(99)),
            "max": sc(self.max),
            "mean": sc(self.mean),
        }

    # -- transport between processes -------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "counts": {str(k): v for k, v in self.counts.items()},
            "count": self.count,
            "total": self.total,
            "min": self.min,
            "max": self.max,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Histogram:
        h = cls()
        h.counts = {int(k): int(v) for k, v in data["counts"].items()}
        h.count = int(data["count"])
        h.total = int(data["total"])
        h.min = data["min"]
        h.max = data["max"]
        return h
