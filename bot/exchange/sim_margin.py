"""USDⓈ-M margin arithmetic: unrealised PnL, margins and Binance's liquidation price.

Single-asset mode, first maintenance tier only (maintenance amount 0), so Binance's formula
reduces to: liquidation happens at the mark P where
collateral + Σ size·(P − entry) = mmr · P · Σ |size|, over the legs of one symbol
(sizes signed, negative for shorts).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

Leg = tuple[Decimal, Decimal]  # (signed size, entry price)


def unrealized_pnl(size: Decimal, entry: Decimal, mark: Decimal) -> Decimal:
    """Return the PnL of a signed position at `mark`."""
    return size * (mark - entry)


def maintenance_margin(size: Decimal, mark: Decimal, rate: Decimal) -> Decimal:
    """Return the maintenance margin of a position at `mark`."""
    return abs(size) * mark * rate


def initial_margin(size: Decimal, price: Decimal, leverage: int) -> Decimal:
    """Return the initial margin of `size` at `price` and `leverage`."""
    return abs(size) * price / leverage


def liquidation_price(legs: Sequence[Leg], *, collateral: Decimal, rate: Decimal) -> Decimal | None:
    """Return the mark at which `legs` of one symbol are liquidated, None if no such price.

    `collateral` is what backs the legs: the isolated margin, or in cross mode the cross
    wallet plus the other symbols' unrealised PnL minus their maintenance margin.
    """
    numerator = sum((size * entry for size, entry in legs), Decimal(0)) - collateral
    denominator = sum((size - rate * abs(size) for size, _ in legs), Decimal(0))
    if denominator == 0:
        return None
    price = numerator / denominator
    return price if price > 0 else None
