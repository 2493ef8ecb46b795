"""Streams across venues, built by the factory of `carrybot run` (paper mode): Bitstamp's
books for the spot leg and Binance's book tickers and mark prices for the perpetual, under
the VenueRouter, one health board and one entry gate over both."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from bot.clock import SystemClock
from bot.config import Config, config_from_dict
from bot.domain import MarketKind, OrderRequest, OrderType, Side
from bot.exchange.factory import build_exchange
from bot.exchange.venues import VenueRouter
from bot.settings import Mode, Settings
from bot.streams.bitstamp_source import BitstampStreamingSource
from bot.streams.cross import CrossVenueStreams
from bot.streams.factory import find_streaming_source, streams_off_reason
from bot.streams.gate import EntryGate
from bot.streams.health import StreamState
from bot.web.live import stream_health
from tests.fakes.binance_server import DEFAULT_API_KEY as BINANCE_KEY
from tests.fakes.binance_server import DEFAULT_API_SECRET as BINANCE_SECRET
from tests.fakes.binance_server import FakeBinance
from tests.fakes.bitstamp_fixtures import bitstamp_instruments, seed_bitstamp
from tests.fakes.bitstamp_server import DEFAULT_API_KEY, DEFAULT_API_SECRET, FakeBitstamp
from tests.fakes.fixtures import seed, standard_instruments
from tests.integration.streams.conftest import wait_for

D = Decimal
TICKER = "/api/v2/ticker/"


@dataclass
class Cross:
    binance: FakeBinance
    bitstamp: FakeBitstamp
    router: VenueRouter
    view: CrossVenueStreams
    gate: EntryGate

    def all_live(self) -> bool:
        streams = self.view.health.all()
        return len(streams) == 3 and all(h.state is StreamState.LIVE for h in streams)


def _config(
    binance: FakeBinance,
    bitstamp: FakeBitstamp,
    symbols: tuple[str, ...] = ("BTC/USD",),
    **venues: object,
) -> Config:
    return config_from_dict(
        {
            "exchange": {"spot_api_url": binance.url, "futures_api_url": binance.url},
            "venues": {"spot": "bitstamp", "bitstamp_api_url": bitstamp.url,
                       "bitstamp_ws_url": bitstamp.ws_url, **venues},
            "universe": {"symbols": list(symbols)},
            "streams": {"futures_ws_url": binance.futures_ws_url, "silence_seconds": 1.0,
                        "settle_seconds": 0.5, "max_quote_age_seconds": 1.0,
                        "reconnect_max_backoff_seconds": 0.4},
        }
    )  # fmt: skip


@pytest.fixture
async def cross() -> AsyncIterator[Cross]:
    binance = FakeBinance(standard_instruments(datetime.now(UTC)))
    bitstamp = FakeBitstamp(bitstamp_instruments())
    await binance.start()
    await bitstamp.start()
    seed(binance)
    seed_bitstamp(bitstamp)
    config = _config(binance, bitstamp)
    router = await build_exchange(Mode.PAPER, Settings(), config, SystemClock())
    assert isinstance(router, VenueRouter)
    view = find_streaming_source(router)
    assert isinstance(view, CrossVenueStreams)
    try:
        yield Cross(
            binance, bitstamp, router, view, EntryGate(config.streams, SystemClock(), view, {})
        )
    finally:
        await router.close()
        await binance.stop()
        await bitstamp.stop()


def test_without_a_bitstamp_stream_url_a_fake_bitstamp_config_polls() -> None:
    config = config_from_dict(
        {"venues": {"spot": "bitstamp", "bitstamp_api_url": "http://127.0.0.1:1"}}
    )
    reason = streams_off_reason(config)
    assert reason is not None and "bitstamp_ws_url" in reason
    assert streams_off_reason(config_from_dict({"venues": {"spot": "bitstamp"}})) is None


async def test_both_legs_stream_and_the_gate_reads_both_venues(cross: Cross) -> None:
    spot = await cross.router.fetch_best_quotes(MarketKind.SPOT)  # starts Bitstamp's streams
    await cross.router.fetch_best_quotes(MarketKind.PERPETUAL)  # and Binance's
    await wait_for(cross.all_live, timeout=5)
    await wait_for(lambda: cross.gate("BTC/USD") is None, timeout=5)
    assert {h.name for h in cross.view.health.all()} == {"bitstamp-books", "perp-0", "mark"}
    assert {h["name"] for h in stream_health(cross.router)} == {"bitstamp-books", "perp-0", "mark"}
    assert cross.view.health.summary().startswith("streams 3/3 live")  # the heartbeat's
    assert cross.bitstamp.streams.subscribed() == {"order_book_btcusd", "order_book_usdtusd"}
    assert cross.binance.streams.subscribed() == {"btcusdt@bookTicker", "!markPrice@arr@1s"}
    cross.bitstamp.clear_requests()

    spot = await cross.router.fetch_best_quotes(MarketKind.SPOT)
    perp = await cross.router.fetch_best_quotes(MarketKind.PERPETUAL)

    assert cross.bitstamp.requests_to(TICKER) == []  # from Bitstamp's stream
    assert abs(spot["BTC/USD"].mid - D("49950.5") / D("0.999")) < D("1e-6")  # USDT terms
    assert cross.router.usd_per_usdt == D("0.999")
    assert perp["BTC/USDT:USDT"].bid > 0

    await cross.bitstamp.streams.request_reconnect()
    await wait_for(lambda: cross.gate("BTC/USD") is not None, timeout=3)
    reason = cross.gate("BTC/USD") or ""
    assert "settling" in reason or "bitstamp-books" in reason
    await wait_for(lambda: cross.gate("BTC/USD") is None, timeout=5)

    cross.bitstamp.streams.refuse_for(30)
    await cross.bitstamp.streams.drop_all()
    await wait_for(lambda: "bitstamp-books" in (cross.gate("BTC/USD") or ""), timeout=3)
    assert "REST data only" in (cross.gate("BTC/USD") or "")
    quotes = await cross.router.fetch_best_quotes(MarketKind.SPOT)
    assert quotes["BTC/USD"].bid > 0 and len(cross.bitstamp.requests_to(TICKER)) == 1


async def test_live_mode_streams_both_venues_user_data_and_trades_through_them() -> None:
    binance = FakeBinance(standard_instruments(datetime.now(UTC)))
    bitstamp = FakeBitstamp(bitstamp_instruments())
    await binance.start()
    await bitstamp.start()
    seed(binance)
    seed_bitstamp(bitstamp)
    config = _config(binance, bitstamp)
    keys = Settings(
        binance_api_key=BINANCE_KEY, binance_api_secret=BINANCE_SECRET,
        bitstamp_api_key=DEFAULT_API_KEY, bitstamp_api_secret=DEFAULT_API_SECRET,
    )  # fmt: skip
    router = await build_exchange(Mode.LIVE, keys, config, SystemClock())
    try:
        assert isinstance(router, VenueRouter)
        spot = router.spot_venue
        assert isinstance(spot, BitstampStreamingSource)
        view = find_streaming_source(router)
        assert isinstance(view, CrossVenueStreams)
        await router.fetch_best_quotes(MarketKind.SPOT)
        await router.fetch_best_quotes(MarketKind.PERPETUAL)
        names = {"bitstamp-books", "bitstamp-user", "perp-0", "mark", "user-futures"}
        await wait_for(
            lambda: {h.name for h in view.health.all() if h.state is StreamState.LIVE} == names,
            timeout=5,
        )

        order = await router.create_order(
            OrderRequest("BTC/USD", Side.BUY, OrderType.MARKET, D("0.019"), "cb-9-sbo1")
        )

        assert order.filled == D("0.019") and order.average_price is not None
        assert abs(order.average_price - D("49951") / D("0.999")) < D("1e-9")  # USDT terms
        assert spot.user is not None
        await wait_for(lambda: spot.user.final_order("cb-9-sbo1") is not None, timeout=3)  # type: ignore[union-attr]
    finally:
        await router.close()
        await binance.stop()
        await bitstamp.stop()


async def _refresh_until(router: VenueRouter, key: str, *, listed: bool) -> None:
    """The bot's instrument refresh, repeated until it sees the change (ccxt keeps
    Bitstamp's markets for 1 s)."""
    started = time.perf_counter()
    while (key in {p.key for p in await router.pairs()}) != listed:
        assert time.perf_counter() - started < 5, f"{key} listed={listed} not seen"
        await asyncio.sleep(0.1)
        await router.load_instruments(reload=True)


