"""MarketData: requests per cycle, volume cache, funding history seeding and extension, books;
`gather_eagerly`."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from bot.clock import SimulatedClock
from bot.config import ScheduleConfig
from bot.domain.params import UniverseParams
from bot.domain.universe import select_universe
from bot.exchange.port import MarketDataSource
from bot.marketdata import MarketData, gather_eagerly
from tests import kit
from tests.unit.standin import MemoryStore, StandIn

D = Decimal
T0 = kit.T0 + timedelta(hours=1)  # one hour after a settlement at 00:00
EXPLICIT = UniverseParams(symbols=("BTC/USDT",))


def _market(
    clock: SimulatedClock, source: StandIn, universe: UniverseParams = EXPLICIT, **kwargs: Any
) -> MarketData:
    return MarketData(
        source,
        clock,
        universe=universe,
        schedule=ScheduleConfig(volume_refresh_seconds=3600),
        **kwargs,
    )


def test_stand_in_satisfies_the_port() -> None:
    assert isinstance(StandIn(SimulatedClock(T0)), MarketDataSource)


async def test_snapshot_makes_three_requests_per_cycle_and_caches_volumes() -> None:
    clock = SimulatedClock(T0)
    source = StandIn(clock)
    market = _market(clock, source)

    await market.snapshot()
    first = Counter(source.calls)
    clock.advance(timedelta(seconds=10))
    await market.snapshot()
    second = source.calls - first

    assert first["volumes_spot"] == first["volumes_perpetual"] == 1
    assert second == Counter({"funding": 1, "quotes_spot": 1, "quotes_perpetual": 1})


async def test_snapshot_refreshes_volumes_after_the_refresh_interval() -> None:
    clock = SimulatedClock(T0)
    source = StandIn(clock)
    market = _market(clock, source)
    await market.snapshot()

    clock.advance(timedelta(seconds=3599))
    await market.snapshot()
    before = source.calls["volumes_spot"]
    clock.advance(timedelta(seconds=1))
    snap = await market.snapshot()

    assert (before, source.calls["volumes_spot"]) == (1, 2)
    assert snap.volumes_24h["BTC/USDT:USDT"] == D("1000000000")


async def test_snapshot_seeds_history_for_universe_symbols_only() -> None:
    clock = SimulatedClock(T0)
    source = StandIn(clock)

    snap = await _market(clock, source, history_periods=5).snapshot()

    assert [s for s, _ in source.history_calls] == ["BTC/USDT:USDT"]
    rows = snap.funding_history["BTC/USDT:USDT"]
    assert len(rows) == 5
    assert rows[-1].funding_time == kit.T0  # the latest settlement before the snapshot
    assert "ETH/USDT:USDT" not in snap.funding_history


async def test_snapshot_automatic_universe_seeds_every_eligible_pair() -> None:
    clock = SimulatedClock(T0)
    source = StandIn(clock)
    auto = UniverseParams(symbols=(), min_quote_volume_24h=D(1))

    snap = await _market(clock, source, universe=auto).snapshot()

    assert set(snap.funding_history) == {"BTC/USDT:USDT", "ETH/USDT:USDT"}


async def test_snapshot_extends_history_when_next_funding_time_advances() -> None:
    clock = SimulatedClock(T0)
    source = StandIn(clock)
    market = _market(clock, source, history_periods=5)
    await market.snapshot()

    clock.advance(timedelta(hours=6))  # 07:00: same funding period, nothing to fetch
    await market.snapshot()
    calls_before = source.calls["history"]
    clock.advance(timedelta(hours=2))  # 09:00: the 08:00 settlement happened
    snap = await market.snapshot()

    assert calls_before == 1
    assert source.calls["history"] == 2
    assert source.history_calls[-1][1] == kit.T0 + timedelta(milliseconds=1)
    rows = snap.funding_history["BTC/USDT:USDT"]
    assert len(rows) == 5
    assert rows[-1].funding_time == kit.T0 + timedelta(hours=8)
    assert rows[-1].rate == D("0.0009")


async def test_snapshot_asks_again_for_a_settlement_not_yet_published() -> None:
    clock = SimulatedClock(T0 + timedelta(hours=6))
    source = StandIn(clock, publish_delay=timedelta(minutes=5))
    market = _market(clock, source)
    await market.snapshot()

    clock.set(kit.T0 + timedelta(hours=8, minutes=1))  # settled, not yet published
    first = await market.snapshot()
    clock.advance(timedelta(seconds=10))
    await market.snapshot()  # too soon to ask again
    calls_after_miss = source.calls["history"]
    clock.advance(timedelta(minutes=5))
    second = await market.snapshot()
    clock.advance(timedelta(minutes=5))
    await market.snapshot()

    assert first.funding_history["BTC/USDT:USDT"][-1].funding_time == kit.T0
    assert calls_after_miss == 2  # seed, miss
    assert second.funding_history["BTC/USDT:USDT"][-1].funding_time == kit.T0 + timedelta(hours=8)
    assert source.calls["history"] == 3  # then the hit; nothing after


async def test_snapshot_history_failure_is_retried_and_does_not_fail_the_snapshot(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = SimulatedClock(T0)
    source = StandIn(clock)
    source.fail_history = True
    market = _market(clock, source)

    first = await market.snapshot()
    source.fail_history = False
    second = await market.snapshot()

    assert first.funding_history == {}
    assert "Funding history of BTC/USDT:USDT unavailable" in caplog.text
    assert len(second.funding_history["BTC/USDT:USDT"]) == 21


async def test_snapshot_seeds_from_the_store_when_it_holds_the_latest_settlement() -> None:
    clock = SimulatedClock(T0)
    source = StandIn(clock)
    stored = source.settled("BTC/USDT:USDT", kit.T0 - timedelta(days=10))
    store = MemoryStore(stored)

    snap = await _market(clock, source, store=store, history_periods=7).snapshot()

    assert source.calls["history"] == 0
    assert [r.funding_time for r in snap.funding_history["BTC/USDT:USDT"]] == [
        r.funding_time for r in stored[-7:]
    ]


async def test_snapshot_writes_fetched_settlements_to_the_store() -> None:
    clock = SimulatedClock(T0)
    source = StandIn(clock)
    store = MemoryStore(source.settled("BTC/USDT:USDT", kit.T0 - timedelta(days=2))[:-1])
    market = _market(clock, source, store=store)

    await market.snapshot()  # the store lacks the 00:00 settlement: fetched and stored
    clock.advance(timedelta(hours=8))
    await market.snapshot()

    latest = await store.history("binance", "BTC/USDT:USDT", 1)
    assert source.calls["history"] == 2
    assert latest[0].funding_time == kit.T0 + timedelta(hours=8)


async def test_snapshot_fetches_books_for_the_universe_when_configured() -> None:
    clock = SimulatedClock(T0)
    source = StandIn(clock)

    snap = await _market(clock, source, book_depth=5).snapshot()

    assert set(snap.books) == {"BTC/USDT", "BTC/USDT:USDT"}
    assert len(snap.books["BTC/USDT"].asks) == 5


async def test_age_is_measured_on_the_injected_clock() -> None:
    clock = SimulatedClock(T0)
    market = _market(clock, StandIn(clock))
    assert market.age() is None

    snap = await market.snapshot()
    clock.advance(timedelta(seconds=42))

    assert market.age() == timedelta(seconds=42)
    assert market.last is snap


async def test_snapshot_keeps_history_of_watched_perpetuals_outside_the_universe() -> None:
    clock = SimulatedClock(T0)
    source = StandIn(clock)
    market = _market(clock, source)
    market.watch(["ETH/USDT:USDT"])  # e.g. a held hedge no longer in the universe

    snap = await market.snapshot()

    assert set(snap.funding_history) == {"BTC/USDT:USDT", "ETH/USDT:USDT"}


async def test_automatic_universe_fetches_history_only_for_the_top_n() -> None:
    clock = SimulatedClock(T0)
    source = StandIn(clock)
    source._pairs = [kit.pair(base) for base in ("BTC", "ETH", "SOL", "XRP", "DOGE", "ADA")]
    automatic = UniverseParams(
        symbols=(), min_quote_volume_24h=D(0), min_listing_age_days=0, top_n=2
    )
    market = _market(clock, source, automatic)

    await market.snapshot()

    assert len({symbol for symbol, _ in source.history_calls}) == 2


# --- gather_eagerly ------------------------------------------------------------------------


async def test_gather_eagerly_runs_coroutines_that_never_wait_in_the_calling_task() -> None:
    seen: list[object] = []

    async def answer(value: int) -> int:
        seen.append(asyncio.current_task())
        return value

    results = await gather_eagerly(answer(1), answer(2), answer(3))

    assert results == [1, 2, 3]
    assert seen == [asyncio.current_task()] * 3


async def test_gather_eagerly_runs_later_coroutines_while_one_waits() -> None:
    ready = asyncio.Event()
    tasks: list[object] = []

    async def waits() -> str:
        tasks.append(asyncio.current_task())
        await ready.wait()  # set by the next coroutine: sequential awaits would hang
        tasks.append(asyncio.current_task())
        return "waited"

    async def sets() -> str:
        await asyncio.sleep(0)
        ready.set()
        return "set"

    caller = asyncio.create_task(gather_eagerly(waits(), sets()))
    results = await asyncio.wait_for(caller, timeout=5)

    assert results == ["waited", "set"]
    assert tasks == [caller, caller]  # carried on in the task it started in


async def test_gather_eagerly_starts_every_coroutine_when_one_fails_at_once() -> None:
    started: list[str] = []

    async def fails() -> None:
        raise ValueError("no answer")

    async def answers() -> str:
        started.append("answers")
        return "ok"

    with pytest.raises(ValueError, match="no answer"):
        await gather_eagerly(fails(), answers())
    await asyncio.sleep(0)

    assert started == ["answers"]


async def test_gather_eagerly_raises_a_failure_of_a_later_coroutine() -> None:
    async def waits() -> str:
        await asyncio.sleep(0)
        return "ok"

    async def fails() -> None:
        await asyncio.sleep(0)
        raise ValueError("later failed")

    with pytest.raises(ValueError, match="later failed"):
        await gather_eagerly(waits(), fails())


async def test_gather_eagerly_cancelling_the_caller_cancels_what_still_runs() -> None:
    cancelled: list[str] = []

    async def forever(name: str) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(name)
            raise

    caller = asyncio.create_task(gather_eagerly(forever("first"), forever("second")))
    for _ in range(3):
        await asyncio.sleep(0)
    caller.cancel()

    with pytest.raises(asyncio.CancelledError):
        await caller
    assert sorted(cancelled) == ["first", "second"]


async def test_snapshot_carries_the_universe_it_selected_once() -> None:
    clock = SimulatedClock(T0)
    source = StandIn(clock)
    auto = UniverseParams(symbols=(), min_quote_volume_24h=D(0), top_n=1)
    market = _market(clock, source, universe=auto)

    snap = await market.snapshot()

    assert snap.universe is not None and snap.universe.params is auto
    bare = replace(snap, universe=None)  # the same inputs, selected afresh
    assert list(snap.universe.pairs) == select_universe(bare, auto)
    assert len(snap.universe.pairs) == 1
