"""The replay over the real Binance history in ../shared/data (read in place, never copied).

Runs under CI=true (the `shared_data` fixture fails there when the data is missing).
"""

from __future__ import annotations

import gzip
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache
from itertools import pairwise
from pathlib import Path

import pytest

from bot.backtest import History, ReplaySource, SyntheticBook, load_history
from bot.backtest.series import HOUR_MS, from_ms, to_ms
from bot.clock import SimulatedClock
from bot.domain import MarketKind
from tests.replay_kit import damaged_copy, observe

pytestmark = pytest.mark.shared_data

D = Decimal
MS = timedelta(milliseconds=1)

# symbol: (funding first, funding last, funding rows, mark bar hours, mark from,
#          perp from, spot from), as in ../shared/data/README.md
COVERAGE = {
    "BTCUSDT": ("2019-09-10", "2024-12-31", 5819, 1, "2019-12-23", "2019-09-08", "2018-01-01"),
    "ETHUSDT": ("2019-11-27", "2024-12-31", 5585, 1, "2019-12-23", "2019-11-27", "2018-01-01"),
    "XRPUSDT": ("2020-01-06", "2024-12-31", 5465, 1, "2020-01-06", "2020-01-06", "2018-05-04"),
    "SOLUSDT": ("2023-01-01", "2024-12-31", 2193, 8, "2023-01-01", "2024-01-01", "2020-08-11"),
    "DOGEUSDT": ("2023-01-01", "2024-12-31", 2193, 8, "2023-01-01", "2024-01-01", "2019-07-05"),
}


@cache
def _load(root: Path) -> tuple[History, float]:
    started = time.perf_counter()
    history = load_history(root)
    return history, time.perf_counter() - started


@pytest.fixture
def history(shared_data: Path) -> History:
    return _load(shared_data)[0]


def _day(ms: int) -> str:
    return f"{from_ms(ms):%Y-%m-%d}"


def _raw_rows(path: Path) -> list[list[str]]:
    return [
        line.split(",") for line in gzip.decompress(path.read_bytes()).decode().splitlines()[1:]
    ]


def test_shared_history_loads_in_a_few_seconds(shared_data: Path) -> None:
    history, seconds = _load(shared_data)

    print(f"\nloaded {len(history.symbols)} symbols from {shared_data} in {seconds:.2f} s")
    assert sorted(history.symbols) == sorted(COVERAGE)
    assert seconds < 20


