"""Circuit breaker for HSM calls, with an injectable clock.

closed --(``failure_threshold`` consecutive failures)--> open
open --(``reset_timeout`` seconds)--> half-open: one probe call at a time is let through
half-open --probe fails--> open (timer restarts)
half-open --``success_threshold`` successful probes--> closed

While open, :meth:`CircuitBreaker.before_call` raises :class:`HsmUnavailable` with
``retry_after``; callers never fall back to weaker handling.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from crypto.keystore import HsmUnavailable


class BreakerState(Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    failure_threshold: int = 5
    reset_timeout: float = 30.0
    success_threshold: int = 3

    def __post_init__(self) -> None:
        if self.failure_threshold < 1 or self.success_threshold < 1 or self.reset_timeout <= 0:
            raise ValueError("breaker thresholds must be >= 1 and the timeout > 0")


class CircuitBreaker:
    """Thread-safe breaker. Call ``before_call()``, then ``on_success()`` or ``on_failure()``."""

    def __init__(
        self,
        policy: BreakerPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy or BreakerPolicy()
        self._clock = clock
        self._lock = threading.Lock()
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._successes = 0
        self._opened_at = 0.0
        self._probe_in_flight = False

    @property
    def state(self) -> BreakerState:
        with self._lock:
            self._tick()
            return self._state

    def _tick(self) -> None:
        if (
            self._state is BreakerState.OPEN
            and self._clock() - self._opened_at >= self.policy.reset_timeout
        ):
            self._state = BreakerState.HALF_OPEN
            self._successes = 0
            self._probe_in_flight = False

    def before_call(self) -> None:
        """Raise HsmUnavailable unless a call may go through now."""
        with self._lock:
            self._tick()
            if self._state is BreakerState.OPEN:
                wait = self.policy.reset_timeout - (self._clock() - self._opened_at)
                raise HsmUnavailable(
                    "HSM circuit breaker is open", retry_after=max(wait, 0.0)
                )
            if self._state is BreakerState.HALF_OPEN:
                if self._probe_in_flight:
                    raise HsmUnavailable("HSM circuit breaker is probing", retry_after=1.0)
                self._probe_in_flight = True

    def on_success(self) -> None:
        with self._lock:
            if self._state is BreakerState.HALF_OPEN:
                self._probe_in_flight = False
                self._successes += 1
                if self._successes >= self.policy.success_threshold:
                    self._state = BreakerState.CLOSED
                    self._failures = 0
            else:
                self._failures = 0

    def on_failure(self) -> None:
        with self._lock:
            if self._state is BreakerState.HALF_OPEN:
                self._open()
                return
            self._failures += 1
            if self._state is BreakerState.CLOSED and (
                self._failures >= self.policy.failure_threshold
            ):
                self._open()

    def _open(self) -> None:
        self._state = BreakerState.OPEN
        self._opened_at = self._clock()
        self._failures = 0
        self._successes = 0
        self._probe_in_flight = False
