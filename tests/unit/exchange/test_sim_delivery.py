"""SimulatedExchange and dated futures: delivery at the delivery price, no trading after."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from bot.clock import SimulatedClock
from bot.domain import OrderRequest, OrderType, Side
from bot.domain.params import FeeParams
from bot.errors import OrderRejected
from bot.exchange.simulator import SimulatedExchange
from tests import kit

D = Decimal
DELIVERY = kit.T0 + timedelta(days=30)
QUARTER = kit.dated("BTC", expiry=DELIVERY)
NO_FEES = FeeParams(spot_taker=D(0), spot_maker=D(0), futures_taker=D(0), futures_maker=D(0))


def short_quarter(clock: SimulatedClock) -> SimulatedExchange:
    sim = SimulatedExchange({QUARTER.symbol: QUARTER}, clock=clock, fees=NO_FEES)
    sim.deposit("futures", "USDT", D("10000"))
    sim.set_book(kit.book(QUARTER.symbol, [("51000", "5")], [("51000.1", "5")]))
    sim.create_order(
        OrderRequest(QUARTER.symbol, Side.SELL, OrderType.MARKET, D("0.1"), "cb-q-po1")
    )
    return sim


def test_delivery_settles_the_short_at_the_delivery_price_into_the_wallet() -> None:
    clock = SimulatedClock(kit.T0)
    sim = short_quarter(clock)
    clock.advance(DELIVERY - kit.T0)

    assert sim.dated_positions_due(clock.now()) == [QUARTER.symbol]
    realized = sim.deliver(QUARTER.symbol, D("50000"))

    assert realized == D("0.1") * (D("51000") - D("50000"))
    assert sim.positions() == []
    assert sim.futures_account().wallet_balance == D("10000") + realized
    assert sim.dated_positions_due(clock.now()) == []
    assert sim.funding_due() == {}  # a dated future never pays funding


def test_orders_on_a_delivered_contract_are_refused_like_binance() -> None:
    clock = SimulatedClock(kit.T0)
    sim = short_quarter(clock)
    clock.advance(DELIVERY - kit.T0)

    with pytest.raises(OrderRejected) as err:
        sim.create_order(
            OrderRequest(QUARTER.symbol, Side.BUY, OrderType.MARKET, D("0.1"), "cb-q-pc1")
        )
    assert err.value.code == -4108


def test_before_delivery_nothing_is_due() -> None:
    clock = SimulatedClock(kit.T0)
    sim = short_quarter(clock)

    assert sim.dated_positions_due(DELIVERY - timedelta(seconds=1)) == []
