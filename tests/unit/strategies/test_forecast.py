"""The funding forecast: mean reversion toward the interest anchor, persistence fitted on the past."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from bot.domain import SettledFunding
from strategies.forecast import (
    FundingForecast,
    anchor_rate,
    ewma_levels,
    fit_persistence,
    forecast,
    reversion_weight,
)

D = Decimal
T0 = datetime(2024, 1, 1, tzinfo=UTC)
ANCHOR = D("0.0001")


def rows(rates: list[Decimal]) -> list[SettledFunding]:
    return [
        SettledFunding("X/USDT:USDT", T0 + timedelta(hours=8 * i), r) for i, r in enumerate(rates)
    ]


def ar1(phi: float, count: int, seed: int = 1) -> list[float]:
    """Rates reverting toward the anchor with persistence `phi` and noise."""
    rng = random.Random(seed)
    out, dev = [], 0.0
    for _ in range(count):
        dev = phi * dev + rng.gauss(0, 0.0001)
        out.append(0.0001 + dev)
    return out


def test_reversion_weight_is_phi_for_one_period_and_falls_with_the_horizon() -> None:
    assert reversion_weight(D("0.9"), D(1)) == D("0.9")
    assert reversion_weight(D(1), D(50)) == 1
    assert reversion_weight(D("0.99"), D(90)) < reversion_weight(D("0.99"), D(21)) < D("0.99")
    # phi (1 - phi^n) / (n (1 - phi)) for phi = 0.5, n = 2: 0.5 x 0.75 / 1 = 0.375
    assert reversion_weight(D("0.5"), D(2)) == D("0.375")


def test_anchor_is_the_8h_interest_scaled_by_the_interval() -> None:
    assert anchor_rate(ANCHOR, 8) == ANCHOR
    assert anchor_rate(ANCHOR, 4) == D("0.00005")


def test_history_at_the_anchor_forecasts_the_anchor_at_every_horizon() -> None:
    f = forecast(
        rows([ANCHOR] * 200),
        interest_rate=ANCHOR,
        interval_hours=8,
        halflife=D(9),
        default_persistence=D("0.99"),
    )
    assert f is not None
    for hours in (8, 168, 2160):
        assert abs(f.mean_rate(hours) - ANCHOR) < D("1e-12")
    assert abs(f.carry(2160) - ANCHOR * 270) < D("1e-9")  # 270 settlements of 0.01%


def test_fit_ranks_persistence_and_recovers_a_slow_one() -> None:
    # The level is an EWMA (a lagged estimate of the deviation), so a fast-reverting series
    # fits a little more persistent than its own phi; slow ones, as funding is, come close.
    fitted = {}
    for phi in (0.8, 0.9, 0.95, 0.99):
        rates = ar1(phi, 3000)
        fitted[phi] = fit_persistence(rates, ewma_levels(rates, 9.0), 0.0001, 21)
    values = [fitted[phi] for phi in (0.8, 0.9, 0.95, 0.99)]
    known = [v for v in values if v is not None]
    assert known == values
    assert known == sorted(known)
    assert abs(known[-1] - 0.99) < 0.01


def test_short_history_uses_the_default_persistence() -> None:
    f = forecast(
        rows([D("0.0003")] * 30),
        interest_rate=ANCHOR,
        interval_hours=8,
        halflife=D(9),
        default_persistence=D("0.97"),
    )
    assert f is not None and not f.fitted and f.persistence == D("0.97")
    assert (
        forecast(
            [], interest_rate=ANCHOR, interval_hours=8, halflife=D(9), default_persistence=D("0.97")
        )
        is None
    )


def test_forecast_above_the_anchor_decays_toward_it() -> None:
    f = FundingForecast(ANCHOR, D("0.0005"), D("0.9"), 8, True)
    assert f.next_rate() == ANCHOR + D("0.0004") * D("0.9")
    assert ANCHOR < f.mean_rate(720) < f.mean_rate(24) < D("0.0005")
    assert f.worst_carry(2160) == (D(0), D(0))  # nothing negative ahead


def test_worst_carry_sums_the_negative_rates_until_they_turn_positive() -> None:
    # level -0.0003 with phi 0.5: expected rates -0.0001, then 0 -> worst after one period
    f = FundingForecast(ANCHOR, D("-0.0003"), D("0.5"), 8, True)
    assert f.worst_carry(2160) == (D("-0.0001"), D(8))
    slow = FundingForecast(ANCHOR, D("-0.0003"), D("0.99"), 8, True)
    worst, hours = slow.worst_carry(2160)
    # a + phi^k (x - a) < 0 while phi^k > 1/4: k < ln 4 / -ln 0.99 = 137.9 periods
    assert hours == 137 * 8
    assert worst < D("-0.01")
    capped, capped_hours = slow.worst_carry(80)
    assert capped_hours == 80 and capped > worst
