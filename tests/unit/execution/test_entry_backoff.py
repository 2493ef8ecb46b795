"""Cool-downs after failed entries: per pair and reason, doubling, capped, account-wide."""

from __future__ import annotations

from bot.execution.entry_backoff import EntryBackoff


class Monotonic:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_failed_pair_cools_down_doubling_up_to_the_cap_and_success_clears_it() -> None:
    clock = Monotonic()
    backoff = EntryBackoff(clock, first_seconds=60, max_seconds=200)

    first = backoff.record_failure("BTC/USDT", [None, -4164], "perp leg failed")
    assert (first.cooldown_seconds, first.reason, first.reload_filters) == (60, "code -4164", True)
    assert "BTC/USDT" in backoff.blocks() and "ETH/USDT" not in backoff.blocks()
    clock.t += 61
    assert backoff.blocks() == {}
    assert backoff.record_failure("BTC/USDT", [-4164], "x").cooldown_seconds == 120
    assert backoff.record_failure("BTC/USDT", [-4164], "x").cooldown_seconds == 200  # capped

    backoff.record_success("BTC/USDT")
    assert backoff.blocks() == {}
    assert backoff.record_failure("BTC/USDT", [-4164], "x").cooldown_seconds == 60


def test_reasons_are_counted_apart_and_the_longest_cooldown_blocks() -> None:
    clock = Monotonic()
    backoff = EntryBackoff(clock, first_seconds=10, max_seconds=1000)
    for _ in range(3):
        backoff.record_failure("BTC/USDT", [-4164], "x")  # 10, 20, 40
    other = backoff.record_failure("BTC/USDT", [], "legs could not be equalised")
    assert other.cooldown_seconds == 10 and other.reason == "legs could not be equalised"
    assert not other.reload_filters
    clock.t += 30
    assert "code -4164" in backoff.blocks()["BTC/USDT"]


def test_account_errors_block_every_pair_and_repeat_failures_stop_entries() -> None:
    clock = Monotonic()
    backoff = EntryBackoff(clock, first_seconds=5, account_failures_to_stop=2)

    first = backoff.record_failure("BTC/USDT", [-2019], "perp leg failed")
    assert first.account_level and not first.stop_entries
    assert set(backoff.blocks()) == {"*"}
    clock.t += 6
    second = backoff.record_failure("ETH/USDT", [-2015], "perp leg failed")
    assert second.stop_entries

    backoff.reset_account()
    assert backoff.blocks() == {}
    assert not backoff.record_failure("ETH/USDT", [-2015], "x").stop_entries


def test_a_pair_failure_does_not_count_toward_the_account_streak() -> None:
    backoff = EntryBackoff(Monotonic(), account_failures_to_stop=2)
    backoff.record_failure("BTC/USDT", [-2019], "x")
    assert not backoff.record_failure("ETH/USDT", [-4164], "x").stop_entries
