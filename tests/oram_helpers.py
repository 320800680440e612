"""Shared helpers for the ORAM tests (not a test module)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from crypto.oram import PathOram
from gateway.stores.oram_memory import MemoryBucketStore


class RecordingStore(MemoryBucketStore):
    """A memory store that logs every call it receives, as the storage server would see it."""

    __slots__ = ("log",)

    def __init__(self) -> None:
        super().__init__()
        self.log: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = []

    def read_path(self, indices: Sequence[int]) -> list[bytes | None]:
        out = super().read_path(indices)
        self.log.append(("read", tuple(indices), tuple(len(b or b"") for b in out)))
        return out

    def write_path(self, buckets: Mapping[int, bytes]) -> None:
        self.log.append(
            ("write", tuple(sorted(buckets)), tuple(len(buckets[i]) for i in sorted(buckets)))
        )
        super().write_path(buckets)


def snapshot(oram: PathOram) -> tuple[Any, ...]:
    """Everything the ORAM client keeps, to compare before/after a failed access."""
    return (
        oram.root_digest,
        oram.version,
        dict(oram._stash),
        dict(oram._pos),
        oram.unacknowledged_write,
    )


def chi_square_critical(df: int, z: float = 3.719) -> float:
    """Upper critical value of chi-square (Wilson-Hilferty); z=3.719 is alpha = 1e-4."""
    h = 2.0 / (9.0 * df)
    return df * (1.0 - h + z * math.sqrt(h)) ** 3


def chi_square(counts: Sequence[int]) -> float:
    total = sum(counts)
    expected = total / len(counts)
    return sum((c - expected) ** 2 / expected for c in counts)
