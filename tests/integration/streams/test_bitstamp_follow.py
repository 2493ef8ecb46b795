"""Bitstamp's subscriptions follow the universe on the running connections: a pair that
enters gets its book and private channels subscribed there, a leaving one is unsubscribed
(real ccxt.pro against the fake Bitstamp WebSocket)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from decimal import Decimal

import pytest

from bot.config import config_from_dict
from bot.domain import OrderRequest, OrderType, Pair, Side
from bot.streams.bitstamp_source import BitstampStreamingSource
from bot.streams.cross import bitstamp_source
from bot.streams.health import StreamState
from tests import kit
from tests.fakes.bitstamp_fixtures import bitstamp_for, bitstamp_instruments, seed_bitstamp
from tests.fakes.bitstamp_server import DEFAULT_API_KEY, DEFAULT_API_SECRET, FakeBitstamp
from tests.fakes.bitstamp_streams import USER_ID
from tests.integration.streams.conftest import wait_for

D = Decimal


def _private(pair_id: str) -> set[str]:
    return {f"private-my_orders_{pair_id}-{USER_ID}", f"private-my_trades_{pair_id}-{USER_ID}"}


@dataclass
class Rig:
    fake: FakeBitstamp
    source: BitstampStreamingSource
    pairs: dict[str, Pair]
    universe: list[Pair]

    async def pair_source(self) -> Sequence[Pair]:
        return list(self.universe)

    def subscribed(self) -> set[str]:
        return self.fake.streams.subscribed()

    def live(self) -> bool:
        books, user = self.source.books, self.source.user
        return (
            books is not None and books.supervisor is not None
            and books.supervisor.health.state is StreamState.LIVE
            and user is not None and user.live()
        )  # fmt: skip


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    fake = FakeBitstamp(bitstamp_instruments())
    await fake.start()
    seed_bitstamp(fake)
    config = config_from_dict(
        {
            "venues": {"spot": "bitstamp", "bitstamp_api_url": fake.url,
                       "bitstamp_ws_url": fake.ws_url},
            "universe": {"symbols": ["BTC/USD", "ETH/USD"]},  # the pairs come and go
            "streams": {"silence_seconds": 1.0, "reconnect_max_backoff_seconds": 0.4},
        }
    )  # fmt: skip
    source = bitstamp_source(
        bitstamp_for(fake), config, fake.clock, api_key=DEFAULT_API_KEY,
        api_secret=DEFAULT_API_SECRET,
    )  # fmt: skip
    spot = await source.load_instruments()
    pairs = {base: Pair(spot=spot[f"{base}/USD"], perp=kit.perp(base)) for base in ("BTC", "ETH")}
    rig = Rig(fake, source, pairs, [pairs["BTC"]])
    source.pair_source = rig.pair_source
    try:
        yield rig
    finally:
        await source.close()
        await fake.stop()


async def test_entering_and_leaving_pairs_are_subscribed_on_the_running_connections(
    rig: Rig,
) -> None:
    await rig.source.start()
    start = {"order_book_btcusd", "order_book_usdtusd"} | _private("btcusd")
    await wait_for(lambda: rig.live() and start <= rig.subscribed(), timeout=5)
    dials = rig.fake.streams.accepted
    assert "order_book_ethusd" not in rig.subscribed()

    rig.universe = [rig.pairs["BTC"], rig.pairs["ETH"]]  # ETH/USD enters
    await rig.source.follow(rig.universe)

    await wait_for(
        lambda: {"order_book_ethusd"} | _private("ethusd") <= rig.subscribed(), timeout=5
    )
    await wait_for(lambda: rig.source.quote_problem("ETH/USD") is None, timeout=5)
    assert rig.fake.streams.accepted == dials  # on the running connections, no new dial
    user = rig.source.user
    assert user is not None
    await rig.source.create_order(
        OrderRequest("ETH/USD", Side.BUY, OrderType.MARKET, D("0.5"), "cb-1-sbo1")
    )
    await wait_for(lambda: user.final_order("cb-1-sbo1") is not None, timeout=3)

    rig.universe = [rig.pairs["ETH"]]  # BTC/USD leaves; USDT/USD stays (ETH/USD is in USD)
    await rig.source.follow(rig.universe)

    gone = {"order_book_btcusd"} | _private("btcusd")
    await wait_for(lambda: not gone & rig.subscribed(), timeout=5)
    assert {"order_book_ethusd", "order_book_usdtusd"} | _private("ethusd") <= rig.subscribed()
    assert rig.source.quote_problem("BTC/USD") == "BTC/USD is not subscribed on Bitstamp"
    assert rig.fake.streams.accepted == dials
    books = rig.source.books
    assert books is not None and books.supervisor is not None
    assert books.supervisor.health.reconnects == 0 and user.live()


async def test_a_reconnect_after_following_subscribes_the_new_set(rig: Rig) -> None:
    await rig.source.start()
    await wait_for(lambda: rig.live() and _private("btcusd") <= rig.subscribed(), timeout=5)
    rig.universe = [rig.pairs["ETH"]]
    await rig.source.follow(rig.universe)
    await wait_for(lambda: _private("ethusd") <= rig.subscribed(), timeout=5)

    await rig.fake.streams.drop_all()

    want = {"order_book_ethusd", "order_book_usdtusd"} | _private("ethusd")
    await wait_for(lambda: rig.live() and rig.subscribed() == want, timeout=5)
