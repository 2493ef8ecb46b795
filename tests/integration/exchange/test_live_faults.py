"""Every fault the fake Binance injects comes out of LiveExchange as the right taxonomy error."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import pytest

from bot.clock import SimulatedClock
from bot.domain import (
    ListEventSink,
    MarginMode,
    MarketKind,
    OrderRequest,
    OrderType,
    PositionMode,
    Severity,
    Side,
)
from bot.errors import (
    AuthError,
    BannedError,
    ClockSkewError,
    ExchangeError,
    InsufficientFunds,
    OrderNotFound,
    OrderRejected,
    PositionSideMismatch,
    RateLimitedError,
    ReduceOnlyRejected,
    TemporaryError,
)
from bot.exchange.ccxt_live import LiveExchange
from tests import kit
from tests.fakes.binance_server import FakeBinance
from tests.fakes.fixtures import live_config, live_for

D = Decimal
SPOT, PERP = "BTC/USDT", "BTC/USDT:USDT"


def _sell_perp(cid: str = "cb-t-po1") -> OrderRequest:
    return OrderRequest(PERP, Side.SELL, OrderType.MARKET, D("0.01"), cid)


def _buy_spot(cid: str = "cb-t-so1") -> OrderRequest:
    return OrderRequest(SPOT, Side.BUY, OrderType.MARKET, D("0.01"), cid)


@dataclass
class Clocked:
    live: LiveExchange
    clock: SimulatedClock
    events: ListEventSink


@pytest.fixture
async def clocked(fake_binance: FakeBinance) -> AsyncIterator[Clocked]:
    """A live adapter on a simulated clock (waits cost no time), with a 300 ms timeout."""
    clock, events = SimulatedClock(kit.T0), ListEventSink()
    live = live_for(fake_binance, clock=clock, events=events, timeout_ms=300)
    try:
        yield Clocked(live, clock, events)
    finally:
        await live.close()


@pytest.mark.parametrize(
    ("path", "code", "msg", "status", "error"),
    [
        ("/fapi/v1/order", -2019, "Margin is insufficient.", 400, InsufficientFunds),
        ("/api/v3/order", -2010, "Account has insufficient balance for requested action.", 400,
         InsufficientFunds),
        ("/api/v3/order", -2010, "Duplicate order sent.", 400, OrderRejected),
        ("/fapi/v1/order", -2022, "ReduceOnly Order is rejected.", 400, ReduceOnlyRejected),
        ("/fapi/v1/order", -4061, "Order's position side does not match user's setting.", 400,
         PositionSideMismatch),
        ("/api/v3/order", -1013, "Filter failure: NOTIONAL", 400, OrderRejected),
        ("/fapi/v1/order", -4164, "Order's notional must be no smaller than 100", 400,
         OrderRejected),
        ("/fapi/v1/order", -2015, "Invalid API-key, IP, or permissions for action.", 401,
         AuthError),
        ("/api/v3/order", -1022, "Signature for this request is not valid.", 400, AuthError),
    ],
)  # fmt: skip
async def test_rejection_maps_binance_code_to_taxonomy(
    fake_binance: FakeBinance,
    live_exchange: LiveExchange,
    path: str,
    code: int,
    msg: str,
    status: int,
    error: type[ExchangeError],
) -> None:
    fake_binance.add_fault("reject", path, method="POST", code=code, msg=msg, status=status)
    request = _sell_perp() if path.startswith("/fapi") else _buy_spot()

    with pytest.raises(ExchangeError) as raised:
        await live_exchange.create_order(request)

    assert type(raised.value) is error
    assert (raised.value.code, raised.value.reason) == (code, msg)
    assert fake_binance.requests_to(path, "GET") == []  # a refusal is final: no lookup


async def test_unknown_order_lookup_raises_order_not_found(live_exchange: LiveExchange) -> None:
    with pytest.raises(OrderNotFound) as raised:
        await live_exchange.fetch_order(PERP, "cb-t-none")

    assert raised.value.code == -2013


async def test_cancel_unknown_order_raises_order_not_found(live_exchange: LiveExchange) -> None:
    with pytest.raises(OrderNotFound):
        await live_exchange.cancel_order(SPOT, "cb-t-none")


@pytest.mark.parametrize(
    ("kind", "options"),
    [
        ("server_error", {"status": 503}),
        ("server_error", {"status": 500}),
        ("delay", {"delay_ms": 500}),
        ("drop", {"times": None}),
        ("reject", {"code": -1001, "msg": "Internal error; unable to process your request."}),
    ],
)
async def test_market_data_transient_faults_raise_temporary_error(
    fake_binance: FakeBinance,
    clocked: Clocked,
    kind: str,
    options: dict[str, object],
) -> None:
    live = clocked.live
    await live.load_instruments()
    fake_binance.add_fault(kind, "/api/v3/ticker/bookTicker", **options)

    with pytest.raises(TemporaryError) as raised:
        await live.fetch_best_quotes(MarketKind.SPOT)

    assert not isinstance(raised.value, RateLimitedError)


async def test_rate_limit_raises_with_retry_after(
    fake_binance: FakeBinance, clocked: Clocked
) -> None:
    live = clocked.live
    await live.load_instruments()
    fake_binance.add_fault("rate_limit", "/fapi/v1/premiumIndex", retry_after=7)

    with pytest.raises(RateLimitedError) as raised:
        await live.fetch_funding_snapshot()

    assert (raised.value.retry_after, raised.value.code) == (7, -1003)


async def test_ban_raises_alerts_and_stops_sending_until_it_ends(
    fake_binance: FakeBinance, clocked: Clocked
) -> None:
    live, clock = clocked.live, clocked.clock
    await live.load_instruments()
    fake_binance.add_fault("ban", "/fapi/v1/premiumIndex", retry_after=120)

    with pytest.raises(BannedError) as first:
        await live.fetch_funding_snapshot()
    sent = len(fake_binance.requests)
    with pytest.raises(BannedError):
        await live.create_order(_sell_perp())
    not_sent = len(fake_binance.requests) - sent
    clock.advance(timedelta(seconds=121))
    fake_binance.reset_limits()  # the fake's ban runs on real time; ours on the clock
    after = await live.fetch_funding_snapshot()

    assert first.value.retry_after == 120 and first.value.until == kit.T0 + timedelta(seconds=120)
    assert not_sent == 0
    assert after
    events = clocked.events.events
    assert [(e.kind, e.severity) for e in events] == [("exchange_banned", Severity.ALERT)]
    assert events[0].data == {"venue": "futures", "retry_after": 120.0}


async def test_ban_on_futures_leaves_spot_alone(
    fake_binance: FakeBinance, clocked: Clocked
) -> None:
    live = clocked.live
    await live.load_instruments()
    fake_binance.add_fault("ban", "/fapi/v1/premiumIndex", retry_after=120)
    with pytest.raises(BannedError):
        await live.fetch_funding_snapshot()

    quotes = await live.fetch_best_quotes(MarketKind.SPOT)

    assert quotes


async def test_clock_skew_on_a_signed_read_resyncs_and_retries_once(
    fake_binance: FakeBinance, live_exchange: LiveExchange
) -> None:
    await live_exchange.load_instruments()
    fake_binance.set_clock_skew(30_000)
    seen = len(fake_binance.requests)

    balances = await live_exchange.fetch_spot_balances()

    assert balances["USDT"].free == D("10000")
    paths = [(r.path, r.status) for r in fake_binance.requests[seen:]]
    assert paths == [("/api/v3/account", 400), ("/api/v3/time", 200), ("/api/v3/account", 200)]


async def test_clock_skew_on_an_order_raises_then_the_next_order_passes(
    fake_binance: FakeBinance, live_exchange: LiveExchange
) -> None:
    await live_exchange.load_instruments()
    fake_binance.set_clock_skew(-30_000)

    with pytest.raises(ClockSkewError):
        await live_exchange.create_order(_buy_spot("cb-t-so1"))
    order = await live_exchange.create_order(_buy_spot("cb-t-so2"))

    assert order.client_order_id == "cb-t-so2"
    assert len(fake_binance.requests_to("/api/v3/order", "POST")) == 2
    assert fake_binance.requests_to("/api/v3/order", "GET") == []


@pytest.mark.parametrize(("key", "secret"), [("fake-api-key", "wrong"), ("other-key", "x")])
async def test_bad_credentials_raise_auth_error(
    fake_binance: FakeBinance, key: str, secret: str
) -> None:
    live = LiveExchange(live_config(fake_binance.url), api_key=key, api_secret=secret)
    try:
        with pytest.raises(AuthError):
            await live.fetch_futures_account()
    finally:
        await live.close()


async def test_no_change_of_margin_or_position_mode_is_not_an_error(
    fake_binance: FakeBinance, live_exchange: LiveExchange
) -> None:
    await live_exchange.set_margin_mode(PERP, MarginMode.CROSS)
    await live_exchange.set_position_mode(PositionMode.ONE_WAY)

    statuses = [r.status for r in fake_binance.requests if r.method == "POST"]
    assert statuses == [400, 400]  # -4046 and -4059 on the wire, success for the caller


async def test_mode_change_refused_by_the_exchange_raises(
    fake_binance: FakeBinance, live_exchange: LiveExchange
) -> None:
    await live_exchange.create_order(_sell_perp())

    with pytest.raises(OrderRejected) as raised:
        await live_exchange.set_position_mode(PositionMode.HEDGE)

    assert raised.value.code == -4068
