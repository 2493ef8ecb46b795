"""Bitstamp's book streams through real ccxt.pro against the fake Bitstamp's WebSocket side:
`order_book_<pair>` data, heartbeats, `bts:request_reconnect`, drops, silence, bad frames."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal

import pytest

from bot.config import Config, config_from_dict
from bot.domain import MarketKind, OrderBook
from bot.streams.bitstamp_source import BitstampStreamingSource
from bot.streams.cross import bitstamp_source
from bot.streams.health import StreamHealth, StreamState
from tests.fakes.bitstamp_fixtures import bitstamp_for, bitstamp_instruments, seed_bitstamp
from tests.fakes.bitstamp_server import FakeBitstamp
from tests.integration.streams.conftest import wait_for

D = Decimal
TICKER = "/api/v2/ticker/"
BOOK = "/api/v2/order_book/btcusd/"


@dataclass
class Rig:
    fake: FakeBitstamp
    source: BitstampStreamingSource

    @property
    def health(self) -> StreamHealth:
        health = self.source.health.get("bitstamp-books")
        assert health is not None
        return health

    def live(self) -> bool:
        return self.health.state is StreamState.LIVE

    async def started(self) -> None:
        await self.source.start()
        await wait_for(
            lambda: self.live() and self.source.quote_problem("BTC/USD") is None, timeout=5
        )


def _config(fake: FakeBitstamp, **streams: object) -> Config:
    return config_from_dict(
        {
            "venues": {"spot": "bitstamp", "bitstamp_api_url": fake.url,
                       "bitstamp_ws_url": fake.ws_url},
            "universe": {"symbols": ["BTC/USD"]},
            "streams": {"silence_seconds": 1.0, "max_quote_age_seconds": 1.0,
                        "reconnect_max_backoff_seconds": 0.4, **streams},
        }
    )  # fmt: skip


def _bid(rig: Rig) -> Decimal | None:
    quote = rig.source.stream_quote("BTC/USD")
    return quote.bid if quote is not None else None


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    fake = FakeBitstamp(bitstamp_instruments())
    await fake.start()
    seed_bitstamp(fake)
    config = _config(fake)
    source = bitstamp_source(bitstamp_for(fake, keys=False), config, fake.clock)
    try:
        yield Rig(fake, source)
    finally:
        await source.close()
        await fake.stop()


async def test_books_and_quotes_come_from_the_stream_without_rest(rig: Rig) -> None:
    await rig.started()
    assert rig.fake.streams.subscribed() == {"order_book_btcusd", "order_book_usdtusd"}
    book = rig.fake.books["BTC/USD"]
    bids = ((D("49960"), D("1.5")), *book.bids[1:])
    asks = ((D("49962"), D("0.5")), *book.asks[1:])
    rig.fake.set_book(OrderBook("BTC/USD", bids, asks, book.timestamp))
    await wait_for(lambda: _bid(rig) == D("49960"), timeout=3)
    rig.fake.clear_requests()

    quotes = await rig.source.fetch_best_quotes(MarketKind.SPOT)
    depth = await rig.source.fetch_order_book("BTC/USD", 5)

    assert (quotes["BTC/USD"].bid, quotes["BTC/USD"].ask) == (D("49960"), D("49962"))
    assert quotes["BTC/USD"].bid_qty == D("1.5")  # sizes at the top, which ticker/ lacks
    assert quotes["USDT/USD"].mid == D("0.999")  # the rate's book is streamed too
    assert depth.bids[0] == (D("49960"), D("1.5")) and len(depth.asks) == 5
    assert rig.fake.requests == []
    assert rig.source.stream_answers >= 1


async def test_a_quiet_book_stays_current_through_heartbeats(rig: Rig) -> None:
    await rig.started()
    seen = rig.fake.streams.heartbeats
    await wait_for(lambda: rig.fake.streams.heartbeats >= seen + 4, timeout=5)  # ~2 s, no change

    assert rig.source.quote_problem("BTC/USD") is None  # older than 1 s, vouched for
    assert rig.live() and rig.health.reconnects == 0


async def test_request_reconnect_reconnects_and_resubscribes(rig: Rig) -> None:
    await rig.started()
    accepted = rig.fake.streams.accepted

    assert await rig.fake.streams.request_reconnect() == 1

    await wait_for(lambda: rig.health.reconnects == 1 and rig.live(), timeout=3)
    assert rig.fake.streams.accepted == accepted + 1
    await wait_for(lambda: len(rig.fake.streams.subscribed()) == 2, timeout=3)
    assert "bts:request_reconnect" in rig.health.last_error


async def test_a_dropped_connection_comes_back_within_3_seconds(rig: Rig) -> None:
    await rig.started()
    assert await rig.fake.streams.drop_all() == 1
    took = await wait_for(lambda: rig.health.reconnects == 1 and rig.live(), timeout=3)
    assert took < 3
    await wait_for(lambda: rig.source.quote_problem("BTC/USD") is None, timeout=3)


async def test_a_silent_stream_is_stale_falls_back_to_rest_and_recovers(rig: Rig) -> None:
    await rig.started()
    rig.fake.streams.silence(True)  # no books and no heartbeat answers

    await wait_for(lambda: rig.source.quote_problem("BTC/USD") is not None, timeout=3)
    rig.fake.clear_requests()
    quotes = await rig.source.fetch_best_quotes(MarketKind.SPOT)
    book = await rig.source.fetch_order_book("BTC/USD", 5)

    assert quotes["BTC/USD"].bid > 0
    assert len(rig.fake.requests_to(TICKER)) == 1  # REST took over
    assert len(rig.fake.requests_to(BOOK)) == 1 and book.bids
    await wait_for(lambda: not rig.live(), timeout=3)  # the watchdog dropped it
    rig.fake.streams.silence(False)
    await wait_for(lambda: rig.live() and rig.source.quote_problem("BTC/USD") is None, timeout=5)
    assert rig.health.reconnects >= 1


async def test_a_bad_book_frame_is_one_log_line_and_changes_nothing(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    await rig.started()
    before = rig.source.stream_quote("BTC/USD")
    bad = {"event": "data", "channel": "order_book_btcusd",
           "data": {"bids": [["50010", "1"]], "asks": [["50000", "1"]]}}  # fmt: skip
    with caplog.at_level(logging.WARNING):
        await rig.fake.streams.send_raw(json.dumps(bad))
        await wait_for(lambda: rig.health.bad_messages == 1, timeout=3)

    assert rig.source.stream_quote("BTC/USD") == before
    assert any("bid 50010 above best ask 50000" in r.getMessage() for r in caplog.records)
    assert rig.live()
