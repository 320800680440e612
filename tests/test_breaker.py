"""Circuit breaker driven by a fake clock."""

from __future__ import annotations

import pytest

from crypto.breaker import BreakerPolicy, BreakerState, CircuitBreaker
from crypto.keystore import HsmUnavailable


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_opens_after_5_failures_half_opens_after_30s_closes_after_3_probes() -> None:
    clock = Clock()
    b = CircuitBreaker(BreakerPolicy(5, 30.0, 3), clock=clock)
    for _ in range(4):
        b.before_call()
        b.on_failure()
    assert b.state is BreakerState.CLOSED
    b.before_call()
    b.on_failure()
    assert b.state is BreakerState.OPEN
    with pytest.raises(HsmUnavailable) as info:
        b.before_call()
    assert info.value.retryable and info.value.retry_after == pytest.approx(30.0)
    clock.t += 29.9
    with pytest.raises(HsmUnavailable):
        b.before_call()
    clock.t += 0.2
    assert b.state is BreakerState.HALF_OPEN
    for i in range(3):
        b.before_call()
        if i == 0:  # one probe at a time
            with pytest.raises(HsmUnavailable):
                b.before_call()
        b.on_success()
    assert b.state is BreakerState.CLOSED


def test_failed_probe_reopens() -> None:
    clock = Clock()
    b = CircuitBreaker(BreakerPolicy(1, 10.0, 3), clock=clock)
    b.before_call()
    b.on_failure()
    clock.t += 10
    b.before_call()
    b.on_failure()
    assert b.state is BreakerState.OPEN
    with pytest.raises(HsmUnavailable):
        b.before_call()


def test_success_resets_consecutive_count() -> None:
    b = CircuitBreaker(BreakerPolicy(3, 10.0, 1), clock=Clock())
    for _ in range(10):
        b.on_failure()
        b.on_failure()
        b.on_success()
    assert b.state is BreakerState.CLOSED
