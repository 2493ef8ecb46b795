"""Carry maths: basis, its APR, book slippage, trade costs, net carry, break-even.

Pure functions, `Decimal` in and out. Rates and bases are fractions (0.0001 = 0.01%), APRs
are fractions a year (0.1095 = 10.95%), amounts are in quote currency (USDT). The funding
maths (funding APR, Binance's formula, EWMA) is `bot.domain.funding`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from bot.domain import Hedge
from bot.domain.funding import HOURS_PER_YEAR, hours_between

ZERO = Decimal(0)
ONE = Decimal(1)
BPS = Decimal("0.0001")


def hedge_age_hours(hedge: Hedge, now: datetime) -> Decimal:
    """Return hours since the hedge opened (since it was created if it has no open time)."""
    return hours_between(hedge.opened_at or hedge.created_at, now)


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
