"""The fill model: walk an order book, or price a fill off the best quote plus slippage."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from bot.domain import Side
from bot.domain.numbers import ceil_to_step, floor_to_step

Level = tuple[Decimal, Decimal]
BPS = Decimal("0.0001")


def crosses(price: Decimal, limit: Decimal | None, side: Side) -> bool:
    """Tell whether a level at `price` is acceptable to a `side` order limited at `limit`."""
    if limit is None:
        return True
    return price <= limit if side is Side.BUY else price >= limit


def walk_book(
    levels: Sequence[Level], quantity: Decimal, side: Side, *, limit: Decimal | None = None
) -> list[Level]:
    """Take up to `quantity` from `levels` (best first), never past `limit`; return the fills."""
    fills: list[Level] = []
    remaining = quantity
    for price, size in levels:
        if remaining <= 0 or not crosses(price, limit, side):
            break
        take = min(remaining, size)
        if take > 0:
            fills.append((price, take))
            remaining -= take
    return fills


def liquidity(levels: Sequence[Level], side: Side, limit: Decimal) -> Decimal:
    """Return the quantity resting at prices that cross `limit`."""
    return sum((size for price, size in levels if crosses(price, limit, side)), Decimal(0))


def slipped_price(best: Decimal, side: Side, slippage_bps: Decimal, tick: Decimal) -> Decimal:
    """Return the best price moved against the taker by `slippage_bps`, on the tick grid."""
    if side is Side.BUY:
        return ceil_to_step(best * (1 + slippage_bps * BPS), tick)
    return floor_to_step(best * (1 - slippage_bps * BPS), tick)


def vwap(fills: Sequence[Level]) -> Decimal | None:
    """Return the volume-weighted average price of `fills` (None when empty)."""
    qty = sum((q for _, q in fills), Decimal(0))
    if qty == 0:
        return None
    return sum((p * q for p, q in fills), Decimal(0)) / qty
