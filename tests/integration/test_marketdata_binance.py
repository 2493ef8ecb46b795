"""MarketData over the real ccxt adapter and the fake Binance: requests per cycle, history.

The fake speaks Binance's REST protocol; `LiveExchange` talks to it through ccxt with the
config's URL overrides, so this checks the snapshot builder against real wire parsing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from bot.clock import SimulatedClock
from bot.config import ExchangeConfig, ScheduleConfig
from bot.domain import SettledFunding
from bot.domain.params import UniverseParams
from bot.exchange.ccxt_live import LiveExchange
from bot.marketdata import MarketData
from strategies.funding_carry import FundingCarryParams
from strategies.scan import scan_rows
from tests.fakes.binance_server import FakeBinance

D = Decimal
UNIVERSE = UniverseParams(symbols=("X001/USDT", "X003/USDT"))
PERPS = ("X001/USDT:USDT", "X003/USDT:USDT")


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock(datetime(2025, 10, 1, 9, 30, tzinfo=UTC))


@pytest.fixture
async def fake(clock: SimulatedClock) -> AsyncIterator[FakeBinance]:
    async with FakeBinance(clock=clock) as server:
        server.load_universe(6)
        for symbol in PERPS:
            state = server.market.funding[symbol]
            step = timedelta(hours=state.interval_hours)
            last = state.next_funding_time - step
            server.add_funding_history(
                symbol,
                [SettledFunding(symbol, last - step * k, D("0.0002")) for k in range(30)],
            )
        yield server


@pytest.fixture
async def exchange(fake: FakeBinance, clock: SimulatedClock) -> AsyncIterator[LiveExchange]:
    config = ExchangeConfig(spot_api_url=fake.url, futures_api_url=fake.url)
    live = LiveExchange(config, clock=clock)
    try:
        yield live
    finally:
        await live.close()


def _paths(fake: FakeBinance, since: int = 0) -> Counter[str]:
    return Counter(r.path for r in fake.requests[since:])


async def test_snapshot_over_ccxt_seeds_history_then_polls_with_three_requests(
    fake: FakeBinance, exchange: LiveExchange, clock: SimulatedClock
) -> None:
    market = MarketData(exchange, clock, universe=UNIVERSE, schedule=ScheduleConfig())

    first = await market.snapshot()
    seen = len(fake.requests)
    clock.advance(timedelta(seconds=10))
    await market.snapshot()

    assert _paths(fake)["/fapi/v1/fundingRate"] == 2  # the universe's two perpetuals only
    assert {s: len(rows) for s, rows in first.funding_history.items()} == dict.fromkeys(PERPS, 21)
    assert first.funding["X003/USDT:USDT"].interval_hours == 4
    assert _paths(fake, seen) == Counter(
        {
            "/fapi/v1/premiumIndex": 1,
            "/api/v3/ticker/bookTicker": 1,
            "/fapi/v1/ticker/bookTicker": 1,
        }
    )


async def test_snapshot_over_ccxt_extends_history_after_a_settlement(
    fake: FakeBinance, exchange: LiveExchange, clock: SimulatedClock
) -> None:
    market = MarketData(exchange, clock, universe=UNIVERSE, schedule=ScheduleConfig())
    await market.snapshot()
    settles_at = fake.market.funding["X001/USDT:USDT"].next_funding_time
    clock.set(settles_at + timedelta(seconds=5))
    fake.settle_funding("X001/USDT:USDT", rate="0.0007")
    seen = len(fake.requests)

    snap = await market.snapshot()

    assert _paths(fake, seen)["/fapi/v1/fundingRate"] == 1
    latest = snap.funding_history["X001/USDT:USDT"][-1]
    assert (latest.funding_time, latest.rate) == (settles_at, D("0.0007"))


async def test_scan_rows_over_ccxt_rank_the_fake_market(
    fake: FakeBinance, exchange: LiveExchange, clock: SimulatedClock
) -> None:
    market = MarketData(exchange, clock, universe=UNIVERSE, schedule=ScheduleConfig())

    rows = scan_rows(await market.snapshot(), FundingCarryParams(universe=UNIVERSE))

    assert len(rows) == 6
    nets = [r.net_apr for r in rows if r.net_apr is not None]
    assert nets == sorted(nets, reverse=True)
    assert {r.reason for r in rows if r.pair not in UNIVERSE.symbols} == {"not_listed"}
