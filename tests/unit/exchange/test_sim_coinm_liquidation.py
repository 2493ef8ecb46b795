"""Liquidation of the simulated COIN-M account by Binance's inverse maintenance rules.

Numbers: BTC's COIN-M perpetual, 100 USD a contract, 10 contracts shorted at 50 000
(0.02 BTC of notional), maintenance rate 0.4 % (the simulator's default, Binance's BTCUSD
first tier), taker fee 0.05 % (0.00001 BTC on the open).
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from bot.domain import MarginMode, ResizeHedge, Side
from bot.exchange.sim_coinm import to_coin
from bot.exchange.sim_coinm_liquidation import inverse_liquidation_price
from tests.unit.exchange.test_sim_coinm import PERP_INV, make_sim, order
from tests.unit.test_risk import gate, hedge, view

D = Decimal
PERP = PERP_INV.symbol
FEE_OPEN = D("0.00001")  # 10 × 100 / 50 000 × 0.05 %


def test_the_formula_is_binances_coinm_liquidation_price() -> None:
    # LP = (|s| × MMR + s) / ((WB + cum) / CS + s / E), s signed contracts
    short = [(D(-10), D(50000))]
    long = [(D(10), D(50000))]

    assert inverse_liquidation_price(
        short, contract_size=D(100), collateral=D("0.01"), rate=D("0.004")
    ) == D(99600)  # (−10 + 0.04) / (0.0001 − 0.0002)
    assert inverse_liquidation_price(
        long, contract_size=D(100), collateral=D("0.01"), rate=D("0.004")
    ) == D("10.04") / D("0.0003")  # ≈ 33 467: a 2x long falls a third
    with_cum = inverse_liquidation_price(  # a maintenance amount (cum) adds to the collateral
        short, contract_size=D(100), collateral=D("0.01"), rate=D("0.004"), cum=D("0.0001")
    )
    assert with_cum == D("-9.96") / (D("0.0101") / 100 - D("0.0002"))  # ≈ 100 606
    # a short backed by at least its own notional in the coin is never liquidated
    assert (
        inverse_liquidation_price(
            short, contract_size=D(100), collateral=D("0.02"), rate=D("0.004")
        )
        is None
    )


def test_an_isolated_2x_short_shows_its_liquidation_price_and_is_liquidated_past_it() -> None:
    sim = make_sim()
    sim.set_margin_mode(PERP, MarginMode.ISOLATED)
    sim.set_leverage(PERP, 2)
    sim.create_order(order(PERP, Side.SELL, "10", "open-1"))  # isolated margin 0.01 BTC
    sim.set_mark(PERP, D(50000))

    (pos,) = sim.coinm_positions()
    assert pos.liquidation_price == D(99600)
    assert pos.liquidation_distance() == D("0.992")  # what the risk gate compares

    sim.set_mark(PERP, D(99500))
    assert len(sim.coinm_positions()) == 1  # just short of it: held

    sim.set_mark(PERP, D(99700))

    assert sim.coinm_positions() == []
    # The isolated margin is lost, nothing more: 1 BTC less the open's fee and 0.01 BTC.
    assert sim.coinm_account("BTC").wallet_balance == D(1) - FEE_OPEN - D("0.01")
    (fill,) = [f for f in sim.my_trades(PERP) if (f.client_order_id or "").startswith("autoclose-")]
    realized = to_coin(D(-1000) * (1 / D(50000) - 1 / D(99700)))
    assert (fill.side, fill.quantity, fill.price) == (Side.BUY, D(10), D(99700))
    assert (fill.realized_pnl, fill.fee) == (realized, D("0.01") + realized)  # to the fund
    assert (fill.client_order_id or "").startswith("autoclose-BTCUSD_PERP-")


def test_a_cross_short_backed_by_its_own_coin_is_never_liquidated() -> None:
    sim = make_sim(coin="0.0204")  # a hedge's coin: 1 020 USD at 50 000 for 1 000 USD short
    sim.create_order(order(PERP, Side.SELL, "10", "open-1"))

    sim.set_mark(PERP, D(500000))  # ten times the entry

    (pos,) = sim.coinm_positions()
    assert pos.liquidation_price is None
    assert sim.coinm_account("BTC").margin_balance > sim.coinm_account("BTC").maintenance_margin


def test_a_cross_short_with_less_coin_than_its_notional_is_liquidated_at_the_formula() -> None:
    sim = make_sim(coin="0.016")
    sim.create_order(order(PERP, Side.SELL, "10", "open-1"))
    wallet = D("0.016") - FEE_OPEN
    expected = (D(-10) + 10 * D("0.004")) / (wallet / 100 - D(10) / D(50000))
    sim.set_mark(PERP, D(50000))

    (pos,) = sim.coinm_positions()
    assert pos.liquidation_price == expected  # ≈ 248 379
    assert D(248379) < expected < D(248380)

    sim.set_mark(PERP, D(248000))
    assert len(sim.coinm_positions()) == 1

    sim.set_mark(PERP, D(248500))

    assert sim.coinm_positions() == []
    assert sim.coinm_account("BTC").wallet_balance == 0  # the cross wallet is lost


def test_the_risk_gate_sees_the_real_distance_of_a_simulated_coinm_short() -> None:
    sim = make_sim()
    sim.set_margin_mode(PERP, MarginMode.ISOLATED)
    sim.set_leverage(PERP, 5)
    sim.create_order(order(PERP, Side.SELL, "10", "open-1"))  # isolated margin 0.004 BTC
    sim.set_mark(PERP, D(50000))
    (pos,) = sim.coinm_positions()
    assert pos.liquidation_price == D(62250)  # 50 000 × 0.996 / (1 − 1/5)
    coinm_hedge = replace(hedge(1), perp_symbol=PERP, metrics={"contract_size": "100"})
    g = gate(min_liquidation_distance=D("0.25"))

    (action,) = g.protect(view(coinm_hedge, positions={PERP: pos}))

    assert isinstance(action, ResizeHedge)  # the executor shrinks it in whole contracts
    assert "distance 0.2450" in action.reason
