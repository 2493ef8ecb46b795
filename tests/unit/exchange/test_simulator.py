"""SimulatedExchange: Binance's matching, fees, filters, margin, liquidation and funding rules."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest

from bot.clock import SimulatedClock
from bot.domain import (
    MarginMode,
    OrderRequest,
    OrderStatus,
    OrderType,
    PositionMode,
    PositionSide,
    Side,
)
from bot.domain.params import FeeParams
from bot.errors import (
    InsufficientFunds,
    OrderNotFound,
    OrderRejected,
    PositionSideMismatch,
    ReduceOnlyRejected,
)
from bot.exchange.simulator import SimulatedExchange
from tests import kit

D = Decimal
SPOT = "BTC/USDT"
PERP = "BTC/USDT:USDT"
NO_FEES = FeeParams(spot_taker=D(0), spot_maker=D(0), futures_taker=D(0), futures_maker=D(0))


def make_sim(
    *,
    clock: SimulatedClock | None = None,
    fees: FeeParams | None = None,
    mode: PositionMode = PositionMode.ONE_WAY,
    spot_usdt: str = "10000",
    futures_usdt: str = "10000",
) -> SimulatedExchange:
    sim = SimulatedExchange(
        {SPOT: kit.spot(), PERP: kit.perp()},
        clock=clock or SimulatedClock(kit.T0),
        fees=fees,
        position_mode=mode,
    )
    sim.deposit("spot", "USDT", D(spot_usdt))
    sim.deposit("futures", "USDT", D(futures_usdt))
    sim.set_book(kit.book(SPOT, [("49999", "1")], [("50000", "1")]))
    sim.set_book(kit.book(PERP, [("50000", "5")], [("50000.1", "5")]))
    sim.set_mark(PERP, D("50000"))
    return sim


def market(
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


def limit(symbol: str, side: Side, qty: str, price: str, cid: str) -> OrderRequest:
    return OrderRequest(symbol, side, OrderType.LIMIT, D(qty), cid, price=D(price))


# --- market orders ---------------------------------------------------------------------


def test_market_buy_walking_three_levels_gives_exact_vwap_and_base_fee() -> None:
    sim = make_sim()
    sim.set_book(
        kit.book(SPOT, [("49999", "1")], [("50000", "0.004"), ("50001", "0.004"), ("50002", "1")])
    )

    order = sim.create_order(market(SPOT, Side.BUY, "0.01", "b1"))

    # 0.004 x 50000 + 0.004 x 50001 + 0.002 x 50002 = 500.008 for 0.01 BTC
    assert order.status is OrderStatus.FILLED
    assert order.filled == D("0.01")
    assert order.average_price == D("50000.8")
    assert (order.fee, order.fee_asset) == (D("0.00001"), "BTC")
    assert [(f.price, f.quantity) for f in sim.my_trades(SPOT)] == [
        (D("50000"), D("0.004")),
        (D("50001"), D("0.004")),
        (D("50002"), D("0.002")),
    ]
    balances = sim.spot_balances()
    assert balances["BTC"].free == D("0.00999")
    assert balances["USDT"].free == D("9499.992")


def test_market_sell_pays_the_fee_in_quote() -> None:
    sim = make_sim()
    sim.create_order(market(SPOT, Side.BUY, "0.01", "b1"))

    order = sim.create_order(market(SPOT, Side.SELL, "0.00999", "s1"))

    assert (order.fee, order.fee_asset) == (D("0.49949001"), "USDT")  # 0.00999 x 49999 x 0.1%
    assert sim.spot_balances()["BTC"].free == 0


def test_market_order_running_out_of_depth_expires_partially_filled() -> None:
    sim = make_sim()
    sim.set_book(kit.book(SPOT, [("49999", "1")], [("50000", "0.003"), ("50001", "0.002")]))

    order = sim.create_order(market(SPOT, Side.BUY, "0.01", "b1"))

    assert order.status is OrderStatus.EXPIRED
    assert order.filled == D("0.005")
    assert order.filled < order.quantity


def test_market_order_walks_no_deeper_than_depth_levels() -> None:
    sim = SimulatedExchange({SPOT: kit.spot()}, clock=SimulatedClock(kit.T0), depth_levels=2)
    sim.deposit("spot", "USDT", D("10000"))
    sim.set_book(
        kit.book(SPOT, [("49999", "1")], [("50000", "0.001"), ("50001", "0.001"), ("50002", "1")])
    )

    order = sim.create_order(market(SPOT, Side.BUY, "0.01", "b1"))

    assert (order.status, order.filled) == (OrderStatus.EXPIRED, D("0.002"))


def test_set_fill_ratio_fills_only_that_share_until_reset() -> None:
    sim = make_sim()
    sim.set_fill_ratio(PERP, D("0.5"))

    partial = sim.create_order(market(PERP, Side.SELL, "0.010", "p1"))
    sim.set_fill_ratio(PERP, None)
    full = sim.create_order(market(PERP, Side.SELL, "0.010", "p2"))

    assert (partial.status, partial.filled) == (OrderStatus.EXPIRED, D("0.005"))
    assert (full.status, full.filled) == (OrderStatus.FILLED, D("0.010"))
    assert sim.positions()[0].size == D("0.015")


def test_market_order_without_depth_fills_at_quote_plus_slippage() -> None:
    sim = SimulatedExchange({SPOT: kit.spot()}, clock=SimulatedClock(kit.T0), slippage_bps=D(5))
    sim.deposit("spot", "USDT", D("10000"))
    sim.set_quote(kit.quote(SPOT, "49999", "50000"))

    order = sim.create_order(market(SPOT, Side.BUY, "0.01", "b1"))

    assert order.average_price == D("50025")  # 50000 x (1 + 5 bps)


# --- filters and rejections ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_", "code", "reason"),
    [
        (market(SPOT, Side.BUY, "0.000015", "f1"), -1013, "Filter failure: LOT_SIZE"),
        (market(SPOT, Side.BUY, "0.00001", "f2"), -1013, "Filter failure: NOTIONAL"),
        (limit(SPOT, Side.BUY, "0.01", "50000.001", "f3"), -1013, "Filter failure: PRICE_FILTER"),
        (
            market(PERP, Side.SELL, "0.001", "f4"),
            -4164,
            "Order's notional must be no smaller than 100 (unless you choose reduce only).",
        ),
        (
            market(PERP, Side.SELL, "0.0015", "f5"),
            -1111,
            "Precision is over the maximum defined for this asset.",
        ),
        (
            limit(PERP, Side.SELL, "0.01", "50000.05", "f6"),
            -1111,
            "Precision is over the maximum defined for this asset.",
        ),
        (market(PERP, Side.SELL, "0", "f7"), -4003, "Quantity less than or equal to zero."),
        (market("DOGE/USDT", Side.BUY, "1", "f8"), -1121, "Invalid symbol."),
        (market(PERP, Side.SELL, "0.01", "bad id!"), -4015, "Client order id is not valid."),
    ],
)
def test_create_order_breaking_a_filter_is_rejected_with_binance_code(
    request_: OrderRequest, code: int, reason: str
) -> None:
    sim = make_sim()

    with pytest.raises(OrderRejected) as caught:
        sim.create_order(request_)

    assert (caught.value.code, caught.value.reason) == (code, reason)
    assert sim.open_orders() == [] and sim.my_trades(SPOT) == [] and sim.positions() == []


def test_reduce_only_order_below_min_notional_is_accepted() -> None:
    sim = make_sim()
    sim.create_order(market(PERP, Side.SELL, "0.010", "p1"))

    order = sim.create_order(market(PERP, Side.BUY, "0.001", "p2", reduce_only=True))

    assert order.status is OrderStatus.FILLED
    assert sim.positions()[0].size == D("0.009")


def test_spot_buy_beyond_the_quote_balance_is_rejected_2010() -> None:
    sim = make_sim(spot_usdt="100")

    with pytest.raises(InsufficientFunds) as caught:
        sim.create_order(market(SPOT, Side.BUY, "0.01", "b1"))

    assert caught.value.code == -2010
    assert caught.value.reason == "Account has insufficient balance for requested action."
    assert sim.spot_balances()["USDT"].free == D("100")


def test_futures_order_beyond_available_margin_is_rejected_2019() -> None:
    sim = make_sim(futures_usdt="100")
    sim.set_leverage(PERP, 2)

    with pytest.raises(InsufficientFunds) as caught:
        sim.create_order(market(PERP, Side.SELL, "0.010", "p1"))  # needs 500 / 2 = 250

    assert (caught.value.code, caught.value.reason) == (-2019, "Margin is insufficient.")
    assert sim.positions() == []


@pytest.mark.parametrize(("symbol", "code"), [(SPOT, -2010), (PERP, -4116)])
def test_duplicate_client_order_id_is_rejected(symbol: str, code: int) -> None:
    sim = make_sim()
    sim.create_order(market(symbol, Side.BUY, "0.01", "same"))

    with pytest.raises(OrderRejected) as caught:
        sim.create_order(market(symbol, Side.BUY, "0.01", "same"))

    assert caught.value.code == code
    assert len(sim.my_trades(symbol)) == 1


# --- position modes ------------------------------------------------------------------------


def test_one_way_reduce_only_that_would_increase_is_rejected_2022() -> None:
    sim = make_sim()
    sim.create_order(market(PERP, Side.SELL, "0.010", "p1"))

    with pytest.raises(ReduceOnlyRejected) as caught:
        sim.create_order(market(PERP, Side.SELL, "0.010", "p2", reduce_only=True))

    assert (caught.value.code, caught.value.reason) == (-2022, "ReduceOnly Order is rejected.")
    assert sim.positions()[0].size == D("0.010")


def test_one_way_reduce_only_larger_than_the_position_is_rejected_2022() -> None:
    sim = make_sim()
    sim.create_order(market(PERP, Side.SELL, "0.010", "p1"))

    with pytest.raises(ReduceOnlyRejected):
        sim.create_order(market(PERP, Side.BUY, "0.020", "p2", reduce_only=True))


def test_one_way_order_with_long_position_side_is_rejected_4061() -> None:
    sim = make_sim()

    with pytest.raises(PositionSideMismatch) as caught:
        sim.create_order(market(PERP, Side.SELL, "0.01", "p1", position_side=PositionSide.SHORT))

    assert caught.value.code == -4061


def test_hedge_mode_without_position_side_is_rejected_4061() -> None:
    sim = make_sim(mode=PositionMode.HEDGE)

    with pytest.raises(PositionSideMismatch) as caught:
        sim.create_order(market(PERP, Side.SELL, "0.01", "p1"))

    assert caught.value.code == -4061
    assert caught.value.reason == "Order's position side does not match user's setting."


def test_hedge_mode_reduce_only_is_rejected_1106() -> None:
    sim = make_sim(mode=PositionMode.HEDGE)
    sim.create_order(market(PERP, Side.SELL, "0.01", "p1", position_side=PositionSide.SHORT))

    with pytest.raises(ReduceOnlyRejected) as caught:
        sim.create_order(
            market(PERP, Side.BUY, "0.01", "p2", reduce_only=True, position_side=PositionSide.SHORT)
        )

    assert caught.value.code == -1106
    assert caught.value.reason == "Parameter 'reduceOnly' sent when not required."


def test_hedge_mode_buy_with_position_side_short_closes_the_short() -> None:
    sim = make_sim(mode=PositionMode.HEDGE, fees=NO_FEES)
    sim.create_order(market(PERP, Side.SELL, "0.01", "p1", position_side=PositionSide.SHORT))
    sim.set_book(kit.book(PERP, [("49000", "5")], [("49000.1", "5")]))

    order = sim.create_order(market(PERP, Side.BUY, "0.01", "p2", position_side=PositionSide.SHORT))

    assert order.status is OrderStatus.FILLED
    assert order.position_side is PositionSide.SHORT
    assert sim.positions() == []
    assert sim.my_trades(PERP)[-1].realized_pnl == D("9.999")  # 0.01 x (50000 - 49000.1)
    assert sim.futures_account().wallet_balance == D("10009.999")


def test_hedge_mode_closing_more_than_the_position_is_rejected_2022() -> None:
    sim = make_sim(mode=PositionMode.HEDGE)
    sim.create_order(market(PERP, Side.SELL, "0.01", "p1", position_side=PositionSide.SHORT))

    with pytest.raises(ReduceOnlyRejected) as caught:
        sim.create_order(market(PERP, Side.BUY, "0.02", "p2", position_side=PositionSide.SHORT))

    assert caught.value.code == -2022


def test_set_position_mode_with_a_position_is_rejected_4068() -> None:
    sim = make_sim()
    sim.create_order(market(PERP, Side.SELL, "0.01", "p1"))

    with pytest.raises(OrderRejected) as caught:
        sim.set_position_mode(PositionMode.HEDGE)

    assert caught.value.code == -4068
    assert caught.value.reason == "Position side cannot be changed if there exists position."
    assert sim.position_mode is PositionMode.ONE_WAY


def test_set_position_mode_unchanged_is_rejected_4059() -> None:
    sim = make_sim()

    with pytest.raises(OrderRejected) as caught:
        sim.set_position_mode(PositionMode.ONE_WAY)

    assert caught.value.code == -4059


def test_set_leverage_out_of_range_is_rejected_4028() -> None:
    sim = make_sim()

    with pytest.raises(OrderRejected) as caught:
        sim.set_leverage(PERP, 126)

    assert (caught.value.code, caught.value.reason) == (-4028, "Leverage 126 is not valid")
    assert sim.leverage(PERP) == 20


# --- margin and liquidation ----------------------------------------------------------------


def test_1x_cross_short_liquidation_price_matches_hand_computation() -> None:
    sim = make_sim(fees=NO_FEES)
    sim.set_leverage(PERP, 1)

    sim.create_order(market(PERP, Side.SELL, "0.2", "p1"))

    # Short S=0.2 @ E=50000, wallet W=10000, mmr 0.4%: W + S(E - P) = S·P·mmr
    # => P = (W + S·E) / (S·1.004) = 20000 / 0.2008 = 99601.5936...
    position = sim.positions()[0]
    assert position.liquidation_price is not None
    assert position.liquidation_price.quantize(D("0.01")) == D("99601.59")
    assert sim.futures_account().available_balance == 0


def test_3x_isolated_short_liquidation_price_matches_hand_computation() -> None:
    sim = make_sim(fees=NO_FEES)
    sim.set_margin_mode(PERP, MarginMode.ISOLATED)
    sim.set_leverage(PERP, 3)

    sim.create_order(market(PERP, Side.SELL, "0.3", "p1"))

    # Isolated margin M = 0.3 x 50000 / 3 = 5000: P = (M + S·E) / (S·1.004) = 20000 / 0.3012
    position = sim.positions()[0]
    assert position.liquidation_price is not None
    assert position.liquidation_price.quantize(D("0.01")) == D("66401.06")
    assert sim.futures_account().available_balance == D("5000")


def test_cross_short_is_liquidated_when_the_mark_crosses_its_liquidation_price() -> None:
    sim = make_sim(fees=NO_FEES)
    sim.set_leverage(PERP, 1)
    sim.create_order(market(PERP, Side.SELL, "0.2", "p1"))

    sim.set_mark(PERP, D("99601"))
    survived = sim.positions()
    sim.set_mark(PERP, D("99602"))

    assert len(survived) == 1
    assert sim.positions() == []
    assert sim.futures_account().wallet_balance == 0
    last = sim.my_trades(PERP)[-1]
    assert last.client_order_id is not None and last.client_order_id.startswith("autoclose-")
    assert (last.side, last.quantity, last.price) == (Side.BUY, D("0.2"), D("99602"))


def test_isolated_liquidation_loses_only_the_isolated_margin() -> None:
    sim = make_sim(fees=NO_FEES)
    sim.set_margin_mode(PERP, MarginMode.ISOLATED)
    sim.set_leverage(PERP, 3)
    sim.create_order(market(PERP, Side.SELL, "0.3", "p1"))

    sim.set_mark(PERP, D("66400"))
    survived = sim.positions()
    sim.set_mark(PERP, D("66402"))

    assert len(survived) == 1
    assert sim.positions() == []
    assert sim.futures_account().wallet_balance == D("5000")


def test_unrealized_pnl_and_available_follow_the_mark() -> None:
    sim = make_sim(fees=NO_FEES)
    sim.set_leverage(PERP, 2)
    sim.create_order(market(PERP, Side.SELL, "0.1", "p1"))

    sim.set_mark(PERP, D("51000"))

    account = sim.futures_account()
    assert account.unrealized_pnl == D("-100")
    assert account.initial_margin == D("2550")  # 0.1 x 51000 / 2
    assert account.available_balance == D("10000") - D("100") - D("2550")
    assert account.maintenance_margin == D("20.4")


# --- funding -------------------------------------------------------------------------------


def test_positive_funding_pays_the_short_rate_times_mark_times_size() -> None:
    sim = make_sim(fees=NO_FEES)
    sim.create_order(market(PERP, Side.SELL, "0.1", "p1"))
    funding_time = kit.T0 + timedelta(hours=8)

    payment = sim.settle_funding(PERP, funding_time, D("0.0001"), D("51000"))

    assert payment is not None
    assert payment.amount == D("0.51")  # 0.0001 x 51000 x 0.1
    assert payment.funding_time == funding_time
    assert sim.futures_account().wallet_balance == D("10000.51")


def test_negative_funding_charges_the_short() -> None:
    sim = make_sim(fees=NO_FEES)
    sim.create_order(market(PERP, Side.SELL, "0.1", "p1"))

    payment = sim.settle_funding(PERP, kit.T0 + timedelta(hours=8), D("-0.0002"), D("50000"))

    assert payment is not None and payment.amount == D("-1")
    assert sim.futures_account().wallet_balance == D("9999")


def test_settling_the_same_funding_time_twice_pays_once() -> None:
    sim = make_sim(fees=NO_FEES)
    sim.create_order(market(PERP, Side.SELL, "0.1", "p1"))
    when = kit.T0 + timedelta(hours=8)

    first = sim.settle_funding(PERP, when, D("0.0001"), D("50000"))
    second = sim.settle_funding(PERP, when, D("0.0001"), D("50000"))

    assert first is not None and second is None
    assert len(sim.funding_payments()) == 1
    assert sim.futures_account().wallet_balance == D("10000.5")


def test_funding_uses_the_position_held_at_the_funding_time() -> None:
    clock = SimulatedClock(kit.T0)
    sim = make_sim(clock=clock, fees=NO_FEES)
    sim.create_order(market(PERP, Side.SELL, "0.1", "p1"))
    clock.advance(timedelta(hours=9))
    sim.create_order(market(PERP, Side.BUY, "0.1", "p2", reduce_only=True))

    late = sim.settle_funding(PERP, kit.T0 + timedelta(hours=8), D("0.0001"), D("50000"))
    after_close = sim.settle_funding(PERP, kit.T0 + timedelta(hours=16), D("0.0001"), D("50000"))

    assert late is not None and late.amount == D("0.5")
    assert after_close is None
    assert sim.funding_due() == {}


def test_funding_due_lists_a_symbol_from_its_opening_time() -> None:
    clock = SimulatedClock(kit.T0 + timedelta(hours=1))
    sim = make_sim(clock=clock)

    sim.create_order(market(PERP, Side.SELL, "0.01", "p1"))

    assert sim.funding_due() == {PERP: kit.T0 + timedelta(hours=1)}


# --- limit orders ---------------------------------------------------------------------------


def test_limit_buy_rests_then_fills_as_maker_when_the_book_crosses() -> None:
    fees = FeeParams(spot_taker=D("0.001"), spot_maker=D("0.0008"))
    sim = make_sim(fees=fees)

    resting = sim.create_order(limit(SPOT, Side.BUY, "0.01", "49990", "l1"))
    locked = sim.spot_balances()["USDT"].locked
    sim.set_book(kit.book(SPOT, [("49970", "1")], [("49980", "0.02")]))

    filled = sim.fetch_order(SPOT, "l1")
    assert resting.status is OrderStatus.NEW
    assert locked == D("499.9")
    assert filled.status is OrderStatus.FILLED
    assert filled.average_price == D("49990")
    assert (filled.fee, filled.fee_asset) == (D("0.000008"), "BTC")
    assert sim.my_trades(SPOT)[0].is_maker
    balances = sim.spot_balances()
    assert balances["USDT"] == type(balances["USDT"])("USDT", D("9500.1"), D("0"))
    assert balances["BTC"].free == D("0.009992")


def test_marketable_limit_order_fills_at_once_as_taker() -> None:
    sim = make_sim()

    order = sim.create_order(limit(SPOT, Side.BUY, "0.01", "50010", "l1"))

    assert order.status is OrderStatus.FILLED
    assert order.average_price == D("50000")
    assert not sim.my_trades(SPOT)[0].is_maker
    assert sim.spot_balances()["USDT"].locked == 0


def test_futures_limit_short_rests_then_fills_as_maker() -> None:
    sim = make_sim(fees=NO_FEES)

    sim.create_order(limit(PERP, Side.SELL, "0.01", "50100", "l1"))
    before = sim.positions()
    sim.set_book(kit.book(PERP, [("50150", "1")], [("50150.1", "1")]))

    assert before == []
    position = sim.positions()[0]
    assert (position.size, position.is_short, position.entry_price) == (
        D("0.01"),
        True,
        D("50100"),
    )
    assert sim.fetch_order(PERP, "l1").status is OrderStatus.FILLED


def test_cancel_order_releases_locked_funds_and_cannot_repeat() -> None:
    sim = make_sim()
    sim.create_order(limit(SPOT, Side.BUY, "0.01", "49000", "l1"))

    canceled = sim.cancel_order(SPOT, "l1")

    assert canceled.status is OrderStatus.CANCELED
    assert sim.spot_balances()["USDT"] == type(sim.spot_balances()["USDT"])(
        "USDT", D("10000"), D("0")
    )
    with pytest.raises(OrderNotFound) as caught:
        sim.cancel_order(SPOT, "l1")
    assert caught.value.code == -2011


def test_fetch_unknown_order_raises_order_not_found_2013() -> None:
    sim = make_sim()

    with pytest.raises(OrderNotFound) as caught:
        sim.fetch_order(SPOT, "nope")

    assert (caught.value.code, caught.value.reason) == (-2013, "Order does not exist.")


def test_exchange_ids_increase_and_trade_ids_count_per_symbol() -> None:
    sim = make_sim()

    a = sim.create_order(market(SPOT, Side.BUY, "0.001", "a"))
    b = sim.create_order(market(PERP, Side.SELL, "0.01", "b"))
    c = sim.create_order(market(SPOT, Side.BUY, "0.001", "c"))

    assert [a.exchange_order_id, b.exchange_order_id, c.exchange_order_id] == ["1", "2", "3"]
    assert [f.trade_id for f in sim.my_trades(SPOT)] == ["1", "2"]
    assert [f.trade_id for f in sim.my_trades(PERP)] == ["1"]


# --- persistence ---------------------------------------------------------------------------


def test_state_round_trip_through_json_is_identical() -> None:
    clock = SimulatedClock(kit.T0)
    sim = make_sim(clock=clock)
    sim.set_margin_mode(PERP, MarginMode.ISOLATED)
    sim.set_leverage(PERP, 3)
    sim.create_order(market(SPOT, Side.BUY, "0.01", "b1"))
    sim.create_order(market(PERP, Side.SELL, "0.01", "p1"))
    sim.create_order(limit(SPOT, Side.SELL, "0.005", "51000", "l1"))
    clock.advance(timedelta(hours=8))
    sim.settle_funding(PERP, clock.now(), D("0.0001"), D("50000"))
    state = sim.to_state()

    restored = SimulatedExchange({SPOT: kit.spot(), PERP: kit.perp()}, clock=clock)
    restored.load_state(json.loads(json.dumps(state)))

    assert restored.to_state() == state
    assert restored.spot_balances() == sim.spot_balances()
    assert restored.positions() == sim.positions()
    assert restored.open_orders() == sim.open_orders()
    assert restored.funding_payments() == sim.funding_payments()
    assert restored.futures_account() == sim.futures_account()


def test_load_state_rejects_an_unknown_version() -> None:
    sim = make_sim()
    state = sim.to_state() | {"version": 99}

    with pytest.raises(ValueError, match="version"):
        sim.load_state(state)
