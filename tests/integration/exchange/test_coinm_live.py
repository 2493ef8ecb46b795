"""COIN-M over the real LiveExchange (ccxt) on the fake Binance's dapi endpoints.

What goes on the wire (contracts, reduceOnly / positionSide in both COIN-M position modes,
the MAIN_CMFUTURE universal transfer) and what comes back (coin wallets, positions in
contracts, fills with their fee in the coin, Binance's codes mapped to the bot's errors).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from bot.clock import SimulatedClock
from bot.domain import OrderRequest, OrderType, PositionMode, PositionSide, Side
from bot.errors import InsufficientFunds, OrderRejected, PositionSideMismatch, ReduceOnlyRejected
from bot.exchange.ccxt_live import LiveExchange
from tests import kit
from tests.fakes.binance_server import FakeBinance
from tests.fakes.fixtures import coinm_instruments, live_for, seed, seed_coinm

D = Decimal
DAPI_ORDER = "/dapi/v1/order"
SIGNING = {"timestamp", "signature", "recvWindow"}


@pytest.fixture(params=[PositionMode.ONE_WAY, PositionMode.HEDGE], ids=lambda m: m.value)
async def rig(request: pytest.FixtureRequest) -> AsyncIterator[tuple[FakeBinance, LiveExchange]]:
    clock = SimulatedClock(kit.T0)
    async with FakeBinance(
        coinm_instruments(kit.T0), clock=clock, position_mode=request.param
    ) as fake:
        seed(fake)
        seed_coinm(fake)
        live = live_for(fake, clock=clock, coinm=True)
        try:
            yield fake, live
        finally:
            await live.close()


def _symbol(live_instruments: dict[str, object]) -> str:
    return next(s for s in live_instruments if s.startswith("BTC/USD:BTC-"))


def _posts(fake: FakeBinance) -> list[dict[str, str]]:
    return [
        {k: v for k, v in r.params.items() if k not in SIGNING}
        for r in fake.requests_to(DAPI_ORDER, "POST")
    ]


async def test_buy_transfer_short_and_close_round_trip(
    rig: tuple[FakeBinance, LiveExchange],
) -> None:
    fake, live = rig
    symbol = _symbol(dict(await live.load_instruments()))
    mode = await live.fetch_coinm_position_mode()
    assert mode is fake.account.coinm_position_mode
    hedged = mode is PositionMode.HEDGE
    await live.set_leverage(symbol, 2)
    assert fake.account.leverage(symbol) == 2
    assert fake.requests_to("/dapi/v1/leverage", "POST")

    await live.create_order(
        OrderRequest("BTC/USDT", Side.BUY, OrderType.MARKET, D("0.02"), "cb-t-so1")
    )
    coin = fake.account.spot_balances()["BTC"].free
    await live.transfer("BTC", coin, from_wallet="spot", to_wallet="coinm")
    (transfer,) = fake.requests_to("/sapi/v1/asset/transfer", "POST")
    assert transfer.params["type"] == "MAIN_CMFUTURE"
    assert (await live.fetch_coinm_account("BTC")).wallet_balance == coin

    short = await live.create_order(
        OrderRequest(
            symbol,
            Side.SELL,
            OrderType.MARKET,
            D("10"),
            "cb-t-po1",
            position_side=PositionSide.SHORT if hedged else None,
        )
    )
    assert short.filled == 10 and short.average_price == D("51000.0")
    positions = await live.fetch_positions()
    (pos,) = [p for p in positions if p.symbol == symbol]
    assert (pos.size, pos.is_short, pos.notional) == (D(10), True, D(1000))
    looked_up = await live.fetch_order(symbol, "cb-t-po1")
    assert looked_up.filled == 10

    close = await live.create_order(
        OrderRequest(
            symbol,
            Side.BUY,
            OrderType.MARKET,
            D("10"),
            "cb-t-pc1",
            reduce_only=not hedged,
            position_side=PositionSide.SHORT if hedged else None,
        )
    )
    assert close.filled == 10
    open_post, close_post = _posts(fake)
    assert open_post["quantity"] == "10" and open_post["side"] == "SELL"
    if hedged:
        assert open_post["positionSide"] == close_post["positionSide"] == "SHORT"
        assert "reduceOnly" not in close_post
    else:
        assert close_post["reduceOnly"] == "true" and "positionSide" not in close_post

    fills = await live.fetch_my_trades(symbol, kit.T0)
    assert [f.fee_asset for f in fills] == ["BTC", "BTC"]
    opening = (D(10) * 100 / D("51000.0") * D("0.0005")).quantize(D("0.00000001"))
    assert fills[0].fee == opening
    wallet = (await live.fetch_coinm_account("BTC")).wallet_balance
    assert wallet == coin - opening - fills[1].fee + (fills[1].realized_pnl or 0)
    assert [p for p in await live.fetch_positions() if p.symbol == symbol] == []

    await live.transfer("BTC", wallet, from_wallet="coinm", to_wallet="spot")
    assert fake.requests_to("/sapi/v1/asset/transfer", "POST")[-1].params["type"] == (
        "CMFUTURE_MAIN"
    )
    assert fake.account.coinm_account("BTC").wallet_balance == 0


async def test_short_without_coin_margin_is_refused_2019(
    rig: tuple[FakeBinance, LiveExchange],
) -> None:
    fake, live = rig
    symbol = _symbol(dict(await live.load_instruments()))
    hedged = fake.account.coinm_position_mode is PositionMode.HEDGE
    with pytest.raises(InsufficientFunds) as exc:
        await live.create_order(
            OrderRequest(
                symbol,
                Side.SELL,
                OrderType.MARKET,
                D("10"),
                "cb-t-po1",
                position_side=PositionSide.SHORT if hedged else None,
            )
        )
    assert exc.value.code == -2019


async def test_mode_rules_come_back_as_the_bot_errors(
    rig: tuple[FakeBinance, LiveExchange],
) -> None:
    fake, live = rig
    symbol = _symbol(dict(await live.load_instruments()))
    fake.account.deposit("coinm", "BTC", D("1"))
    hedged = fake.account.coinm_position_mode is PositionMode.HEDGE
    wrong_side = None if hedged else PositionSide.SHORT
    with pytest.raises(PositionSideMismatch) as mismatch:
        await live.create_order(
            OrderRequest(
                symbol, Side.SELL, OrderType.MARKET, D("1"), "x1", position_side=wrong_side
            )
        )
    assert mismatch.value.code == -4061
    with pytest.raises(ReduceOnlyRejected):  # nothing to reduce (one-way) / reduceOnly (hedge)
        await live.create_order(
            OrderRequest(
                symbol,
                Side.BUY,
                OrderType.MARKET,
                D("1"),
                "x2",
                reduce_only=True,
                position_side=PositionSide.SHORT if hedged else None,
            )
        )


async def test_a_fraction_of_a_contract_is_refused_before_ccxt_sends_it(
    rig: tuple[FakeBinance, LiveExchange],
) -> None:
    fake, live = rig
    symbol = _symbol(dict(await live.load_instruments()))
    with pytest.raises(OrderRejected) as exc:
        await live.create_order(OrderRequest(symbol, Side.SELL, OrderType.MARKET, D("1.5"), "x"))
    assert exc.value.code == -1111
    assert fake.requests_to(DAPI_ORDER, "POST") == []


async def test_coinm_mode_is_read_and_set_apart_from_usdm(
    rig: tuple[FakeBinance, LiveExchange],
) -> None:
    fake, live = rig
    await live.load_instruments()
    other = (
        PositionMode.ONE_WAY
        if fake.account.coinm_position_mode is PositionMode.HEDGE
        else PositionMode.HEDGE
    )
    usdm = fake.account.position_mode
    await live.set_coinm_position_mode(other)
    await live.set_coinm_position_mode(other)  # "no need to change": not an error
    assert fake.account.coinm_position_mode is other
    assert fake.account.position_mode is usdm
    assert await live.fetch_coinm_position_mode() is other