async def test_both_venues_streams_follow_a_pair_listed_and_delisted_on_bitstamp() -> None:
    binance = FakeBinance(standard_instruments(datetime.now(UTC)))
    bitstamp = FakeBitstamp(bitstamp_instruments())
    eth = bitstamp.instruments["ETH/USD"]
    bitstamp.instruments["ETH/USD"] = dataclasses.replace(eth, active=False)
    await binance.start()
    await bitstamp.start()
    seed(binance)
    seed_bitstamp(bitstamp)
    config = _config(binance, bitstamp, ("BTC/USD", "ETH/USD"))
    router = await build_exchange(Mode.PAPER, Settings(), config, SystemClock())
    try:
        assert isinstance(router, VenueRouter)
        await router.fetch_best_quotes(MarketKind.SPOT)
        await router.fetch_best_quotes(MarketKind.PERPETUAL)
        await wait_for(
            lambda: bitstamp.streams.subscribed() == {"order_book_btcusd", "order_book_usdtusd"},
            timeout=5,
        )
        dials = bitstamp.streams.accepted

        bitstamp.instruments["ETH/USD"] = eth  # ETH/USD is listed: the pair enters
        await _refresh_until(router, "ETH/USD", listed=True)

        await wait_for(lambda: "order_book_ethusd" in bitstamp.streams.subscribed(), timeout=5)
        await wait_for(lambda: "ethusdt@bookTicker" in binance.streams.subscribed(), timeout=5)
        assert bitstamp.streams.accepted == dials  # on Bitstamp's running connection

        bitstamp.instruments["ETH/USD"] = dataclasses.replace(eth, active=False)  # delisted
        await _refresh_until(router, "ETH/USD", listed=False)

        await wait_for(lambda: "order_book_ethusd" not in bitstamp.streams.subscribed(), timeout=5)
        await wait_for(lambda: "ethusdt@bookTicker" not in binance.streams.subscribed(), timeout=5)
        assert {"order_book_btcusd", "order_book_usdtusd"} <= bitstamp.streams.subscribed()
    finally:
        await router.close()
        await binance.stop()
        await bitstamp.stop()
