"""LiveExchange orders over real ccxt and the fake Binance: wire parameters, lost responses."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from bot.clock import SimulatedClock
from bot.domain import (
    OrderRequest,
    OrderStatus,
    OrderType,
    PositionMode,
    PositionSide,
    Side,
)
from bot.errors import AuthError, OrderRejected, OrderStatusUnknown, RateLimitedError
from bot.exchange.ccxt_live import LiveExchange
from tests import kit
from tests.fakes.binance_server import FakeBinance
from tests.fakes.fixtures import live_for

D = Decimal
SPOT, PERP = "BTC/USDT", "BTC/USDT:USDT"
SIGNING = {"timestamp", "signature"}


def _market(symbol: str, side: Side, qty: str, cid: str, **kw: object) -> OrderRequest:
    return OrderRequest(symbol, side, OrderType.MARKET, D(qty), cid, **kw)  # type: ignore[arg-type]


def _sent(fake: FakeBinance, path: str) -> list[dict[str, str]]:
    return [
        {k: v for k, v in r.params.items() if k not in SIGNING}
        for r in fake.requests_to(path, "POST")
    ]


@pytest.fixture
async def patient(fake_binance: FakeBinance) -> AsyncIterator[LiveExchange]:
    """A live adapter whose lookup backoff runs on a simulated clock, with a short timeout."""
    live = live_for(fake_binance, clock=SimulatedClock(kit.T0), timeout_ms=300)
    try:
        yield live
    finally:
        await live.close()


async def test_create_order_spot_market_buy_sends_quantity_and_client_id(
    fake_binance: FakeBinance, live_exchange: LiveExchange
) -> None:
    order = await live_exchange.create_order(_market(SPOT, Side.BUY, "0.01", "cb-t-so1"))

    assert _sent(fake_binance, "/api/v3/order") == [
        {
            "symbol": "BTCUSDT",
            "side": "BUY",
            "type": "MARKET",
            "quantity": "0.01",
            "newClientOrderId": "cb-t-so1",
            "newOrderRespType": "FULL",
            "recvWindow": "5000",
        }
    ]
    assert (order.status, order.filled, order.client_order_id) == (
        OrderStatus.FILLED,
        D("0.01"),
        "cb-t-so1",
    )
    assert order.average_price == D("50000.01") and order.fee == D("0.00001")


async def test_create_order_perp_market_sell_omits_reduce_only_and_position_side(
    fake_binance: FakeBinance, live_exchange: LiveExchange
) -> None:
    order = await live_exchange.create_order(_market(PERP, Side.SELL, "0.01", "cb-t-po1"))

    assert _sent(fake_binance, "/fapi/v1/order") == [
        {
            "symbol": "BTCUSDT",
            "side": "SELL",
            "type": "MARKET",
            "quantity": "0.01",
            "newClientOrderId": "cb-t-po1",
            "newOrderRespType": "RESULT",
            "recvWindow": "5000",
        }
    ]
    assert order.status is OrderStatus.FILLED and order.position_side is PositionSide.BOTH


@pytest.mark.parametrize("position_side", [None, PositionSide.BOTH])
async def test_create_order_one_way_close_sends_reduce_only(
    fake_binance: FakeBinance, live_exchange: LiveExchange, position_side: PositionSide | None
) -> None:
    await live_exchange.create_order(_market(PERP, Side.SELL, "0.01", "cb-t-po1"))

    await live_exchange.create_order(
        _market(PERP, Side.BUY, "0.01", "cb-t-pc1", reduce_only=True, position_side=position_side)
    )

    close = _sent(fake_binance, "/fapi/v1/order")[1]
    assert close["reduceOnly"] == "true" and close["side"] == "BUY"
    assert close.get("positionSide") == (position_side.value if position_side else None)
    assert await live_exchange.fetch_positions() == []


async def test_create_order_hedge_close_sends_position_side_without_reduce_only(
    fake_binance: FakeBinance, live_exchange: LiveExchange
) -> None:
    await live_exchange.set_position_mode(PositionMode.HEDGE)
    await live_exchange.create_order(
        _market(PERP, Side.SELL, "0.01", "cb-t-po1", position_side=PositionSide.SHORT)
    )

    await live_exchange.create_order(
        _market(PERP, Side.BUY, "0.01", "cb-t-pc1", position_side=PositionSide.SHORT)
    )

    close = _sent(fake_binance, "/fapi/v1/order")[1]
    assert close["positionSide"] == "SHORT" and "reduceOnly" not in close
    assert await live_exchange.fetch_positions() == []


async def test_create_order_two_legs_arrive_together_on_every_hedge(
    fake_binance: FakeBinance, live_exchange: LiveExchange
) -> None:
    await live_exchange.load_instruments()

    for n in range(3):  # ccxt's own limiter would hold every later perp leg ~190 ms back
        await asyncio.gather(
            live_exchange.create_order(_market(SPOT, Side.BUY, "0.01", f"cb-t-so{n}")),
            live_exchange.create_order(_market(PERP, Side.SELL, "0.01", f"cb-t-po{n}")),
        )

    spot = fake_binance.requests_to("/api/v3/order", "POST")
    perp = fake_binance.requests_to("/fapi/v1/order", "POST")
    gaps = [abs(s.at - p.at) for s, p in zip(spot, perp, strict=True)]
    assert max(gaps) < 0.1, gaps


async def test_create_order_limit_rests_then_cancels(
    fake_binance: FakeBinance, live_exchange: LiveExchange
) -> None:
    request = OrderRequest(SPOT, Side.BUY, OrderType.LIMIT, D("0.01"), "cb-t-sl1", D("45000"))

    placed = await live_exchange.create_order(request)
    cancelled = await live_exchange.cancel_order(SPOT, "cb-t-sl1")
    fetched = await live_exchange.fetch_order(SPOT, "cb-t-sl1")

    sent = _sent(fake_binance, "/api/v3/order")[0]
    assert (sent["price"], sent["timeInForce"], sent["type"]) == ("45000", "GTC", "LIMIT")
    assert placed.status is OrderStatus.NEW
    assert cancelled.status is fetched.status is OrderStatus.CANCELED


async def test_create_order_dropped_after_accept_is_found_by_lookup(
    fake_binance: FakeBinance, patient: LiveExchange
) -> None:
    fake_binance.add_fault("drop", "/fapi/v1/order", method="POST")

    order = await patient.create_order(_market(PERP, Side.SELL, "0.01", "cb-t-po1"))

    assert order.status is OrderStatus.FILLED and order.client_order_id == "cb-t-po1"
    assert [r.status for r in fake_binance.requests_to("/fapi/v1/order", "POST")] == [0]
    assert len(fake_binance.account.my_trades(PERP)) == 1
    assert [p.size for p in fake_binance.account.positions()] == [D("0.01")]


async def test_create_order_timed_out_but_executed_is_found_by_lookup(
    fake_binance: FakeBinance, patient: LiveExchange
) -> None:
    fake_binance.add_fault("delay", "/api/v3/order", method="POST", delay_ms=500)

    order = await patient.create_order(_market(SPOT, Side.BUY, "0.01", "cb-t-so1"))

    assert order.status is OrderStatus.FILLED
    assert len(fake_binance.requests_to("/api/v3/order", "POST")) == 1


async def test_create_order_5xx_processed_is_found_by_lookup(
    fake_binance: FakeBinance, patient: LiveExchange
) -> None:
    fake_binance.add_fault("server_error", "/fapi/v1/order", method="POST", accept=True)

    order = await patient.create_order(_market(PERP, Side.SELL, "0.01", "cb-t-po1"))

    assert order.status is OrderStatus.FILLED
    assert len(fake_binance.requests_to("/fapi/v1/order", "POST")) == 1


async def test_create_order_5xx_never_processed_raises_status_unknown_after_lookups(
    fake_binance: FakeBinance, patient: LiveExchange
) -> None:
    fake_binance.add_fault("server_error", "/fapi/v1/order", method="POST")

    with pytest.raises(OrderStatusUnknown) as raised:
        await patient.create_order(_market(PERP, Side.SELL, "0.01", "cb-t-po1"))

    assert (raised.value.client_order_id, raised.value.symbol) == ("cb-t-po1", PERP)
    assert len(fake_binance.requests_to("/fapi/v1/order", "POST")) == 1
    assert len(fake_binance.requests_to("/fapi/v1/order", "GET")) == 3


async def test_create_order_rejected_is_not_looked_up(
    fake_binance: FakeBinance, live_exchange: LiveExchange
) -> None:
    with pytest.raises(OrderRejected) as raised:
        await live_exchange.create_order(_market(PERP, Side.SELL, "0.001", "cb-t-po1"))

    assert raised.value.code == -4164  # 0.001 BTC is below the 100 USDT minimum notional
    assert len(fake_binance.requests_to("/fapi/v1/order", "POST")) == 1
    assert fake_binance.requests_to("/fapi/v1/order", "GET") == []


@pytest.mark.parametrize(
    ("symbol", "qty", "code"), [(SPOT, "0.000015", -1013), (PERP, "0.0015", -1111)]
)
async def test_create_order_off_step_quantity_is_refused_before_ccxt_truncates_it(
    fake_binance: FakeBinance, live_exchange: LiveExchange, symbol: str, qty: str, code: int
) -> None:
    with pytest.raises(OrderRejected) as raised:
        await live_exchange.create_order(_market(symbol, Side.BUY, qty, "cb-t-x1"))

    assert raised.value.code == code
    assert fake_binance.requests_to("/api/v3/order") == []
    assert fake_binance.requests_to("/fapi/v1/order") == []


async def test_create_order_rate_limited_is_not_looked_up(
    fake_binance: FakeBinance, live_exchange: LiveExchange
) -> None:
    fake_binance.add_fault("rate_limit", "/fapi/v1/order", method="POST", retry_after=3)

    with pytest.raises(RateLimitedError) as raised:
        await live_exchange.create_order(_market(PERP, Side.SELL, "0.01", "cb-t-po1"))

    assert raised.value.retry_after == 3
    assert fake_binance.requests_to("/fapi/v1/order", "GET") == []


async def test_create_order_partial_fill_reports_the_filled_part(
    fake_binance: FakeBinance, live_exchange: LiveExchange
) -> None:
    fake_binance.add_fault("partial_fill", "/fapi/v1/order", method="POST", ratio="0.5")

    order = await live_exchange.create_order(_market(PERP, Side.SELL, "0.02", "cb-t-po1"))

    assert order.filled == D("0.01") and order.status is not OrderStatus.FILLED
    assert (await live_exchange.fetch_positions())[0].size == D("0.01")


async def test_private_methods_without_keys_raise_auth_error_without_request(
    fake_binance: FakeBinance,
) -> None:
    live = live_for(fake_binance, keys=False)
    try:
        with pytest.raises(AuthError):
            await live.create_order(_market(SPOT, Side.BUY, "0.01", "cb-t-so1"))
        with pytest.raises(AuthError):
            await live.fetch_spot_balances()
    finally:
        await live.close()

    assert fake_binance.requests_to("/api/v3/order") == []
    assert fake_binance.requests_to("/api/v3/account") == []
