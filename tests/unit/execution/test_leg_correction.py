"""`leg_correction`: the one order that narrows a hedge's leg difference, or none."""

from __future__ import annotations

from decimal import Decimal

from bot.domain import Leg, OrderPurpose, Side
from bot.execution.sizing import leg_correction
from tests import kit

D = Decimal
XRP = kit.pair("XRP")  # spot step 0.1, perp step 1, min notional 5 USDT on both


def test_excess_spot_is_sold_when_the_market_accepts_it() -> None:
    fix = leg_correction(D("30"), XRP, D("0.5"), D(0))
    assert fix is not None
    assert (fix.leg, fix.side, fix.quantity, fix.purpose) == (
        Leg.SPOT,
        Side.SELL,
        D("30"),
        OrderPurpose.TRIM,
    )


def test_a_difference_below_every_min_notional_needs_no_order() -> None:
    assert leg_correction(D("1.5"), XRP, D("0.5"), D(0)) is None
    assert leg_correction(D(0), XRP, D("0.5"), D(0)) is None


def test_missing_spot_below_min_notional_falls_back_to_a_reduce_only_cut() -> None:
    fix = leg_correction(D("-1.5"), XRP, D("0.5"), D("0.001"))
    assert fix is not None
    assert (fix.leg, fix.side, fix.quantity) == (Leg.PERP, Side.BUY, D("1"))


def test_missing_spot_worth_an_order_is_bought_grossed_up_for_the_fee() -> None:
    fix = leg_correction(D("-20"), XRP, D("0.5"), D("0.001"))
    assert fix is not None
    assert (fix.leg, fix.side, fix.quantity) == (Leg.SPOT, Side.BUY, D("20.1"))