@pytest.mark.parametrize("name", sorted(COVERAGE))
def test_shared_history_coverage_matches_readme(history: History, name: str) -> None:
    first, last, rows, mark_hours, mark_from, perp_from, spot_from = COVERAGE[name]
    sym = history.symbols[name]

    assert len(sym.funding) == rows
    assert (_day(sym.funding.times[0]), _day(sym.funding.times[-1])) == (first, last)
    assert sym.mark is not None
    assert (sym.mark.bar_ms // HOUR_MS, _day(sym.mark.first_ms)) == (mark_hours, mark_from)
    assert (_day(sym.perp_first_raw_ms), _day(sym.spot.first_ms)) == (perp_from, spot_from)
    assert _day(sym.end_ms - 1) == "2024-12-31"


@pytest.mark.parametrize("name", sorted(COVERAGE))
def test_shared_history_every_funding_gap_is_8h(history: History, name: str) -> None:
    times = history.symbols[name].funding.times

    gaps = {b - a for a, b in pairwise(times)}

    assert gaps == {8 * HOUR_MS}


def test_shared_history_placeholder_perp_bars_skipped(history: History) -> None:
    btc, eth = history.symbols["BTCUSDT"], history.symbols["ETHUSDT"]

    assert from_ms(btc.listed_ms) == datetime(2019, 9, 10, 9, tzinfo=UTC)
    assert from_ms(eth.listed_ms) == datetime(2019, 11, 27, 11, tzinfo=UTC)
    assert btc.placeholder_bars == 40
    assert D("10000.0") not in btc.perp.opens[:48]
    for sym in history.symbols.values():
        spot_open = sym.spot.open_containing(sym.listed_ms)
        assert spot_open is not None
        # XRP's perp opened 2% over spot: a launch premium, not a placeholder
        assert abs(sym.perp.opens[0] / spot_open - 1) < D("0.03"), sym.exchange_symbol


async def test_shared_history_quotes_use_the_bar_open(shared_data: Path, history: History) -> None:
    raw = {row[0]: D(row[1]) for row in _raw_rows(shared_data / "binance/spot/BTCUSDT-1h.csv.gz")}
    clock = SimulatedClock(datetime(2024, 12, 31, 23, 59, 59, 999000, tzinfo=UTC))
    source = ReplaySource(history, clock)

    quote = (await source.fetch_best_quotes(MarketKind.SPOT))["BTC/USDT"]

    opened = raw["2024-12-31T23:00:00Z"]
    assert opened == D("93488.83")
    bid, ask, _ = SyntheticBook().top(opened, source.all_instruments()["BTC/USDT"])
    assert (quote.bid, quote.ask) == (bid, ask)


async def test_shared_history_volume_window_matches_raw_rows(
    shared_data: Path, history: History
) -> None:
    rows = _raw_rows(shared_data / "binance/perp/ETHUSDT-1h.csv.gz")
    now = datetime(2022, 6, 13, 12, 15, tzinfo=UTC)
    window = {
        f"{now.replace(minute=0) - timedelta(hours=h):%Y-%m-%dT%H:%M:%SZ}" for h in range(1, 25)
    }
    expected = sum((D(r[4]) * D(r[5]) for r in rows if r[0] in window), D(0))
    source = ReplaySource(history, SimulatedClock(now))

    volumes = await source.fetch_volumes_24h(MarketKind.PERPETUAL)

    assert volumes["ETH/USDT:USDT"] == expected
    assert expected > D(1_000_000_000)


async def test_shared_history_funding_never_from_the_future(history: History) -> None:
    btc = history.symbols["BTCUSDT"]
    worst = min(range(len(btc.funding)), key=lambda i: btc.funding.rates[i])
    settled = from_ms(btc.funding.times[worst])
    clock = SimulatedClock(settled - MS)
    source = ReplaySource(history, clock)

    before = (await source.fetch_funding_snapshot())["BTC/USDT:USDT"]
    rows_before = await source.fetch_funding_history(
        "BTC/USDT:USDT", settled - timedelta(days=3), settled + timedelta(days=3)
    )
    clock.set(settled)
    at_settlement = (await source.fetch_funding_snapshot())["BTC/USDT:USDT"]

    assert f"{settled:%Y-%m-%d}" == "2020-03-13"  # the crash named in the data README
    assert before.funding_rate != btc.funding.rates[worst]
    assert before.next_funding_time == settled
    assert max(r.funding_time for r in rows_before) < settled
    assert at_settlement.funding_rate == btc.funding.rates[worst] < D("-0.002")


async def test_shared_history_month_of_hours_every_listed_pair_quoted(history: History) -> None:
    start = datetime(2024, 3, 1, tzinfo=UTC)
    clock = SimulatedClock(start)
    source = ReplaySource(history, clock)

    for when in source.event_times(start, start + timedelta(days=30)):
        clock.set(when)
        keys = {p.key for p in await source.pairs()}
        funding = await source.fetch_funding_snapshot()
        spot = await source.fetch_best_quotes(MarketKind.SPOT)
        perp = await source.fetch_best_quotes(MarketKind.PERPETUAL)
        assert len(keys) == 5
        assert set(spot) == keys
        assert {s.split(":")[0] for s in perp} == {s.split(":")[0] for s in funding} == keys
        for info in funding.values():
            assert abs(info.mark_price / info.index_price - 1) < D("0.02")
            assert info.next_funding_time > when and info.interval_hours == 8


async def test_shared_history_damaged_after_cutoff_answers_before_unchanged(
    shared_data: Path, history: History, tmp_path: Path
) -> None:
    cutoff = datetime(2024, 6, 1, tzinfo=UTC)
    damaged_dir = damaged_copy(shared_data, tmp_path / "damaged", cutoff)
    clean_clock = SimulatedClock(cutoff - timedelta(days=3))
    damaged_clock = SimulatedClock(cutoff - timedelta(days=3))
    clean = ReplaySource(history, clean_clock)
    damaged = ReplaySource(load_history(damaged_dir), damaged_clock)
    hours = [cutoff - timedelta(hours=h) for h in range(48, 0, -1)]
    times = sorted({*hours, cutoff - timedelta(minutes=30), cutoff - MS})

    for i, when in enumerate(times):
        full = i % 12 == 0 or when == times[-1]
        seen = await observe(clean, clean_clock, when, full_history=full)
        assert len(seen["perp"]) == 5
        assert seen == await observe(damaged, damaged_clock, when, full_history=full), when

    at_cutoff = await observe(clean, clean_clock, cutoff)
    assert at_cutoff["spot"] != (await observe(damaged, damaged_clock, cutoff))["spot"]
    assert to_ms(cutoff) in history.symbols["BTCUSDT"].funding.times
