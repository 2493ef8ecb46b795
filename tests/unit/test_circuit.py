"""The exchange backoff every request path shares: doubling with jitter, capped, on a clock."""

from __future__ import annotations

import random

import pytest

from bot.circuit import ExchangeCircuit


class Monotonic:
    def __init__(self) -> None:
        self.t = 500.0

    def __call__(self) -> float:
        return self.t


def held(circuit: ExchangeCircuit) -> bool:
    """Whether requests must wait now (a function: the property changes as the clock moves)."""
    return circuit.open


def test_backoff_doubles_with_jitter_up_to_the_cap_and_holds_requests_until_it_passes() -> None:
    clock = Monotonic()
    circuit = ExchangeCircuit(clock, max_seconds=15, rng=random.Random(7))
    assert not held(circuit)

    delays = []
    for _ in range(12):
        delay = circuit.failure()
        delays.append(delay)
        failed_at = clock.t
        assert held(circuit) and circuit.seconds_left() == pytest.approx(delay)
        clock.t = failed_at + delay - 0.01
        assert held(circuit)  # nothing is sent before the backoff has passed
        clock.t = failed_at + delay
        assert not held(circuit)

    for n, delay in enumerate(delays[:3], start=1):  # 2^n x [0.5, 1.5)
        assert 2**n * 0.5 <= delay < 2**n * 1.5, (n, delays)
    assert max(delays) == 15 and all(d == 15 for d in delays[4:]), delays  # capped at 15 s
    assert circuit.failures == 12


def test_a_configured_cap_bounds_every_delay_and_success_closes_the_circuit() -> None:
    clock = Monotonic()
    circuit = ExchangeCircuit(clock, max_seconds=5, rng=random.Random(3))
    delays = [circuit.failure() for _ in range(8)]
    assert max(delays) == 5 and min(delays) >= 1, delays
    assert circuit.seconds_left() == pytest.approx(5)  # failures while open never shorten the wait

    assert circuit.success() == 8
    assert not held(circuit) and circuit.failures == 0
    assert 1 <= circuit.failure() < 3  # the next outage starts the ramp again
