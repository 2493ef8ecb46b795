"""One behaviour, every adapter: LiveExchange on the fake Binance, and PaperExchange whose
market data comes from a keyless LiveExchange on the same fake.

Both sides share one SimulatedClock and start from the same account (10 000 USDT in each
wallet, Binance's default leverage of 20, one-way mode), so results, error classes and
Binance codes must be the same.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import pytest

from bot.clock import SimulatedClock
from bot.config import PaperConfig
from bot.domain import (
    MarginMode,
    MarketKind,
    OrderRequest,
    OrderStatus,
    OrderType,
    PositionMode,
    PositionSide,
    Side,
)
from bot.domain.params import FeeParams
from bot.errors import (
    ExchangeError,
    InsufficientFunds,
    OrderNotFound,
    OrderRejected,
    PositionSideMismatch,
    ReduceOnlyRejected,
)
from bot.exchange.paper import PaperExchange
from bot.exchange.port import ExchangePort
from tests import kit
from tests.fakes.binance_server import FakeBinance
from tests.fakes.fixtures import WALLET_USDT, live_for, seed, standard_instruments

D = Decimal
SPOT, PERP = "BTC/USDT", "BTC/USDT:USDT"
T0 = kit.T0


@dataclass
class Venue:
    name: str
    exchange: ExchangePort
    fake: FakeBinance
    clock: SimulatedClock


@pytest.fixture(params=["live", "paper"])
async def venue(request: pytest.FixtureRequest) -> AsyncIterator[Venue]:
    clock = SimulatedClock(T0)
    async with FakeBinance(standard_instruments(T0), clock=clock) as fake:
        seed(fake)
        if request.param == "live":
            exchange: ExchangePort = live_for(fake, clock=clock)
        else:
            exchange = await PaperExchange.open(
                live_for(fake, keys=False, clock=clock),
                clock=clock,
                fees=FeeParams(),
                paper=PaperConfig(
                    initial_spot_quote=WALLET_USDT, initial_futures_quote=WALLET_USDT
                ),
            )
        try:
            yield Venue(request.param, exchange, fake, clock)
        finally:
            await exchange.close()


def market(symbol: str, side: Side, qty: str, cid: str, **kw: object) -> OrderRequest:
    return OrderRequest(symbol, side, OrderType.MARKET, D(qty), cid, **kw)  # type: ignore[arg-type]


async def test_instruments_and_pairs(venue: Venue) -> None:
    instruments = await venue.exchange.load_instruments()
    pairs = await venue.exchange.pairs()

    assert instruments[SPOT] == kit.spot("BTC") and instruments[PERP] == kit.perp("BTC")
    assert [p.key for p in pairs] == ["BTC/USDT", "ETH/USDT"]


async def test_funding_snapshot(venue: Venue) -> None:
    snapshot = await venue.exchange.fetch_funding_snapshot()

    btc, eth = snapshot["BTC/USDT:USDT"], snapshot["ETH/USDT:USDT"]
    assert set(snapshot) == {"BTC/USDT:USDT", "ETH/USDT:USDT"}
    assert (btc.funding_rate, btc.mark_price, btc.interval_hours) == (D("0.0001"), D("50010"), 8)
    assert (eth.interval_hours, eth.funding_cap) == (4, D("0.03"))
    assert btc.next_funding_time == T0 + timedelta(hours=8)


async def test_best_quotes(venue: Venue) -> None:
    spot = await venue.exchange.fetch_best_quotes(MarketKind.SPOT)
    perp = await venue.exchange.fetch_best_quotes(MarketKind.PERPETUAL)

    assert (spot[SPOT].bid, spot[SPOT].ask) == (D("50000"), D("50000.01"))
    assert (perp[PERP].bid, perp[PERP].ask) == (D("50010"), D("50010.1"))


async def test_spot_buy_fills_and_is_visible_everywhere(venue: Venue) -> None:
    order = await venue.exchange.create_order(market(SPOT, Side.BUY, "0.05", "cb-c-so1"))
    fetched = await venue.exchange.fetch_order(SPOT, "cb-c-so1")
    trades = await venue.exchange.fetch_my_trades(SPOT)
    balances = await venue.exchange.fetch_spot_balances()

    assert (order.status, order.filled, order.average_price) == (
        OrderStatus.FILLED,
        D("0.05"),
        D("50000.01"),
    )
    assert (fetched.status, fetched.filled, fetched.exchange_order_id) == (
        order.status,
        order.filled,
        order.exchange_order_id,
    )
    assert [(t.quantity, t.price, t.fee, t.fee_asset) for t in trades] == [
        (D("0.05"), D("50000.01"), D("0.00005"), "BTC")
    ]
    assert balances["BTC"].free == D("0.04995")
    assert balances["USDT"].free == WALLET_USDT - D("0.05") * D("50000.01")


async def test_perp_short_then_one_way_close(venue: Venue) -> None:
    await venue.exchange.fetch_funding_snapshot()  # the mark of the position

    await venue.exchange.create_order(market(PERP, Side.SELL, "0.01", "cb-c-po1"))
    opened = await venue.exchange.fetch_positions()
    account = await venue.exchange.fetch_futures_account()
    await venue.exchange.create_order(market(PERP, Side.BUY, "0.01", "cb-c-pc1", reduce_only=True))
    closed = await venue.exchange.fetch_positions()

    assert [(p.symbol, p.size, p.is_short, p.entry_price, p.leverage) for p in opened] == [
        (PERP, D("0.01"), True, D("50010"), 20)
    ]
    assert opened[0].margin_mode is MarginMode.CROSS and opened[0].mark_price == D("50010")
    assert account.initial_margin == D("0.01") * D("50010") / 20
    assert closed == []


async def test_hedge_mode_close_with_position_side(venue: Venue) -> None:
    await venue.exchange.set_position_mode(PositionMode.HEDGE)
    short = PositionSide.SHORT

    await venue.exchange.create_order(
        market(PERP, Side.SELL, "0.01", "cb-c-po1", position_side=short)
    )
    opened = await venue.exchange.fetch_positions()
    await venue.exchange.create_order(
        market(PERP, Side.BUY, "0.01", "cb-c-pc1", position_side=short)
    )

    assert await venue.exchange.fetch_position_mode() is PositionMode.HEDGE
    assert [(p.position_side, p.is_short) for p in opened] == [(short, True)]
    assert await venue.exchange.fetch_positions() == []


@pytest.mark.parametrize(
    ("request_", "error", "code"),
    [
        (market(SPOT, Side.BUY, "0.00001", "cb-c-x1"), OrderRejected, -1013),  # notional 0.5
        (market(SPOT, Side.BUY, "0.000015", "cb-c-x1"), OrderRejected, -1013),  # lot size
        (market(PERP, Side.SELL, "0.001", "cb-c-x1"), OrderRejected, -4164),  # notional 50
        (market(PERP, Side.SELL, "0.0015", "cb-c-x1"), OrderRejected, -1111),  # precision
        (market(SPOT, Side.BUY, "1", "cb-c-x1"), InsufficientFunds, -2010),
        (market(PERP, Side.SELL, "10", "cb-c-x1"), InsufficientFunds, -2019),
        (market(PERP, Side.BUY, "0.01", "cb-c-x1", reduce_only=True), ReduceOnlyRejected, -2022),
    ],
)
async def test_order_rejections(
    venue: Venue, request_: OrderRequest, error: type[ExchangeError], code: int
) -> None:
    with pytest.raises(ExchangeError) as raised:
        await venue.exchange.create_order(request_)

    assert (type(raised.value), raised.value.code) == (error, code)


async def test_position_side_mismatch_in_hedge_mode(venue: Venue) -> None:
    await venue.exchange.set_position_mode(PositionMode.HEDGE)

    with pytest.raises(PositionSideMismatch) as raised:
        await venue.exchange.create_order(market(PERP, Side.SELL, "0.01", "cb-c-po1"))

    assert raised.value.code == -4061


async def test_duplicate_client_order_id_is_rejected(venue: Venue) -> None:
    await venue.exchange.create_order(market(PERP, Side.SELL, "0.01", "cb-c-po1"))

    with pytest.raises(OrderRejected) as raised:
        await venue.exchange.create_order(market(PERP, Side.SELL, "0.01", "cb-c-po1"))

    assert raised.value.code == -4116


async def test_unknown_order_is_not_found(venue: Venue) -> None:
    with pytest.raises(OrderNotFound) as raised:
        await venue.exchange.fetch_order(PERP, "cb-c-none")

    assert raised.value.code == -2013


async def test_limit_order_rests_and_cancels(venue: Venue) -> None:
    limit = OrderRequest(SPOT, Side.BUY, OrderType.LIMIT, D("0.01"), "cb-c-sl1", D("45000"))

    placed = await venue.exchange.create_order(limit)
    cancelled = await venue.exchange.cancel_order(SPOT, "cb-c-sl1")

    assert (placed.status, placed.price) == (OrderStatus.NEW, D("45000"))
    assert cancelled.status is OrderStatus.CANCELED
    with pytest.raises(OrderNotFound) as raised:
        await venue.exchange.cancel_order(SPOT, "cb-c-none")
    assert raised.value.code == -2011


async def test_modes_leverage_and_no_change(venue: Venue) -> None:
    await venue.exchange.set_position_mode(PositionMode.ONE_WAY)  # no change: not an error
    await venue.exchange.set_margin_mode(PERP, MarginMode.CROSS)  # no change: not an error
    await venue.exchange.set_margin_mode(PERP, MarginMode.ISOLATED)
    await venue.exchange.set_leverage(PERP, 3)

    await venue.exchange.create_order(market(PERP, Side.SELL, "0.01", "cb-c-po1"))
    position = (await venue.exchange.fetch_positions())[0]

    assert await venue.exchange.fetch_position_mode() is PositionMode.ONE_WAY
    assert (position.leverage, position.margin_mode) == (3, MarginMode.ISOLATED)


async def test_funding_payment_of_a_short(venue: Venue) -> None:
    await venue.exchange.create_order(market(PERP, Side.SELL, "0.01", "cb-c-po1"))
    funding_time = T0 + timedelta(hours=1)
    venue.clock.advance(timedelta(hours=2))

    venue.fake.settle_funding(PERP, funding_time=funding_time, rate="0.0002", mark="50000")
    payments = await venue.exchange.fetch_funding_payments(T0)

    assert [(p.symbol, p.funding_time, p.amount, p.asset) for p in payments] == [
        (PERP, funding_time, D("0.0002") * D("50000") * D("0.01"), "USDT")
    ]


async def test_transfer_moves_usdt_between_wallets_and_refuses_overdrafts(venue: Venue) -> None:
    exchange = venue.exchange
    spot_before = (await exchange.fetch_spot_balances())["USDT"].free
    futures_before = (await exchange.fetch_futures_account()).wallet_balance

    await exchange.transfer("USDT", D("250.5"), from_wallet="spot", to_wallet="futures")
    with pytest.raises(InsufficientFunds):
        await exchange.transfer("USDT", D("1000000"), from_wallet="spot", to_wallet="futures")

    assert (await exchange.fetch_spot_balances())["USDT"].free == spot_before - D("250.5")
    assert (await exchange.fetch_futures_account()).wallet_balance == futures_before + D("250.5")
