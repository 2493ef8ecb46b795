"""The passive baseline that pays for its rebalancing: resizes at the band, taker fees."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from bot.backtest.passive import resize_costs
from bot.domain.params import FeeParams
from tests.kit import T0

D = Decimal
FEES = FeeParams()  # spot taker 0.1%, futures taker 0.05%


def _marks(*prices: str) -> list[tuple[datetime, Decimal]]:
    return [(T0 + timedelta(hours=8 * i), D(p)) for i, p in enumerate(prices)]


def test_a_drift_inside_the_band_costs_nothing() -> None:
    at, paid = resize_costs(_marks("110", "90", "119"), D(100), D(1000), D("0.2"), FEES)
    assert at == () and paid == ()


def test_each_resize_pays_both_legs_taker_fees_on_the_difference_and_resets_the_quantity() -> None:
    marks = _marks("125", "150", "100")  # +25%: resize; then +20% of the new quantity: none
    at, paid = resize_costs(marks, D(100), D(1000), D("0.2"), FEES)
    # At 125 the short is worth 1250: 250 traded on both legs at 0.15%. The quantity is then
    # 8, worth 1200 at 150 (inside the band) and 800 at 100 (-20%: inside, not beyond).
    assert at == (marks[0][0],)
    assert paid == (D(250) * D("0.0015"),)
    at, paid = resize_costs(_marks("125", "99"), D(100), D(1000), D("0.2"), FEES)
    assert paid == (D("0.375"), D("0.375") + D(208) * D("0.0015"))  # 8 x 99 = 792: 208 grown
