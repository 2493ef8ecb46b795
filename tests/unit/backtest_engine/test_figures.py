"""Summary figures: peak exposure, time in market, drawdown, APR, number formatting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from bot.backtest.figures import (
    Interval,
    apr,
    fixed,
    max_drawdown,
    peak_exposure,
    time_in_market,
)

D = Decimal
T = datetime(2024, 1, 1, tzinfo=UTC)


def _iv(start_h: int, end_h: int, capital: str, notional: str) -> Interval:
    return Interval(
        T + timedelta(hours=start_h), T + timedelta(hours=end_h), D(capital), D(notional)
    )


def test_peak_exposure_overlapping_hedges_adds_them_up() -> None:
    intervals = [_iv(0, 10, "1500", "1000"), _iv(5, 20, "750", "500"), _iv(15, 30, "300", "200")]

    assert peak_exposure(intervals) == (D("2250"), D("1500"))


def test_peak_exposure_close_and_open_at_same_time_frees_first() -> None:
    intervals = [_iv(0, 10, "1500", "1000"), _iv(10, 20, "1500", "1000")]

    assert peak_exposure(intervals) == (D("1500"), D("1000"))


def test_time_in_market_overlaps_counted_once() -> None:
    intervals = [_iv(0, 10, "1", "1"), _iv(5, 20, "1", "1"), _iv(30, 40, "1", "1")]

    assert time_in_market(intervals, T, T + timedelta(hours=40)) == D("0.75")


def test_max_drawdown_largest_fall_from_a_previous_peak() -> None:
    values = [D(v) for v in ("100", "120", "90", "130", "117", "140")]

    assert max_drawdown(values) == (D("30"), D("30") / D("120"))


def test_apr_half_year_doubles_the_return() -> None:
    half_year = D(365 * 24 * 3600) / 2

    assert apr(D("50"), D("1000"), half_year) == D("0.1")
    assert apr(D("50"), D("0"), half_year) is None


def test_fixed_rounds_without_exponent_or_negative_zero() -> None:
    assert fixed(D("1E-12"), D("1e-8")) == "0.00000000"
    assert fixed(D("-0.000000001"), D("1e-8")) == "0.00000000"
    assert fixed(D("12345678.123456789"), D("1e-8")) == "12345678.12345679"
