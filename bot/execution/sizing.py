"""One base quantity valid on both markets, checked against filters, balance and margin."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from bot.domain import Leg, OrderPurpose, Pair, Side
from bot.domain.numbers import ceil_to_step, coarser_step, floor_to_step


class SizingError(ValueError):
    """The hedge cannot be sized: the message names the leg and the rule."""


@dataclass(frozen=True, slots=True)
class HedgeSize:
    """`quantity` is the short; `spot_order_quantity` is grossed up for a base-asset fee."""

    quantity: Decimal
    spot_order_quantity: Decimal
    step: Decimal
    spot_price: Decimal
    perp_price: Decimal

    @property
    def notional(self) -> Decimal:
        return self.quantity * self.spot_price


def common_step(pair: Pair) -> Decimal:
    """Return the step valid on both legs: the coarser of the two (market) step sizes."""
    steps = [pair.spot.step_size, pair.perp.step_size]
    for s in (pair.spot.market_step_size, pair.perp.market_step_size):
        if s is not None and s > 0:
            steps.append(s)
    step = steps[0]
    for s in steps[1:]:
        step = coarser_step(step, s)
    return step


def spot_quantity_for(net: Decimal, pair: Pair, spot_fee: Decimal) -> Decimal:
    """Return the spot buy quantity whose fee (paid in the base asset) leaves `net`."""
    return ceil_to_step(net / (1 - spot_fee), pair.spot.step_size)


@dataclass(frozen=True, slots=True)
class LegCorrection:
    """The one order that brings a hedge's legs back together."""

    leg: Leg
    side: Side
    quantity: Decimal
    purpose: OrderPurpose


def leg_correction(
    diff: Decimal, pair: Pair, price: Decimal, spot_fee: Decimal
) -> LegCorrection | None:
    """Return the order that narrows `diff` = spot − short (base units), None when none can.

    Spot more than the short: sell the excess spot, else add it to the short; less: buy the
    missing spot, else cut the short (reduce-only, exempt from min notional). None when the
    order either market would accept is below its min quantity or, at `price`, its min
    notional: such a difference cannot be traded away and counts as within tolerance.
    """
    if diff > 0:
        trim = floor_to_step(diff, pair.spot.step_size)
        if _tradable(trim, price, pair.spot.min_qty, pair.spot.min_notional):
            return LegCorrection(Leg.SPOT, Side.SELL, trim, OrderPurpose.TRIM)
        top = floor_to_step(diff, pair.perp.step_size)
        if _tradable(top, price, pair.perp.min_qty, pair.perp.min_notional):
            return LegCorrection(Leg.PERP, Side.SELL, top, OrderPurpose.TOP_UP)
        return None
    if diff < 0:
        buy = spot_quantity_for(-diff, pair, spot_fee)
        if _tradable(buy, price, pair.spot.min_qty, pair.spot.min_notional):
            return LegCorrection(Leg.SPOT, Side.BUY, buy, OrderPurpose.TOP_UP)
        cut = floor_to_step(-diff, pair.perp.step_size)
        if cut > 0 and cut >= pair.perp.min_qty:
            return LegCorrection(Leg.PERP, Side.BUY, cut, OrderPurpose.TRIM)
    return None


def _tradable(qty: Decimal, price: Decimal, min_qty: Decimal, min_notional: Decimal) -> bool:
    return qty > 0 and qty >= min_qty and (price <= 0 or qty * price >= min_notional)


def size_hedge(
    pair: Pair,
    notional: Decimal,
    *,
    spot_ask: Decimal,
    perp_bid: Decimal,
    spot_fee: Decimal,
    leverage: int,
    spot_free_quote: Decimal,
    futures_available: Decimal,
    balance_buffer: Decimal,
    margin_buffer: Decimal,
    price_allowance: Decimal = Decimal("0.002"),
) -> HedgeSize:
    """Size a hedge of about `notional` quote; raise SizingError naming what fails.

    The quantity is rounded down to the coarser step; min quantity and min notional are
    checked on both legs; the spot buy must fit the free quote balance less
    `balance_buffer` (allowing `price_allowance` of slippage) and the short's initial
    margin at `leverage`, plus `margin_buffer`, must fit the futures available balance.
    """
    if spot_ask <= 0 or perp_bid <= 0:
        raise SizingError(f"{pair.key}: no valid price (spot ask {spot_ask}, perp bid {perp_bid})")
    step = common_step(pair)
    quantity = floor_to_step(notional / spot_ask, step)
    spot, perp = pair.spot, pair.perp
    if quantity <= 0:
        raise SizingError(f"{pair.key}: notional {notional} buys less than one common step {step}")
    for leg, inst in (("spot", spot), ("perp", perp)):
        if quantity < inst.min_qty:
            raise SizingError(
                f"{pair.key}: quantity {quantity} below {leg} min quantity {inst.min_qty}"
            )
        cap = inst.market_max_qty or inst.max_qty
        if cap is not None and quantity > cap:
            raise SizingError(f"{pair.key}: quantity {quantity} above {leg} max quantity {cap}")
    for leg, inst, price in (("spot", spot, spot_ask), ("perp", perp, perp_bid)):
        if quantity * price < inst.min_notional:
            raise SizingError(
                f"{pair.key}: {leg} notional {quantity * price:.2f} below {leg} min notional "
                f"{inst.min_notional}"
            )
    spot_qty = spot_quantity_for(quantity, pair, spot_fee)
    cost = spot_qty * spot_ask * (1 + price_allowance)
    usable = spot_free_quote * (1 - balance_buffer)
    if cost > usable:
        raise SizingError(
            f"{pair.key}: spot buy needs {cost:.2f} {spot.quote}, only {usable:.2f} usable "
            f"(free {spot_free_quote}, balance_buffer {balance_buffer})"
        )
    margin = quantity * perp_bid / leverage * (1 + margin_buffer)
    if margin > futures_available:
        raise SizingError(
            f"{pair.key}: short needs {margin:.2f} {perp.settle or perp.quote} margin at "
            f"{leverage}x with margin_buffer {margin_buffer}, only {futures_available:.2f} "
            "available"
        )
    return HedgeSize(quantity, spot_qty, step, spot_ask, perp_bid)
