"""Funding maths: a rate's APR, Binance's funding formula, the premium index, EWMA.

Pure functions, `Decimal` in and out. Rates are fractions a period (0.0001 = 0.01%), APRs
fractions a year (0.1095 = 10.95%). Used by market data, the trading loop and the strategies.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from itertools import pairwise
from operator import mul

from bot.domain.market import SettledFunding

ZERO = Decimal(0)
ONE = Decimal(1)
HOURS_PER_YEAR = Decimal(8760)
INTEREST_CLAMP = Decimal("0.0005")
"""Binance clamps (interest − premium) to ±0.05% in the funding formula."""
FUNDING_SCALED_SINCE = datetime(2025, 9, 18, 8, 1, tzinfo=UTC)
"""From this instant Binance divides F by 8/N for N-hour symbols (before: no scaling)."""
BINANCE_INTERVALS = frozenset({1, 2, 4, 8})


def hours_between(start: datetime, end: datetime) -> Decimal:
    """Return `end − start` in hours, exactly (microsecond resolution)."""
    return timedelta_hours(end - start)


def timedelta_hours(delta: timedelta) -> Decimal:
    """Return a timedelta in hours, exactly."""
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return Decimal(micros) / 3_600_000_000


def clamp(value: Decimal, low: Decimal, high: Decimal) -> Decimal:
    """Return `value` limited to [low, high]."""
    return max(low, min(high, value))


def funding_apr(rate: Decimal, interval_hours: int) -> Decimal:
    """Annualise a per-period funding rate with the symbol's own interval.

    APR = rate × (24 / interval_hours) × 365, computed as rate × 8760 / interval_hours (exact
    for Binance's 1, 2, 4 and 8 h intervals).
    """
    if interval_hours <= 0:
        raise ValueError(f"interval_hours = {interval_hours}: must be positive")
    return rate * HOURS_PER_YEAR / interval_hours


def rate_from_apr(apr: Decimal, interval_hours: int) -> Decimal:
    """Invert `funding_apr`: rate = APR × interval_hours / 8760."""
    return apr * interval_hours / HOURS_PER_YEAR


def premium_index(perp_bid: Decimal, perp_ask: Decimal, index: Decimal) -> Decimal:
    """Estimate Binance's premium index from the perpetual's book and the index price.

    P = [max(0, perp_bid − index) − max(0, index − perp_ask)] / index. Binance samples this
    every 5 s with impact prices and averages it over the interval; one sample of the best
    bid/ask is an estimate of that.
    """
    if index <= 0:
        raise ValueError(f"index = {index}: must be positive")
    return (max(ZERO, perp_bid - index) - max(ZERO, index - perp_ask)) / index


def predicted_funding_rate(
    premium: Decimal,
    interest: Decimal,
    interval_hours: int,
    *,
    cap: Decimal | None = None,
    floor: Decimal | None = None,
    scaled: bool = True,
) -> Decimal:
    """Predict the next funding rate with Binance's formula.

    F = [P + clamp(I − P, −0.05%, +0.05%)] / (8 / N)   (N = interval hours; `scaled=False`
    drops the division, the rule before 2025-09-18), then F = clamp(F, floor, cap).

    `cap` and `floor` are the symbol's own limits (fundingInfo adjustedFundingRateCap/Floor,
    floor signed, e.g. −0.03). When absent no cap or floor is applied: Binance's default
    depends on the symbol's leverage brackets and is not published as one number.
    """
    if interval_hours <= 0:
        raise ValueError(f"interval_hours = {interval_hours}: must be positive")
    rate = premium + clamp(interest - premium, -INTEREST_CLAMP, INTEREST_CLAMP)
    if scaled:
        rate = rate * interval_hours / 8
    if cap is not None:
        rate = min(rate, cap)
    if floor is not None:
        rate = max(rate, floor)
    return rate


@lru_cache(maxsize=256)
def _ewma_weights(count: int, halflife: Decimal) -> tuple[Decimal, ...]:
    decay = Decimal("0.5") ** (ONE / halflife)
    raw = [decay**age for age in range(count - 1, -1, -1)]  # oldest first
    total = sum(raw, ZERO)
    return tuple(w / total for w in raw)


def ewma(values: Sequence[Decimal], halflife: Decimal) -> Decimal:
    """Return the exponentially weighted mean of `values` (oldest first).

    The value k periods old weighs 0.5^(k / halflife); weights are normalised to sum to 1.
    """
    if not values:
        raise ValueError("ewma of no values")
    if halflife <= 0:
        raise ValueError(f"halflife = {halflife}: must be positive")
    weights = _ewma_weights(len(values), halflife)
    return sum(map(mul, weights, values), ZERO)


def settled_aprs(history: Sequence[SettledFunding], interval_hours: int) -> list[Decimal]:
    """Annualise settled rates, each with the interval it actually covered.

    A row's interval is the gap to the previous row when that gap is a Binance interval
    (1, 2, 4 or 8 h), so a symbol that moved from 8 h to 4 h is annualised correctly; the
    first row takes the gap to the next one, and any other gap (missing data) the symbol's
    current `interval_hours`.
    """
    gaps = [_gap_hours(a.funding_time, b.funding_time) for a, b in pairwise(history)]
    out: list[Decimal] = []
    for i, row in enumerate(history):
        gap = gaps[i - 1] if i > 0 else (gaps[0] if gaps else None)
        out.append(funding_apr(row.rate, gap or interval_hours))
    return out


def settled_ewma_apr(
    history: Sequence[SettledFunding], interval_hours: int, halflife: Decimal
) -> Decimal:
    """Return the EWMA of the settled rates' APRs (see `settled_aprs` and `ewma`).

    When the rows are evenly spaced at `interval_hours` (the usual case) this is
    funding_apr(EWMA(rates), interval_hours), which is the same by linearity and cheaper.
    """
    if not history:
        raise ValueError("ewma of no settled rates")
    span = history[-1].funding_time - history[0].funding_time
    if span == timedelta(hours=interval_hours * (len(history) - 1)):
        return funding_apr(ewma([row.rate for row in history], halflife), interval_hours)
    return ewma(settled_aprs(history, interval_hours), halflife)


def _gap_hours(earlier: datetime, later: datetime) -> int | None:
    hours = round((later - earlier).total_seconds() / 3600)
    return hours if hours in BINANCE_INTERVALS else None


def trailing_negative(history: Sequence[SettledFunding]) -> int:
    """Return how many of the latest settled rates in a row are negative."""
    count = 0
    for row in reversed(history):
        if row.rate >= 0:
            break
        count += 1
    return count
