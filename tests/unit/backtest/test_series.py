"""Series lookups: bar containing a time, gaps, quote-volume windows, exact ms conversion."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from bot.backtest.series import HOUR_MS, BarSeries, FundingSeries, from_ms, hour_floor, to_ms

D = Decimal


def _bars() -> BarSeries:
    times = [0, HOUR_MS, 3 * HOUR_MS]  # a gap at hour 2
    return BarSeries.from_bars(
        HOUR_MS, times, [D(10), D(11), D(13)], [D("10.5"), D("11.5"), D("13.5")], [D(1), D(2), D(3)]
    )


def test_index_containing_inside_bar_returns_that_bar() -> None:
    bars = _bars()

    assert bars.index_containing(0) == 0
    assert bars.index_containing(HOUR_MS - 1) == 0
    assert bars.index_containing(HOUR_MS + 1) == 1


def test_index_containing_gap_or_outside_returns_minus_one() -> None:
    bars = _bars()

    assert bars.index_containing(-1) == -1
    assert bars.index_containing(2 * HOUR_MS + 5) == -1
    assert bars.index_containing(4 * HOUR_MS) == -1
    assert bars.open_containing(2 * HOUR_MS) is None


def test_quote_volume_window_sums_bars_opening_inside() -> None:
    bars = _bars()

    assert bars.quote_volume(0, 3 * HOUR_MS) == D("10.5") + D("23.0")
    assert bars.quote_volume(HOUR_MS, 4 * HOUR_MS) == D("23.0") + D("40.5")
    assert bars.quote_volume(HOUR_MS + 1, 3 * HOUR_MS) == 0


def test_tail_drops_bars_and_keeps_volume_windows() -> None:
    tail = _bars().tail(1)

    assert tail.times == [HOUR_MS, 3 * HOUR_MS]
    assert tail.quote_volume(0, 4 * HOUR_MS) == D("23.0") + D("40.5")


def test_quote_volume_series_without_volume_raises() -> None:
    marks = BarSeries.from_bars(HOUR_MS, [0], [D(1)])

    with pytest.raises(ValueError, match="no volume"):
        marks.quote_volume(0, HOUR_MS)


def test_funding_series_lookups_bound_inclusive() -> None:
    eight = 8 * HOUR_MS
    funding = FundingSeries([eight, 2 * eight, 3 * eight], [D(1), D(2), D(3)])

    assert funding.last_index_at_or_before(eight - 1) == -1
    assert funding.last_index_at_or_before(eight) == 0
    assert list(funding.index_range(eight, 2 * eight)) == [0, 1]
    assert funding.interval_ms(2) == eight


def test_to_ms_round_trip_is_exact() -> None:
    when = datetime(2024, 6, 1, 7, 59, 59, 999000, tzinfo=UTC)

    assert from_ms(to_ms(when)) == when
    assert to_ms(when + timedelta(microseconds=999)) == to_ms(when)
    assert hour_floor(to_ms(when)) == to_ms(datetime(2024, 6, 1, 7, tzinfo=UTC))


def test_to_ms_naive_datetime_raises() -> None:
    with pytest.raises(ValueError, match="naive"):
        to_ms(datetime(2024, 1, 1))
