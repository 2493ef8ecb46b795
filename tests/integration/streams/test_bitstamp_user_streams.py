"""Bitstamp's user data through real ccxt.pro against the fake: `websockets_token/`, the
private order and trade channels, a lost order response resolved by the stream, a gap."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal

import pytest

from bot.config import config_from_dict
from bot.domain import OrderRequest, OrderStatus, OrderType, Side
from bot.streams.bitstamp_source import BitstampStreamingSource
from bot.streams.bitstamp_user import BitstampUserStreams
from bot.streams.cross import bitstamp_source
from tests.fakes.bitstamp_fixtures import bitstamp_for, bitstamp_instruments, seed_bitstamp
from tests.fakes.bitstamp_server import DEFAULT_API_KEY, DEFAULT_API_SECRET, FakeBitstamp
from tests.fakes.bitstamp_streams import USER_ID
from tests.integration.streams.conftest import wait_for

D = Decimal
BUY = "/api/v2/buy/market/btcusd/"
STATUS = "/api/v2/order_status/"
TOKEN = "/api/v2/websockets_token/"


@dataclass
class Rig:
    fake: FakeBitstamp
    source: BitstampStreamingSource

    @property
    def user(self) -> BitstampUserStreams:
        assert self.source.user is not None
        return self.source.user

    async def started(self) -> None:
        await self.source.start()
        await wait_for(lambda: self.source.user is not None and self.user.live(), timeout=5)
        channels = {f"private-my_orders_btcusd-{USER_ID}", f"private-my_trades_btcusd-{USER_ID}"}
        await wait_for(lambda: channels <= self.fake.streams.subscribed(), timeout=5)


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    fake = FakeBitstamp(bitstamp_instruments())
    await fake.start()
    seed_bitstamp(fake)
    config = config_from_dict(
        {
            "venues": {"spot": "bitstamp", "bitstamp_api_url": fake.url,
                       "bitstamp_ws_url": fake.ws_url},
            "universe": {"symbols": ["BTC/USD"]},
            "streams": {"silence_seconds": 1.0, "reconnect_max_backoff_seconds": 0.4},
        }
    )  # fmt: skip
    source = bitstamp_source(
        bitstamp_for(fake), config, fake.clock, api_key=DEFAULT_API_KEY,
        api_secret=DEFAULT_API_SECRET,
    )  # fmt: skip
    try:
        yield Rig(fake, source)
    finally:
        await source.close()
        await fake.stop()


def _buy(cid: str) -> OrderRequest:
    return OrderRequest("BTC/USD", Side.BUY, OrderType.MARKET, D("0.019"), cid)


async def test_the_stream_reports_each_order_final_with_its_fills(rig: Rig) -> None:
    await rig.started()
    assert rig.fake.requests_to(TOKEN)  # a signed token request

    order = await rig.source.create_order(_buy("cb-1-sbo1"))

    await wait_for(lambda: rig.user.final_order("cb-1-sbo1") is not None, timeout=3)
    streamed = rig.user.final_order("cb-1-sbo1")
    assert streamed is not None
    assert (streamed.status, streamed.filled, streamed.exchange_order_id) == (
        OrderStatus.FILLED, D("0.019"), order.exchange_order_id,
    )  # fmt: skip
    assert streamed.average_price == order.average_price == D("49951")
    assert streamed.fee == order.fee and streamed.fee_asset == "USD"
    assert len(rig.fake.requests_to(TOKEN)) == 1  # one token a dial, not one an event
    rig.fake.clear_requests()
    assert await rig.source.fetch_order("BTC/USD", "cb-1-sbo1") == streamed
    assert rig.fake.requests_to(STATUS) == []  # answered by the stream


async def test_a_lost_order_response_is_resolved_by_the_stream_without_look_ups(
    rig: Rig,
) -> None:
    await rig.started()
    rig.fake.add_fault("drop", BUY, method="POST")
    rig.fake.clear_requests()

    order = await rig.source.create_order(_buy("cb-1-sbo2"))

    assert (order.status, order.filled) == (OrderStatus.FILLED, D("0.019"))
    assert rig.source.stream_fills == 1
    assert rig.fake.requests_to(STATUS) == []  # no look-up by client order id
    assert len(rig.fake.requests_to(BUY, "POST")) == 1  # and never sent again


async def test_after_a_gap_rest_answers_and_the_reconnect_asks_for_a_resync(rig: Rig) -> None:
    resyncs: list[int] = []
    rig.source.on_user_resync = lambda: resyncs.append(1)
    await rig.started()
    rig.fake.streams.hold_user_events = True  # the stream misses this order

    order = await rig.source.create_order(_buy("cb-1-sbo3"))

    assert order.status is OrderStatus.FILLED and rig.source.stream_fills == 0
    assert rig.user.final_order("cb-1-sbo3") is None
    rig.fake.clear_requests()
    assert (await rig.source.fetch_order("BTC/USD", "cb-1-sbo3")).filled == D("0.019")
    assert len(rig.fake.requests_to(STATUS)) == 1  # REST knows what the stream missed
    rig.fake.streams.hold_user_events = False
    await rig.fake.streams.drop_all()
    await wait_for(lambda: resyncs == [1] and rig.user.live(), timeout=5)
    assert len(rig.fake.requests_to(TOKEN)) == 1  # the new dial had a new token
