"""LiveExchange market data over real ccxt and the fake Binance: mapping, requests, bad rows."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from decimal import Decimal

import pytest

from bot.domain import MarketKind, SettledFunding
from bot.errors import BadResponseError
from bot.exchange.ccxt_live import LiveExchange
from tests import kit
from tests.fakes.binance_server import FakeBinance
from tests.fakes.fixtures import live_for

D = Decimal


def _paths(fake: FakeBinance, since: int = 0) -> Counter[str]:
    return Counter(r.path for r in fake.requests[since:])


async def test_load_instruments_maps_filters_kinds_and_dates(
    fake_binance: FakeBinance, live_exchange: LiveExchange
) -> None:
    instruments = await live_exchange.load_instruments()

    assert instruments["BTC/USDT"] == kit.spot("BTC")
    assert instruments["BTC/USDT:USDT"] == kit.perp("BTC")
    dated = next(i for i in instruments.values() if i.kind is MarketKind.DATED_FUTURE)
    assert dated == fake_binance.market.instruments[dated.symbol]
    assert dated.expiry is not None and dated.listed_at is None


async def test_load_instruments_called_often_loads_markets_once(
    fake_binance: FakeBinance, live_exchange: LiveExchange
) -> None:
    for _ in range(3):
        await live_exchange.load_instruments()
        await live_exchange.pairs()

    assert _paths(fake_binance)["/api/v3/exchangeInfo"] == 1
    assert _paths(fake_binance)["/fapi/v1/exchangeInfo"] == 1


async def test_load_instruments_reload_fetches_again(
    fake_binance: FakeBinance, live_exchange: LiveExchange
) -> None:
    await live_exchange.load_instruments()
    fake_binance.set_instruments([*fake_binance.market.instruments.values(), kit.spot("SOL")])

    instruments = await live_exchange.load_instruments(reload=True)

    assert "SOL/USDT" in instruments
    assert _paths(fake_binance)["/api/v3/exchangeInfo"] == 2


async def test_pairs_need_spot_and_perpetual(live_exchange: LiveExchange) -> None:
    pairs = await live_exchange.pairs()

    assert [(p.spot.symbol, p.perp.symbol) for p in pairs] == [
        ("BTC/USDT", "BTC/USDT:USDT"),
        ("ETH/USDT", "ETH/USDT:USDT"),
    ]


async def test_funding_snapshot_is_one_request_with_intervals_and_caps(
    fake_binance: FakeBinance, live_exchange: LiveExchange
) -> None:
    await live_exchange.load_instruments()
    seen = len(fake_binance.requests)

    snapshot = await live_exchange.fetch_funding_snapshot()

    assert _paths(fake_binance, seen) == Counter({"/fapi/v1/premiumIndex": 1})
    assert set(snapshot) == {"BTC/USDT:USDT", "ETH/USDT:USDT"}  # the quarterly is dropped
    btc, eth = snapshot["BTC/USDT:USDT"], snapshot["ETH/USDT:USDT"]
    assert (btc.funding_rate, btc.mark_price, btc.index_price) == (
        D("0.0001"),
        D("50010"),
        D("50000"),
    )
    assert (btc.interval_hours, btc.funding_cap) == (8, None)  # absent from fundingInfo
    assert (eth.interval_hours, eth.funding_cap, eth.funding_floor) == (4, D("0.03"), D("-0.03"))


async def test_funding_intervals_refresh_hourly(fake_binance: FakeBinance) -> None:
    from bot.clock import SimulatedClock

    clock = SimulatedClock(kit.T0)
    live = live_for(fake_binance, clock=clock)
    try:
        await live.fetch_funding_snapshot()
        fake_binance.set_funding("BTC/USDT:USDT", interval_hours=1)
        stale = await live.fetch_funding_snapshot()
        clock.advance(timedelta(hours=1))
        fresh = await live.fetch_funding_snapshot()
    finally:
        await live.close()

    assert stale["BTC/USDT:USDT"].interval_hours == 8
    assert fresh["BTC/USDT:USDT"].interval_hours == 1
    assert _paths(fake_binance)["/fapi/v1/fundingInfo"] == 2


@pytest.mark.parametrize(
    ("patch", "kind"),
    [
        ({"markPrice": "NaN"}, "NaN mark"),
        ({"indexPrice": "0"}, "zero index"),
        ({"lastFundingRate": None}, "missing rate"),
        ({"nextFundingTime": "soon"}, "bad time"),
    ],
)
async def test_funding_snapshot_bad_row_is_dropped(
    fake_binance: FakeBinance,
    live_exchange: LiveExchange,
    patch: dict[str, object],
    kind: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake_binance.patch_row("premiumIndex", True, "ETHUSDT", **patch)

    snapshot = await live_exchange.fetch_funding_snapshot()

    assert set(snapshot) == {"BTC/USDT:USDT"}, kind
    assert "Dropping premiumIndex row of ETH/USDT:USDT" in caplog.text


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/fapi/v1/premiumIndex", {"unexpected": True}),
        ("/fapi/v1/premiumIndex", "oops"),
        ("/api/v3/ticker/bookTicker", {"symbol": "BTCUSDT"}),
        ("/fapi/v1/ticker/24hr", None),
    ],
)
async def test_malformed_whole_response_raises_bad_response(
    fake_binance: FakeBinance, live_exchange: LiveExchange, path: str, body: object
) -> None:
    await live_exchange.load_instruments()
    fake_binance.add_fault("body", path, body=body)

    with pytest.raises(BadResponseError):
        if path == "/fapi/v1/premiumIndex":
            await live_exchange.fetch_funding_snapshot()
        elif path == "/api/v3/ticker/bookTicker":
            await live_exchange.fetch_best_quotes(MarketKind.SPOT)
        else:
            await live_exchange.fetch_volumes_24h(MarketKind.PERPETUAL)


async def test_best_quotes_one_request_per_market(
    fake_binance: FakeBinance, live_exchange: LiveExchange
) -> None:
    await live_exchange.load_instruments()
    seen = len(fake_binance.requests)

    spot = await live_exchange.fetch_best_quotes(MarketKind.SPOT)
    perp = await live_exchange.fetch_best_quotes(MarketKind.PERPETUAL)

    assert _paths(fake_binance, seen) == Counter(
        {"/api/v3/ticker/bookTicker": 1, "/fapi/v1/ticker/bookTicker": 1}
    )
    assert (spot["BTC/USDT"].bid, spot["BTC/USDT"].ask) == (D("50000"), D("50000.01"))
    assert set(perp) == {"BTC/USDT:USDT", "ETH/USDT:USDT"}
    assert (perp["BTC/USDT:USDT"].bid, perp["BTC/USDT:USDT"].ask) == (D("50010"), D("50010.1"))


@pytest.mark.parametrize(
    "patch", [{"bidPrice": "-1"}, {"askQty": "NaN"}, {"askPrice": None}, {"bidPrice": "abc"}]
)
async def test_best_quotes_bad_row_is_dropped(
    fake_binance: FakeBinance, live_exchange: LiveExchange, patch: dict[str, object]
) -> None:
    fake_binance.patch_row("bookTicker", False, "ETHUSDT", **patch)

    quotes = await live_exchange.fetch_best_quotes(MarketKind.SPOT)

    assert set(quotes) == {"BTC/USDT"}


async def test_best_quotes_dated_futures_from_the_futures_ticker(
    live_exchange: LiveExchange,
) -> None:
    quotes = await live_exchange.fetch_best_quotes(MarketKind.DATED_FUTURE)

    assert [q.split("-")[0] for q in quotes] == ["BTC/USDT:USDT"]


async def test_volumes_24h_per_market(live_exchange: LiveExchange) -> None:
    volumes = await live_exchange.fetch_volumes_24h(MarketKind.PERPETUAL)

    assert volumes == {"BTC/USDT:USDT": D("900000000"), "ETH/USDT:USDT": D("900000000")}


async def test_order_book_has_the_requested_depth(live_exchange: LiveExchange) -> None:
    book = await live_exchange.fetch_order_book("BTC/USDT:USDT", depth=3)

    assert [p for p, _ in book.bids] == [D("50010"), D("50009.9"), D("50009.8")]
    assert [p for p, _ in book.asks] == [D("50010.1"), D("50010.2"), D("50010.3")]


async def test_funding_history_pages_by_start_time(
    fake_binance: FakeBinance, live_exchange: LiveExchange
) -> None:
    start = kit.T0
    rows = [
        SettledFunding("BTC/USDT:USDT", start + timedelta(hours=8 * i), D("0.0001"), D("50000"))
        for i in range(1500)
    ]
    fake_binance.add_funding_history("BTC/USDT:USDT", rows)

    history = await live_exchange.fetch_funding_history(
        "BTC/USDT:USDT", start, start + timedelta(hours=8 * 1199)
    )

    assert history == rows[:1200]
    assert _paths(fake_binance)["/fapi/v1/fundingRate"] == 2


async def test_public_methods_work_without_keys(fake_binance: FakeBinance) -> None:
    live = live_for(fake_binance, keys=False)
    try:
        snapshot = await live.fetch_funding_snapshot()
        quotes = await live.fetch_best_quotes(MarketKind.SPOT)
    finally:
        await live.close()

    assert snapshot and quotes
    assert all(r.api_key is None for r in fake_binance.requests)
