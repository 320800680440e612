"""argparse ``type=`` validators for numeric options: a bad value is a clean usage error.

Not a command (no ``register``). Each factory returns a callable that argparse calls on the
option's text; it raises :class:`argparse.ArgumentTypeError`, so argparse prints
``plexigate serve: error: argument --max-frame: must be at least 4096 (got 10)`` and exits
with status 2, instead of the gateway starting with a limit that cannot work.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def _parse_int(text: str) -> int:
    try:
        return int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def _parse_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    return value


def int_range(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """An integer in ``minimum..maximum`` (inclusive; no upper bound when None)."""

    def check(text: str) -> int:
        value = _parse_int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum} (got {value})")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be at most {maximum} (got {value})")
        return value

    check.__name__ = "integer"
    return check


def positive_float(text: str) -> float:
    """A finite number > 0."""
    value = _parse_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive (got {text})")
    return value


def non_negative_float(text: str) -> float:
    """A finite number >= 0."""
    value = _parse_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative (got {text})")
    return value


def power_of_two(minimum: int) -> Callable[[str], int]:
    """A power of two >= ``minimum``."""

    def check(text: str) -> int:
        value = _parse_int(text)
        if value < minimum or value & (value - 1):
            raise argparse.ArgumentTypeError(
                f"must be a power of two, at least {minimum} (got {value})"
            )
        return value

    check.__name__ = "power of two"
    return check


positive_int = int_range(1)
non_negative_int = int_range(0)
port = int_range(0, 65535)
