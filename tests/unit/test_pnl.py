"""P&L maths on hand-computed hedges."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

from bot.domain import Fill, Hedge, HedgeState, Side
from bot.pnl import fee_usdt, hedge_pnl, totals
from tests.kit import T0

D = Decimal


def fill(
    tid: str, symbol: str, side: Side, price: str, qty: str, fee: str, asset: str, hours: float = 0
) -> Fill:
    return Fill(
        tid, symbol, "o" + tid, side, D(price), D(qty), D(fee), asset, T0 + timedelta(hours=hours)
    )


def closed_hedge() -> Hedge:
    return Hedge(
        id=1,
        uid="u",
        pair="BTC/USDT",
        spot_symbol="BTC/USDT",
        perp_symbol="BTC/USDT:USDT",
        state=HedgeState.CLOSED,
        target_quantity=D("0.02"),
        spot_quantity=D(0),
        perp_quantity=D(0),
        target_notional=D(1000),
        created_at=T0,
        updated_at=T0,
        opened_at=T0,
        closed_at=T0 + timedelta(days=10),
    )


FILLS = [
    # buy 0.02002 BTC at 50000, fee 0.00002002 BTC; short 0.02 at 50010, fee 0.5001 USDT
    fill("1", "BTC/USDT", Side.BUY, "50000", "0.02002", "0.00002002", "BTC"),
    fill("2", "BTC/USDT:USDT", Side.SELL, "50010", "0.02", "0.5001", "USDT"),
    # 10 days later: sell 0.02 BTC at 52000 (fee 1.04 USDT), buy back at 52005 (fee 0.52005)
    fill("3", "BTC/USDT", Side.SELL, "52000", "0.02", "1.04", "USDT", 240),
    fill("4", "BTC/USDT:USDT", Side.BUY, "52005", "0.02", "0.52005", "USDT", 240),
]


def test_closed_hedge_pnl_matches_hand_computation() -> None:
    pnl = hedge_pnl(closed_hedge(), FILLS, D("3.00"), now=T0 + timedelta(days=30), leverage=2)

    # spot: -1001 + 1040 + 0.00002 held (the fee units' remainder + dust) × 52000 = 1.04
    assert pnl.spot_pnl == D("-1001.00") + D("1040.00") + D("0.00002") * D("52000")
    assert pnl.perp_pnl == D("1000.20") - D("1040.10")
    assert pnl.fees == D("0.00002002") * D("50000") + D("0.5001") + D("1.04") + D("0.52005")
    assert pnl.net == pnl.funding + pnl.basis_pnl - pnl.fees
    assert pnl.capital == D("1001.00") + D("1000.20") / 2
    assert pnl.holding_hours == 240
    assert pnl.apr is not None
    assert abs(pnl.apr - pnl.net / pnl.capital * D(365) / D(10)) < D("1e-20")


def test_open_hedge_is_valued_at_current_prices() -> None:
    open_hedge = replace(
        closed_hedge(),
        id=2,
        state=HedgeState.OPEN,
        spot_quantity=D("0.02"),
        perp_quantity=D("0.02"),
        closed_at=None,
    )

    pnl = hedge_pnl(
        open_hedge,
        FILLS[:2],
        D(0),
        now=T0 + timedelta(hours=1),
        spot_price=D("49000"),
        perp_price=D("49000"),
    )

    assert pnl.spot_pnl == D("0.02002") * (D("49000") - D("50000"))
    assert pnl.perp_pnl == D("0.02") * (D("50010") - D("49000"))


def test_fees_in_unknown_assets_count_zero_and_totals_add_up() -> None:
    assert fee_usdt(fill("9", "BTC/USDT", Side.BUY, "1", "1", "0.01", "BNB")) == 0
    a = hedge_pnl(closed_hedge(), FILLS, D("3"), now=T0)

    total = totals([a, a])

    assert total.net == 2 * a.net and total.hedges == 2
