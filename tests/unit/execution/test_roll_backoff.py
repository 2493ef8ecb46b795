"""A failed roll cools its hedge down, doubling to a cap; each condition is reported once."""

from __future__ import annotations

from bot.execution.roll_backoff import RollBackoff


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_cooldown_doubles_per_failure_up_to_the_cap_and_is_per_hedge() -> None:
    clock = Clock()
    backoff = RollBackoff(clock, first_seconds=60, max_seconds=200)

    assert [backoff.record_failure(1, "code -1000") for _ in range(4)] == [60, 120, 200, 200]

    assert backoff.blocked(1) is not None and "4 failed (code -1000)" in (backoff.blocked(1) or "")
    assert backoff.blocked(2) is None
    clock.t = 199.0
    assert backoff.blocked(1) is not None
    clock.t = 200.0
    assert backoff.blocked(1) is None


def test_a_condition_is_reported_once_until_the_hedge_clears() -> None:
    backoff = RollBackoff(Clock())

    assert backoff.first_report(1, "denied:SizingError")
    assert not backoff.first_report(1, "denied:SizingError")
    assert backoff.first_report(1, "roll not done")
    assert backoff.first_report(2, "denied:SizingError")
    backoff.record_failure(1, "x")

    assert backoff.clear(1) and backoff.failures(1) == 0 and backoff.blocked(1) is None
    assert backoff.first_report(1, "denied:SizingError")
    assert not RollBackoff(Clock()).clear(3)
