"""User-data streams through real ccxt.pro against the fake: fills at once, listenKeys."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from bot.domain import OrderRequest, OrderStatus, OrderType, Side
from bot.streams.exchange import StreamedExchange
from bot.streams.factory import with_streams
from tests.fakes.binance_server import DEFAULT_API_KEY, DEFAULT_API_SECRET, FakeBinance
from tests.fakes.fixtures import live_for, seed, standard_instruments
from tests.integration.streams.conftest import rig_config, wait_for


@pytest.fixture
async def rig() -> AsyncIterator[tuple[FakeBinance, StreamedExchange]]:
    fake = FakeBinance(standard_instruments(datetime.now(UTC)))
    await fake.start()
    seed(fake)
    config = rig_config(fake, listen_key_keepalive_minutes=0.01)  # every 0.6 s
    exchange = with_streams(
        live_for(fake), config, fake.clock, api_key=DEFAULT_API_KEY, api_secret=DEFAULT_API_SECRET
    )
    assert isinstance(exchange, StreamedExchange)
    try:
        await exchange.source.start()
        user = exchange.source.user
        assert user is not None
        await wait_for(lambda: user.live("user-spot") and user.live("user-futures"), timeout=5)
        yield fake, exchange
    finally:
        await exchange.close()
        await fake.stop()


def _buy(symbol: str, cid: str, qty: str = "0.01") -> OrderRequest:
    return OrderRequest(symbol, Side.BUY, OrderType.MARKET, Decimal(qty), cid)


@pytest.mark.parametrize(
    ("symbol", "path"), [("BTC/USDT", "/api/v3/order"), ("BTC/USDT:USDT", "/fapi/v1/order")]
)
async def test_a_fill_whose_response_is_lost_is_known_from_the_stream(
    rig: tuple[FakeBinance, StreamedExchange], symbol: str, path: str
) -> None:
    fake, exchange = rig
    fake.add_fault("drop", path, method="POST")

    order = await exchange.create_order(_buy(symbol, "cb-lost-1"))

    assert (order.status, order.filled) == (OrderStatus.FILLED, Decimal("0.01"))
    assert order.average_price is not None and order.average_price > 0
    assert order.fee is not None and order.fee > 0
    assert fake.requests_to(path, "GET") == []  # no REST look-up
    assert exchange.stream_fills == 1
    again = await exchange.fetch_order(symbol, "cb-lost-1")
    assert again == order and (exchange.stream_lookups, exchange.rest_lookups) == (1, 0)


async def test_the_listen_key_is_kept_alive_by_the_bot(
    rig: tuple[FakeBinance, StreamedExchange],
) -> None:
    fake, exchange = rig
    [key] = fake.streams.listen_keys.values()
    user = exchange.source.user
    assert user is not None
    # The fake counts a keep-alive when it arrives, the bot once the answer is back: wait for both.
    await wait_for(lambda: key.keepalives >= 2 and user.keepalives >= 2, timeout=4)


async def test_an_expired_listen_key_is_renewed_and_the_stream_reconnects(
    rig: tuple[FakeBinance, StreamedExchange],
) -> None:
    fake, exchange = rig
    user = exchange.source.user
    assert user is not None
    assert fake.streams.expire_listen_key() == 1
    await wait_for(lambda: len(fake.streams.listen_keys) == 2, timeout=4)
    health = exchange.source.health.get("user-futures")
    assert health is not None
    await wait_for(lambda: health.reconnects >= 1 and user.live("user-futures"), timeout=4)
    await exchange.create_order(_buy("BTC/USDT:USDT", "cb-after-renewal"))
    await wait_for(lambda: user.final_order("cb-after-renewal") is not None, timeout=3)


async def test_a_fill_while_the_user_stream_is_down_is_looked_up_once_by_rest(
    rig: tuple[FakeBinance, StreamedExchange],
) -> None:
    fake, exchange = rig
    user = exchange.source.user
    assert user is not None
    resyncs: list[int] = []
    exchange.source.on_user_resync = lambda: resyncs.append(1)
    fake.streams.refuse_for(1.5, prefix="/f/private/")
    await fake.streams.drop_all(prefix="/f/private/")
    await wait_for(lambda: not user.live("user-futures"), timeout=2)
    placed = await exchange.create_order(_buy("ETH/USDT:USDT", "cb-gap-1", "0.1"))
    assert placed.status is OrderStatus.FILLED
    await wait_for(lambda: user.live("user-futures"), timeout=6)
    assert resyncs == [1]  # the bot's reconciler checks its orders in flight by REST
    fake.clear_requests()

    found = await exchange.fetch_order("ETH/USDT:USDT", "cb-gap-1")

    assert (found.filled, found.status) == (Decimal("0.1"), OrderStatus.FILLED)
    assert len(fake.requests_to("/fapi/v1/order", "GET")) == 1
    assert user.final_order("cb-gap-1") is None  # never replayed, never counted twice
