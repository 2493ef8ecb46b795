"""Pacing against Binance's budgets, on a simulated clock shared by the fake and the adapter.

The fake's rolling weight windows and the adapter's throttle read the same SimulatedClock,
so a minute of budget costs no real time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from bot.clock import SimulatedClock
from bot.domain import MarketKind, OrderRequest, OrderType, Side
from bot.errors import RateLimitedError
from bot.exchange.ccxt_live import LiveExchange
from tests import kit
from tests.fakes.binance_server import FakeBinance
from tests.fakes.fixtures import live_for, seed, standard_instruments

D = Decimal


@dataclass
class Paced:
    fake: FakeBinance
    live: LiveExchange
    clock: SimulatedClock


async def _paced(**config: Any) -> AsyncIterator[Paced]:
    clock = SimulatedClock(kit.T0)
    async with FakeBinance(standard_instruments(kit.T0), clock=clock) as fake:
        seed(fake)
        live = live_for(fake, clock=clock, **config)
        try:
            await live.load_instruments()
            yield Paced(fake, live, clock)
        finally:
            await live.close()


@pytest.fixture
async def paced() -> AsyncIterator[Paced]:
    async for p in _paced():
        yield p


@pytest.fixture
async def tight() -> AsyncIterator[Paced]:
    """Futures budget of 100 weight/min (80 for market data at the default headroom)."""
    async for p in _paced(futures_weight_per_minute=100):
        yield p


async def test_burst_of_500_market_data_calls_is_throttled_and_never_refused(
    paced: Paced,
) -> None:
    for i in range(500):
        if i % 3 == 0:
            await paced.live.fetch_funding_snapshot()
        else:
            await paced.live.fetch_best_quotes(
                MarketKind.SPOT if i % 3 == 1 else MarketKind.PERPETUAL
            )

    burst = paced.fake.requests[-500:]
    futures_weight = sum(r.weight for r in burst if r.path.startswith("/fapi/"))
    assert {r.status for r in paced.fake.requests} == {200}
    assert futures_weight > 2400 * 0.8  # more than a minute of our futures share...
    assert paced.clock.monotonic() >= 60  # ...so the throttle made the burst wait
    assert paced.fake.used_weight("futures") <= 2400 * 0.8


async def test_exchange_count_from_other_traffic_slows_us_down(paced: Paced) -> None:
    paced.fake.consume_weight("futures", 2300)  # another process on the same IP

    for _ in range(5):
        await paced.live.fetch_funding_snapshot()

    assert {r.status for r in paced.fake.requests} == {200}
    assert paced.clock.monotonic() >= 60  # waited for the exchange's count to come down


async def test_429_retry_after_delays_the_next_request_to_that_market(paced: Paced) -> None:
    paced.fake.add_fault("rate_limit", "/fapi/v1/premiumIndex", retry_after=2)
    with pytest.raises(RateLimitedError):
        await paced.live.fetch_funding_snapshot()
    refused_at = paced.fake.requests[-1].clock_at

    await paced.live.fetch_best_quotes(MarketKind.SPOT)
    spot_at = paced.fake.requests[-1].clock_at
    await paced.live.fetch_funding_snapshot()
    futures_at = paced.fake.requests[-1].clock_at

    assert spot_at == refused_at  # the other market is not held back
    assert futures_at - refused_at >= 2
    assert [r.status for r in paced.fake.requests[-3:]] == [429, 200, 200]


async def test_orders_do_not_queue_behind_market_data(tight: Paced) -> None:
    tight.fake.consume_weight("futures", 95)
    await tight.live.fetch_funding_snapshot()  # its header says the budget is used up
    before = tight.clock.monotonic()

    order = await tight.live.create_order(
        OrderRequest("BTC/USDT:USDT", Side.SELL, OrderType.MARKET, D("0.01"), "cb-t-po1")
    )
    at_order = tight.clock.monotonic()
    await tight.live.fetch_funding_snapshot()

    assert order.filled == D("0.01")
    assert at_order == before  # the order did not wait
    assert tight.clock.monotonic() > before  # the next market-data call did
    assert {r.status for r in tight.fake.requests} == {200}


async def test_order_during_retry_after_is_refused_without_sending(tight: Paced) -> None:
    tight.fake.add_fault("rate_limit", "/fapi/v1/premiumIndex", retry_after=30)
    with pytest.raises(RateLimitedError):
        await tight.live.fetch_funding_snapshot()

    with pytest.raises(RateLimitedError) as raised:
        await tight.live.create_order(
            OrderRequest("BTC/USDT:USDT", Side.SELL, OrderType.MARKET, D("0.01"), "cb-t-po1")
        )

    assert 0 < raised.value.retry_after <= 30
    assert tight.fake.requests_to("/fapi/v1/order") == []


async def test_funding_history_is_paced_within_its_own_5_minute_budget() -> None:
    async for p in _paced(weight_headroom="0.01"):  # 500 x 0.01 = 5 requests per 5 minutes
        start = p.clock.monotonic()
        for _ in range(12):
            await p.live.fetch_funding_history("BTC/USDT:USDT", p.clock.now())

        elapsed = p.clock.monotonic() - start
        sent = [r for r in p.fake.requests if r.path == "/fapi/v1/fundingRate"]

        assert len(sent) == 12
        assert elapsed >= 2 * 300  # 12 requests at 5 per window: two full waits
