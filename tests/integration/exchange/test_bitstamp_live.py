"""BitstampSpot (real ccxt `bitstamp`) against the fake Bitstamp: markets, signed calls,
orders by client order id, fills, errors and the request budget."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from bot.clock import SimulatedClock
from bot.domain import MarketKind, OrderRequest, OrderStatus, OrderType, Side
from bot.errors import (
    AuthError,
    ClockSkewError,
    InsufficientFunds,
    OrderNotFound,
    OrderRejected,
    OrderStatusUnknown,
    RateLimitedError,
    TemporaryError,
)
from bot.exchange.bitstamp_live import BitstampSpot
from tests import kit
from tests.fakes.bitstamp_fixtures import bitstamp_for, bitstamp_instruments, seed_bitstamp
from tests.fakes.bitstamp_server import FakeBitstamp

D = Decimal
BUY_BTCUSD = "/api/v2/buy/market/btcusd/"


@pytest.fixture
async def fake() -> AsyncIterator[FakeBitstamp]:
    async with FakeBitstamp(bitstamp_instruments(), clock=SimulatedClock(kit.T0)) as server:
        seed_bitstamp(server)
        yield server


@pytest.fixture
async def spot(fake: FakeBitstamp) -> AsyncIterator[BitstampSpot]:
    adapter = bitstamp_for(fake)
    try:
        yield adapter
    finally:
        await adapter.close()


def _buy(qty: str, cid: str = "cb-t1-so1") -> OrderRequest:
    return OrderRequest("BTC/USD", Side.BUY, OrderType.MARKET, D(qty), cid)


async def test_markets_come_from_ccxt_with_bitstamp_decimals(spot: BitstampSpot) -> None:
    instruments = await spot.load_instruments()

    btc = instruments["BTC/USD"]
    assert (btc.exchange_symbol, btc.quote, btc.tick_size, btc.step_size, btc.min_notional) == (
        "btcusd", "USD", D("1"), D("0.00000001"), D("10"),
    )  # fmt: skip
    assert set(instruments) == {"BTC/USD", "BTC/USDT", "ETH/USD", "USDT/USD"}


async def test_quotes_and_volumes_of_every_pair_in_one_ticker_request(
    fake: FakeBitstamp, spot: BitstampSpot
) -> None:
    await spot.load_instruments()
    fake.clear_requests()

    quotes = await spot.fetch_best_quotes(MarketKind.SPOT)
    volumes = await spot.fetch_volumes_24h(MarketKind.SPOT)

    assert (quotes["BTC/USD"].bid, quotes["BTC/USD"].ask) == (D("49950"), D("49951"))
    assert quotes["USDT/USD"].mid == D("0.9990")
    assert abs(volumes["BTC/USD"] - D("900000000")) < 1
    assert [r.path for r in fake.requests] == ["/api/v2/ticker/", "/api/v2/ticker/"]
    assert await spot.fetch_best_quotes(MarketKind.PERPETUAL) == {}


async def test_market_buy_fills_with_the_fee_in_usd_and_is_found_by_client_order_id(
    fake: FakeBitstamp, spot: BitstampSpot
) -> None:
    order = await spot.create_order(_buy("0.02"))

    assert order.status is OrderStatus.FILLED and order.filled == D("0.02")
    assert order.client_order_id == "cb-t1-so1"
    (post,) = fake.requests_to(BUY_BTCUSD, "POST")
    assert post.params["client_order_id"] == "cb-t1-so1" and post.params["amount"] == "0.02"
    fills = await spot.fetch_my_trades("BTC/USD", kit.T0)
    assert [(f.side, f.quantity, f.fee_asset) for f in fills] == [(Side.BUY, D("0.02"), "USD")]
    cost = sum((f.price * f.quantity for f in fills), D(0))
    assert fills[0].fee == cost * D("0.004")
    balances = await spot.fetch_spot_balances()
    assert balances["BTC"].free == D("0.02")  # no fee taken from the base asset
    assert balances["USD"].free == D("10000") - cost - fills[0].fee
    again = await spot.fetch_order("BTC/USD", "cb-t1-so1")
    assert (again.exchange_order_id, again.filled) == (order.exchange_order_id, D("0.02"))


async def test_unknown_client_order_id_is_order_not_found(spot: BitstampSpot) -> None:
    with pytest.raises(OrderNotFound):
        await spot.fetch_order("BTC/USD", "cb-nope-so1")


async def test_wrong_secret_is_an_auth_error_and_places_nothing(fake: FakeBitstamp) -> None:
    fake.keys = {"fake-bitstamp-key": "another-secret"}
    adapter = bitstamp_for(fake)
    try:
        with pytest.raises(AuthError, match="Invalid signature"):
            await adapter.create_order(_buy("0.02"))
    finally:
        await adapter.close()
    assert fake.account.spot_balances()["USD"].free == D("10000")
    assert fake.requests_to(BUY_BTCUSD, "POST")[0].status == 403


async def test_a_replayed_nonce_is_refused_as_retryable(
    fake: FakeBitstamp, spot: BitstampSpot
) -> None:
    await spot.fetch_spot_balances()
    fake._nonces.add("fixed")
    client = spot._client
    client.uuid = lambda: "fixed"
    with pytest.raises(TemporaryError, match="Invalid nonce"):  # a fresh nonce will do
        await spot.fetch_spot_balances()


async def test_clock_skew_beyond_150_s_is_a_clock_skew_error(
    fake: FakeBitstamp, spot: BitstampSpot
) -> None:
    fake.skew_ms = 200_000
    with pytest.raises(ClockSkewError):
        await spot.fetch_spot_balances()


async def test_no_keys_refuses_private_calls_before_sending(fake: FakeBitstamp) -> None:
    adapter = bitstamp_for(fake, keys=False)
    try:
        with pytest.raises(AuthError, match="BITSTAMP_API_KEY"):
            await adapter.fetch_spot_balances()
    finally:
        await adapter.close()
    assert fake.requests == []


async def test_insufficient_usd_and_min_order_value_are_rejections(spot: BitstampSpot) -> None:
    with pytest.raises(InsufficientFunds):
        await spot.create_order(_buy("1", "cb-t1-so2"))
    with pytest.raises(OrderRejected, match="Minimum order size"):
        await spot.create_order(_buy("0.0001", "cb-t1-so3"))
    with pytest.raises(OrderRejected, match="multiple"):
        await spot.create_order(_buy("0.000000001", "cb-t1-so4"))


async def test_lost_response_is_resolved_by_lookup_never_resent(
    fake: FakeBitstamp, spot: BitstampSpot
) -> None:
    fake.add_fault("drop", BUY_BTCUSD, method="POST")

    order = await spot.create_order(_buy("0.02"))

    assert order.status is OrderStatus.FILLED and order.filled == D("0.02")
    assert len(fake.requests_to(BUY_BTCUSD, "POST")) == 1


async def test_venue_down_on_a_post_that_never_arrived_is_status_unknown(
    fake: FakeBitstamp, spot: BitstampSpot
) -> None:
    await spot.load_instruments()
    fake.down = True
    with pytest.raises(OrderStatusUnknown):
        await spot.create_order(_buy("0.02"))
    assert fake.account.spot_balances()["USD"].free == D("10000")


async def test_partial_fill_reports_the_filled_part(fake: FakeBitstamp, spot: BitstampSpot) -> None:
    fake.add_fault("partial_fill", BUY_BTCUSD, method="POST", ratio="0.5")

    order = await spot.create_order(_buy("0.02"))

    assert order.filled == D("0.01") and order.status.is_final


async def test_over_the_10_minute_budget_is_http_429_then_orders_refuse_at_once(
    fake: FakeBitstamp, spot: BitstampSpot
) -> None:
    await spot.load_instruments()
    fake.limit = len(fake.requests)  # the budget is used up

    with pytest.raises(RateLimitedError):
        await spot.fetch_spot_balances()
    sent = len(fake.requests)
    with pytest.raises(RateLimitedError, match="retry in"):
        await spot.create_order(_buy("0.02"))
    assert len(fake.requests) == sent  # refused by our pacer, not sent


async def test_account_fees_from_fees_trading(spot: BitstampSpot) -> None:
    assert await spot.taker_maker_fees() == (D("0.004"), D("0.004"))


async def test_cancel_of_an_order_that_already_filled_returns_its_final_state(
    spot: BitstampSpot,
) -> None:
    await spot.create_order(_buy("0.02"))

    order = await spot.cancel_order("BTC/USD", "cb-t1-so1")

    assert order.status is OrderStatus.FILLED and order.filled == D("0.02")


async def test_a_resting_limit_order_is_cancelled_by_client_order_id(
    fake: FakeBitstamp, spot: BitstampSpot
) -> None:
    request = OrderRequest(
        "BTC/USD", Side.BUY, OrderType.LIMIT, D("0.02"), "cb-t1-so5", price=D("49000")
    )
    resting = await spot.create_order(request)
    assert resting.status is OrderStatus.NEW and resting.filled == 0

    fake.add_fault("reject", "/api/v2/cancel_order/", method="POST", msg="Order not found.")
    with pytest.raises(OrderNotFound):  # still open after a refused cancel: not hidden
        await spot.cancel_order("BTC/USD", "cb-t1-so5")

    cancelled = await spot.cancel_order("BTC/USD", "cb-t1-so5")
    assert cancelled.status is OrderStatus.CANCELED
    assert fake.account.spot_balances()["USD"].locked == 0
