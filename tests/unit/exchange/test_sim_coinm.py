"""The simulated COIN-M account: contracts, coin margin, inverse P&L, funding and fees in coin."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from bot.clock import SimulatedClock
from bot.domain import OrderRequest, OrderType, PositionMode, PositionSide, Side
from bot.domain.params import FeeParams
from bot.errors import InsufficientFunds, OrderRejected, PositionSideMismatch, ReduceOnlyRejected
from bot.exchange.sim_coinm import to_coin
from bot.exchange.simulator import SimulatedExchange
from tests import kit

D = Decimal
SPOT = "BTC/USDT"
EXPIRY = kit.T0 + timedelta(days=90)
INV = kit.coinm("BTC", expiry=EXPIRY)
PERP_INV = kit.coinm("BTC")
FEES = FeeParams(
    spot_taker=D("0.001"), spot_maker=D("0.001"), futures_taker=D("0.0005"), futures_maker=D(0)
)


def make_sim(
    mode: PositionMode = PositionMode.ONE_WAY, coin: str = "1", clock: SimulatedClock | None = None
) -> SimulatedExchange:
    sim = SimulatedExchange(
        {SPOT: kit.spot(), INV.symbol: INV, PERP_INV.symbol: PERP_INV},
        clock=clock or SimulatedClock(kit.T0),
        fees=FEES,
        coinm_position_mode=mode,
    )
    sim.deposit("spot", "USDT", D("100000"))
    if D(coin) > 0:
        sim.deposit("coinm", "BTC", D(coin))
    sim.set_book(kit.book(SPOT, [("49999", "5")], [("50000", "5")]))
    sim.set_book(kit.book(INV.symbol, [("51000", "5000")], [("51000.1", "5000")]))
    sim.set_book(kit.book(PERP_INV.symbol, [("50000", "5000")], [("50000.1", "5000")]))
    return sim


def order(
    symbol: str,
    side: Side,
    qty: str,
    cid: str,
    *,
    reduce_only: bool = False,
    position_side: PositionSide | None = None,
) -> OrderRequest:
    return OrderRequest(
        symbol,
        side,
        OrderType.MARKET,
        D(qty),
        cid,
        reduce_only=reduce_only,
        position_side=position_side,
    )


def test_short_then_buy_back_realises_inverse_pnl_and_pays_fees_in_coin() -> None:
    sim = make_sim()
    sim.create_order(order(INV.symbol, Side.SELL, "10", "open-1"))
    fee_open = to_coin(D(10) * 100 / D("51000") * D("0.0005"))
    assert sim.coinm_account("BTC").wallet_balance == D(1) - fee_open
    (pos,) = sim.coinm_positions()
    assert (pos.size, pos.is_short, pos.entry_price, pos.notional) == (
        D(10),
        True,
        D("51000"),
        D(1000),
    )
    assert sim.positions() == []  # COIN-M positions are not USDⓈ-M ones

    sim.set_book(kit.book(INV.symbol, [("49999.9", "5000")], [("50000", "5000")]))
    close = sim.create_order(order(INV.symbol, Side.BUY, "10", "close-1", reduce_only=True))

    pnl = to_coin(D(10) * 100 * (1 / D("50000") - 1 / D("51000")))  # a short gains as it falls
    fee_close = to_coin(D(10) * 100 / D("50000") * D("0.0005"))
    assert sim.coinm_account("BTC").wallet_balance == D(1) - fee_open + pnl - fee_close
    assert sim.coinm_positions() == []
    (fill,) = [
        f for f in sim.my_trades(INV.symbol) if f.exchange_order_id == close.exchange_order_id
    ]
    assert (fill.fee_asset, fill.realized_pnl, fill.fee) == ("BTC", pnl, fee_close)


def test_entry_of_two_fills_is_the_harmonic_mean() -> None:
    sim = make_sim()
    sim.create_order(order(INV.symbol, Side.SELL, "10", "a"))
    sim.set_book(kit.book(INV.symbol, [("49000", "5000")], [("49000.1", "5000")]))
    sim.create_order(order(INV.symbol, Side.SELL, "10", "b"))
    (pos,) = sim.coinm_positions()
    assert pos.entry_price == D(20) / (D(10) / D(51000) + D(10) / D(49000))


def test_margin_insufficient_without_coin_in_the_coinm_wallet() -> None:
    sim = make_sim(coin="0")
    with pytest.raises(InsufficientFunds) as exc:
        sim.create_order(order(INV.symbol, Side.SELL, "10", "x"))
    assert exc.value.code == -2019
    sim.create_order(order(SPOT, Side.BUY, "0.02", "buy"))
    sim.transfer("BTC", D("0.019"), from_wallet="spot", to_wallet="coinm")
    sim.create_order(order(INV.symbol, Side.SELL, "9", "y"))  # 900 USD on 0.019 BTC at 20x
    assert sim.coinm_positions()[0].size == 9


def test_a_fraction_of_a_contract_is_refused_with_the_precision_code() -> None:
    sim = make_sim()
    with pytest.raises(OrderRejected) as exc:
        sim.create_order(order(INV.symbol, Side.SELL, "1.5", "frac"))
    assert exc.value.code == -1111


def test_one_way_mode_rules() -> None:
    sim = make_sim(PositionMode.ONE_WAY)
    with pytest.raises(PositionSideMismatch):
        sim.create_order(order(INV.symbol, Side.SELL, "1", "a", position_side=PositionSide.SHORT))
    with pytest.raises(ReduceOnlyRejected) as exc:
        sim.create_order(order(INV.symbol, Side.BUY, "1", "b", reduce_only=True))
    assert exc.value.code == -2022


def test_hedge_mode_rules_are_the_coinm_setting_alone() -> None:
    sim = make_sim(PositionMode.HEDGE)
    assert sim.position_mode is PositionMode.ONE_WAY  # USDⓈ-M keeps its own mode
    with pytest.raises(PositionSideMismatch):
        sim.create_order(order(INV.symbol, Side.SELL, "1", "a"))
    sim.create_order(order(INV.symbol, Side.SELL, "2", "b", position_side=PositionSide.SHORT))
    with pytest.raises(ReduceOnlyRejected) as exc:
        sim.create_order(
            order(
                INV.symbol, Side.BUY, "1", "c", reduce_only=True, position_side=PositionSide.SHORT
            )
        )
    assert exc.value.code == -1106
    with pytest.raises(ReduceOnlyRejected):
        sim.create_order(order(INV.symbol, Side.BUY, "3", "d", position_side=PositionSide.SHORT))
    sim.create_order(order(INV.symbol, Side.BUY, "2", "e", position_side=PositionSide.SHORT))
    assert sim.coinm_positions() == []
    with pytest.raises(OrderRejected) as mode_exc:
        sim.set_coinm_position_mode(PositionMode.HEDGE)
    assert mode_exc.value.code == -4059


def test_coin_cannot_leave_the_coinm_wallet_while_it_margins_a_short() -> None:
    sim = make_sim(coin="0.01")
    sim.create_order(order(INV.symbol, Side.SELL, "10", "a"))  # ~0.0196 BTC / 20x margin
    with pytest.raises(InsufficientFunds) as exc:
        sim.transfer("BTC", D("0.01"), from_wallet="coinm", to_wallet="spot")
    assert exc.value.code == -5013
    sim.transfer("BTC", D("0.008"), from_wallet="coinm", to_wallet="spot")


def test_funding_on_a_coinm_perpetual_is_paid_in_coin() -> None:
    clock = SimulatedClock(kit.T0)
    sim = make_sim(clock=clock)
    sim.create_order(order(PERP_INV.symbol, Side.SELL, "10", "a"))
    before = sim.coinm_account("BTC").wallet_balance
    when = kit.T0 + timedelta(hours=8)
    clock.advance(timedelta(hours=8))
    payment = sim.settle_funding(PERP_INV.symbol, when, D("0.0001"), D("50000"))
    assert payment is not None
    assert (payment.asset, payment.amount) == ("BTC", D("0.00000200"))  # 10 × 100 / 50 000 × 1 bp
    assert sim.coinm_account("BTC").wallet_balance == before + payment.amount
    assert sim.settle_funding(PERP_INV.symbol, when, D("0.0001"), D("50000")) is None


def test_delivery_settles_the_short_in_coin_and_the_state_round_trips() -> None:
    sim = make_sim()
    sim.create_order(order(INV.symbol, Side.SELL, "10", "a"))
    wallet = sim.coinm_account("BTC").wallet_balance
    state = sim.to_state()
    copy = make_sim(coin="0")
    copy.load_state(state)
    assert copy.coinm_positions() == sim.coinm_positions()
    realized = copy.deliver(INV.symbol, D("50000"))
    assert realized == to_coin(D(10) * 100 * (1 / D("50000") - 1 / D("51000")))
    assert copy.coinm_account("BTC").wallet_balance == wallet + realized
    assert copy.coinm_positions() == []
