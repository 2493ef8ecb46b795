"""A synthetic order book around one reference price (a bar open), on the instrument's grid."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_UP, Decimal

from bot.domain import Instrument
from bot.domain.numbers import ceil_to_step, floor_to_step

_BPS = Decimal(10_000)

Level = tuple[Decimal, Decimal]


@dataclass(frozen=True, slots=True)
class SyntheticBook:
    """How the replay turns a price into a book.

    Best bid/ask sit `half_spread_bps` below/above the price (rounded outwards to the tick)
    with `top_notional` (quote currency) of base quantity each (of contracts for an inverse
    contract, whose quantities are in contracts of `contract_size` USD). Deeper levels follow every
    `level_step_bps` with `level_notional` each, up to `depth_levels` per side.
    """

    half_spread_bps: Decimal = Decimal("1")
    top_notional: Decimal = Decimal("50000")
    depth_levels: int = 10
    level_step_bps: Decimal = Decimal("2")
    level_notional: Decimal = Decimal("100000")

    def __post_init__(self) -> None:
        if self.half_spread_bps < 0 or self.level_step_bps < 0:
            raise ValueError("half_spread_bps and level_step_bps must be >= 0")
        if self.top_notional <= 0 or self.level_notional <= 0:
            raise ValueError("top_notional and level_notional must be > 0")
        if self.depth_levels < 1:
            raise ValueError("depth_levels must be >= 1")

    def top(self, price: Decimal, instrument: Instrument) -> tuple[Decimal, Decimal, Decimal]:
        """Return (bid, ask, quantity at each) around `price`.

        `_prices` and `_quantity` written out (the replay asks this for every market and
        bar): the same operations, without the calls.
        """
        tick, step = instrument.tick_size, instrument.step_size
        offset = price * self.half_spread_bps / _BPS
        if tick > 0:
            bid = ((price - offset) / tick).to_integral_value(rounding=ROUND_DOWN) * tick
            ask = ((price + offset) / tick).to_integral_value(rounding=ROUND_UP) * tick
        else:
            bid, ask = price - offset, price + offset
        if bid <= 0:
            bid = tick
        if ask <= bid:
            ask = bid + tick
        quantity = self.top_notional / (
            instrument.contract_size if instrument.is_inverse else price
        )
        if step > 0:
            quantity = (quantity / step).to_integral_value(rounding=ROUND_DOWN) * step
        return bid, ask, max(quantity, instrument.min_qty)

    def levels(
        self, price: Decimal, instrument: Instrument, depth: int
    ) -> tuple[tuple[Level, ...], tuple[Level, ...]]:
        """Return (bids best first, asks best first), at most min(depth, depth_levels) each."""
        tick = instrument.tick_size
        n = max(0, min(depth, self.depth_levels))
        bids: list[Level] = []
        asks: list[Level] = []
        deep_qty = _quantity(self.level_notional, price, instrument)
        for k in range(n):
            bps = self.half_spread_bps + self.level_step_bps * k
            bid, ask = self._prices(price, bps, tick)
            qty = _quantity(self.top_notional, price, instrument) if k == 0 else deep_qty
            if bids and bid >= bids[-1][0]:
                bid = bids[-1][0] - tick
            if asks and ask <= asks[-1][0]:
                ask = asks[-1][0] + tick
            if bid > 0:
                bids.append((bid, qty))
            asks.append((ask, qty))
        return tuple(bids), tuple(asks)

    @staticmethod
    def _prices(price: Decimal, bps: Decimal, tick: Decimal) -> tuple[Decimal, Decimal]:
        offset = price * bps / _BPS
        bid = floor_to_step(price - offset, tick)
        ask = ceil_to_step(price + offset, tick)
        if bid <= 0:
            bid = tick
        if ask <= bid:
            ask = bid + tick
        return bid, ask


def _quantity(notional: Decimal, price: Decimal, instrument: Instrument) -> Decimal:
    """Quantity worth about `notional` (base, or contracts of an inverse contract), on the
    step grid and at least the minimum."""
    unit = instrument.contract_size if instrument.is_inverse else price
    return max(floor_to_step(notional / unit, instrument.step_size), instrument.min_qty)
