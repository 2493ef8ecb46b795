"""Carry maths: funding APR, Binance's funding formula, basis, costs, break-even, EWMA.

Pure functions, `Decimal` in and out. Rates and bases are fractions (0.0001 = 0.01%), APRs
are fractions a year (0.1095 = 10.95%), amounts are in quote currency (USDT).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from itertools import pairwise
from operator import mul

from bot.domain import Hedge, SettledFunding

ZERO = Decimal(0)
ONE = Decimal(1)
HOURS_PER_YEAR = Decimal(8760)
BPS = Decimal("0.0001")
INTEREST_CLAMP = Decimal("0.0005")
"""Binance clamps (interest − premium) to ±0.05% in the funding formula."""
FUNDING_SCALED_SINCE = datetime(2025, 9, 18, 8, 1, tzinfo=UTC)
"""From this instant Binance divides F by 8/N for N-hour symbols (before: no scaling)."""
BINANCE_INTERVALS = frozenset({1, 2, 4, 8})


def hours_between(start: datetime, end: datetime) -> Decimal:
    """Return `end − start` in hours, exactly (microsecond resolution)."""
    return timedelta_hours(end - start)


def hedge_age_hours(hedge: Hedge, now: datetime) -> Decimal:
    """Return hours since the hedge opened (since it was created if it has no open time)."""
    return hours_between(hedge.opened_at or hedge.created_at, now)


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


def perp_basis(perp_price: Decimal, spot_price: Decimal) -> Decimal:
    """Return the basis (perp − spot) / spot.

    Executable at entry with perp bid vs spot ask, at exit with perp ask vs spot bid.
    """
    if spot_price <= 0:
        raise ValueError(f"spot_price = {spot_price}: must be positive")
    return (perp_price - spot_price) / spot_price


def annualised_basis(basis: Decimal, horizon_hours: Decimal | int) -> Decimal:
    """Annualise a basis earned over `horizon_hours`: basis × 8760 / horizon_hours."""
    if horizon_hours <= 0:
        raise ValueError(f"horizon_hours = {horizon_hours}: must be positive")
    return basis * HOURS_PER_YEAR / horizon_hours


def dated_basis_apr(
    future_price: Decimal, spot_price: Decimal, expiry: datetime, now: datetime
) -> Decimal:
    """Annualise a dated future's basis to its expiry.

    APR = (future − spot) / spot × 365 / days_to_expiry, days measured from `now`.
    """
    days = hours_between(now, expiry) / 24
    if days <= 0:
        raise ValueError(f"expiry {expiry.isoformat()} is not after {now.isoformat()}")
    return perp_basis(future_price, spot_price) * 365 / days


def book_slippage(
    levels: Sequence[tuple[Decimal, Decimal]],
    notional: Decimal,
    *,
    buy: bool,
    fallback_bps: Decimal,
) -> Decimal:
    """Return the cost of a market order of `notional` quote walking `levels` (best first).

    slippage = |VWAP − best| / best. Depth that runs out is priced at the last level moved
    a further `fallback_bps` against the order; an empty book costs `fallback_bps`.
    """
    if not levels or notional <= 0:
        return fallback_bps * BPS
    best = levels[0][0]
    remaining = notional
    quantity = ZERO
    price = best
    for price, size in levels:
        take = min(remaining, price * size)
        quantity += take / price
        remaining -= take
        if remaining <= 0:
            break
    if remaining > 0:
        worst = price * (ONE + fallback_bps * BPS if buy else ONE - fallback_bps * BPS)
        quantity += remaining / worst
    vwap = notional / quantity
    return abs(vwap - best) / best


def trade_cost(fees: Decimal, slippage: Decimal) -> Decimal:
    """Return the cost of one trade as a fraction of notional: fee + slippage."""
    return fees + slippage


def net_carry(
    apr: Decimal,
    horizon_hours: Decimal | int,
    captured_basis: Decimal,
    fees: Decimal,
    slippage: Decimal,
) -> Decimal:
    """Return the expected carry of a hedge over the horizon, as a fraction of notional.

    net = APR × horizon_hours / 8760 + captured_basis − fees − slippage, where fees and
    slippage cover both legs, to open and to close.
    """
    return apr * horizon_hours / HOURS_PER_YEAR + captured_basis - fees - slippage


def breakeven_hours(cost: Decimal, apr: Decimal) -> Decimal | None:
    """Return how long funding at `apr` must be received to repay `cost`.

    hours = cost × 8760 / APR; 0 when there is nothing to repay, None when funding does not
    repay it (APR ≤ 0).
    """
    if cost <= 0:
        return ZERO
    if apr <= 0:
        return None
    return cost * HOURS_PER_YEAR / apr


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
