"""ReplaySource on the synthetic history: bar-open prices, funding, marks, volumes, books."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from bot.backtest import DataRange, ReplaySource, SyntheticBook, load_history
from bot.clock import SimulatedClock
from bot.domain import MarketKind
from bot.errors import BadResponseError, FatalExchangeError
from bot.exchange.port import MarketDataSource
from tests.replay_kit import damaged_copy, observe
from tests.unit.backtest.synth import (
    BTC_LISTED_HOUR,
    HOURS,
    SOL_LISTED_HOUR,
    T0,
    at,
    btc_mark_open,
    btc_perp_open,
    btc_perp_volume,
    btc_rate,
    btc_spot_close,
    btc_spot_open,
    btc_spot_volume,
    sol_mark_open,
    sol_perp_open,
    sol_rate,
)

D = Decimal
BTC, BTC_PERP, SOL_PERP = "BTC/USDT", "BTC/USDT:USDT", "SOL/USDT:USDT"
MS = timedelta(milliseconds=1)


def test_replay_source_implements_market_data_source(source: ReplaySource) -> None:
    assert isinstance(source, MarketDataSource)


async def test_best_quotes_mid_hour_use_that_hours_open(
    source: ReplaySource, clock: SimulatedClock
) -> None:
    clock.set(at(10.75))

    quotes = await source.fetch_best_quotes(MarketKind.SPOT)

    q = quotes[BTC]
    bid, ask, qty = SyntheticBook().top(btc_spot_open(10), source.all_instruments()[BTC])
    assert (q.bid, q.ask, q.bid_qty, q.ask_qty, q.timestamp) == (bid, ask, qty, qty, at(10.75))
    assert q.bid < btc_spot_open(10) < q.ask


async def test_best_quotes_last_ms_of_hour_still_that_open_then_next(
    source: ReplaySource, clock: SimulatedClock
) -> None:
    clock.set(at(11) - MS)
    before = (await source.fetch_best_quotes(MarketKind.PERPETUAL))[BTC_PERP]
    clock.set(at(11))
    after = (await source.fetch_best_quotes(MarketKind.PERPETUAL))[BTC_PERP]

    assert before.bid < btc_perp_open(10) < before.ask
    assert after.bid < btc_perp_open(11) < after.ask


async def test_best_quotes_configured_spread_and_size(
    history_dir: Path, clock: SimulatedClock
) -> None:
    book = SyntheticBook(half_spread_bps=D(10), top_notional=D(2000))
    source = ReplaySource(load_history(history_dir), clock, book=book)
    clock.set(at(20))

    q = (await source.fetch_best_quotes(MarketKind.SPOT))[BTC]

    assert (q.bid, q.ask) == (D("1019.34"), D("1021.40"))  # 1020.37 -/+ 0.1%, outwards
    assert q.bid_qty == D("1.96007")  # 2000 / 1020.37 on the 0.00001 step


async def test_best_quotes_before_listing_perp_absent_spot_present(
    source: ReplaySource, clock: SimulatedClock
) -> None:
    clock.set(at(BTC_LISTED_HOUR) - MS)

    perp = await source.fetch_best_quotes(MarketKind.PERPETUAL)
    spot = await source.fetch_best_quotes(MarketKind.SPOT)

    assert perp == {}
    assert sorted(spot) == ["BTC/USDT", "SOL/USDT"]


async def test_best_quotes_spot_gap_and_after_end_absent(
    source: ReplaySource, clock: SimulatedClock
) -> None:
    clock.set(at(30.5))
    in_gap = await source.fetch_best_quotes(MarketKind.SPOT)
    clock.set(at(HOURS))
    after_end = await source.fetch_best_quotes(MarketKind.SPOT)

    assert sorted(in_gap) == ["SOL/USDT"]
    assert after_end == {}


async def test_best_quotes_dated_futures_empty(source: ReplaySource) -> None:
    assert await source.fetch_best_quotes(MarketKind.DATED_FUTURE) == {}


async def test_funding_snapshot_at_settlement_uses_that_rate(
    source: ReplaySource, clock: SimulatedClock
) -> None:
    clock.set(at(16))

    info = (await source.fetch_funding_snapshot())[BTC_PERP]

    assert info.funding_rate == btc_rate(2)  # the 16:00 row, despite its 8 ms jitter
    assert (info.next_funding_time, info.interval_hours) == (at(24), 8)
    assert (info.interest_rate, info.timestamp) == (D("0.0001"), at(16))


async def test_funding_snapshot_before_settlement_uses_previous_rate(
    source: ReplaySource, clock: SimulatedClock
) -> None:
    clock.set(at(16) - MS)

    info = (await source.fetch_funding_snapshot())[BTC_PERP]

    assert info.funding_rate == btc_rate(1)
    assert info.next_funding_time == at(16)


async def test_funding_snapshot_after_last_settlement_extrapolates_next(
    source: ReplaySource, clock: SimulatedClock
) -> None:
    clock.set(at(70))

    info = (await source.fetch_funding_snapshot())[BTC_PERP]

    assert info.funding_rate == btc_rate(8)
    assert (info.next_funding_time, info.interval_hours) == (at(72), 8)


async def test_funding_snapshot_mark_and_index_from_bar_opens(
    source: ReplaySource, clock: SimulatedClock
) -> None:
    clock.set(at(20.5))

    info = (await source.fetch_funding_snapshot())[BTC_PERP]

    assert (info.mark_price, info.index_price) == (btc_mark_open(20), btc_spot_open(20))


async def test_funding_snapshot_gaps_fall_back_to_perp_and_mark(
    source: ReplaySource, clock: SimulatedClock
) -> None:
    clock.set(at(30.5))
    spot_gap = (await source.fetch_funding_snapshot())[BTC_PERP]
    clock.set(at(40.5))
    mark_gap = (await source.fetch_funding_snapshot())[BTC_PERP]

    assert spot_gap.index_price == spot_gap.mark_price == btc_mark_open(30)
    assert mark_gap.mark_price == btc_perp_open(40)


async def test_funding_snapshot_8h_marks_only_at_their_open_hour(
    source: ReplaySource, clock: SimulatedClock
) -> None:
    clock.set(at(32.5))
    on_boundary = (await source.fetch_funding_snapshot())[SOL_PERP]
    clock.set(at(33))
    between = (await source.fetch_funding_snapshot())[SOL_PERP]

    assert on_boundary.mark_price == sol_mark_open(32)
    assert between.mark_price == sol_perp_open(33)


async def test_funding_snapshot_unlisted_perp_absent(
    source: ReplaySource, clock: SimulatedClock
) -> None:
    clock.set(at(SOL_LISTED_HOUR) - MS)

    snapshot = await source.fetch_funding_snapshot()

    assert list(snapshot) == [BTC_PERP]  # SOL has settled funding but no listed perp yet


async def test_funding_history_never_returns_rows_after_now(
    source: ReplaySource, clock: SimulatedClock
) -> None:
    clock.set(at(20))

    rows = await source.fetch_funding_history(BTC_PERP, T0, at(HOURS))

    assert [(r.funding_time, r.rate) for r in rows] == [(at(8), btc_rate(1)), (at(16), btc_rate(2))]
    assert rows[1].mark_price == btc_mark_open(16)
    assert rows[0].symbol == BTC_PERP


async def test_funding_history_bounds_are_inclusive(
    source: ReplaySource, clock: SimulatedClock
) -> None:
    clock.set(at(60))

    rows = await source.fetch_funding_history(BTC_PERP, at(16), at(32))

    assert [r.funding_time for r in rows] == [at(16), at(24), at(32)]


async def test_funding_history_before_listing_keeps_recorded_rows(
    source: ReplaySource, clock: SimulatedClock
) -> None:
    clock.set(at(10))

    rows = await source.fetch_funding_history(SOL_PERP, T0)

    assert [(r.rate, r.mark_price) for r in rows] == [
        (sol_rate(0), sol_mark_open(0)),
        (sol_rate(1), sol_mark_open(8)),
    ]


async def test_funding_history_spot_or_unknown_symbol_raises(source: ReplaySource) -> None:
    with pytest.raises(FatalExchangeError, match="not a perpetual"):
        await source.fetch_funding_history(BTC, T0)
    with pytest.raises(FatalExchangeError, match="not a perpetual"):
        await source.fetch_funding_history("ETH/USDT:USDT", T0)


async def test_volumes_24h_sum_bars_ended_before_the_hour(
    source: ReplaySource, clock: SimulatedClock
) -> None:
    clock.set(at(34.5))

    spot = await source.fetch_volumes_24h(MarketKind.SPOT)
    perp = await source.fetch_volumes_24h(MarketKind.PERPETUAL)

    hours = [h for h in range(10, 34) if h != 30]  # bars 10:00..33:00, spot gap at 30
    assert spot[BTC] == sum(btc_spot_close(h) * btc_spot_volume(h) for h in hours)
    assert perp[BTC_PERP] == sum(btc_perp_open(h) * btc_perp_volume(h) for h in range(10, 34))


async def test_volumes_24h_on_the_hour_excludes_the_bar_just_opened(
    source: ReplaySource, clock: SimulatedClock
) -> None:
    clock.set(at(34))
    on_hour = (await source.fetch_volumes_24h(MarketKind.SPOT))[BTC]
    clock.set(at(35) - MS)
    late = (await source.fetch_volumes_24h(MarketKind.SPOT))[BTC]

    assert on_hour == late


async def test_volumes_24h_just_listed_perp_counts_only_listed_bars(
    source: ReplaySource, clock: SimulatedClock
) -> None:
    clock.set(at(BTC_LISTED_HOUR + 1))

    perp = await source.fetch_volumes_24h(MarketKind.PERPETUAL)

    assert perp == {BTC_PERP: btc_perp_open(BTC_LISTED_HOUR) * 500}


async def test_order_book_walks_levels_from_the_quote(
    source: ReplaySource, clock: SimulatedClock
) -> None:
    clock.set(at(12))
    quote = (await source.fetch_best_quotes(MarketKind.PERPETUAL))[BTC_PERP]

    book = await source.fetch_order_book(BTC_PERP, depth=3)

    assert len(book.bids) == len(book.asks) == 3
    assert (book.bids[0], book.asks[0]) == ((quote.bid, quote.bid_qty), (quote.ask, quote.ask_qty))
    assert book.bids[2][0] < book.bids[1][0] < quote.bid
    assert book.timestamp == at(12)


async def test_order_book_unknown_symbol_raises_fatal(source: ReplaySource) -> None:
    with pytest.raises(FatalExchangeError, match="unknown symbol 'ETH/USDT'"):
        await source.fetch_order_book("ETH/USDT")


async def test_order_book_symbol_without_data_now_raises_bad_response(
    source: ReplaySource, clock: SimulatedClock
) -> None:
    clock.set(at(5))

    with pytest.raises(BadResponseError, match="no BTC/USDT:USDT price at 2024-01-01 05:00"):
        await source.fetch_order_book(BTC_PERP)


async def test_load_instruments_and_pairs_follow_listings(
    source: ReplaySource, clock: SimulatedClock
) -> None:
    early = sorted(await source.load_instruments())
    clock.set(at(BTC_LISTED_HOUR))
    btc_pairs = [p.key for p in await source.pairs()]
    clock.set(at(SOL_LISTED_HOUR))
    instruments = await source.load_instruments(reload=True)
    both = [p.key for p in await source.pairs()]
    clock.set(at(HOURS))
    ended = await source.pairs()

    assert early == ["BTC/USDT", "SOL/USDT"]
    assert btc_pairs == ["BTC/USDT"]
    assert sorted(instruments) == ["BTC/USDT", BTC_PERP, "SOL/USDT", SOL_PERP]
    assert instruments[BTC_PERP].listed_at == at(BTC_LISTED_HOUR)
    assert both == ["BTC/USDT", "SOL/USDT"]
    assert ended == []


def test_data_range_per_pair_covers_both_legs_and_funding(source: ReplaySource) -> None:
    assert source.data_range(BTC_PERP) == DataRange(at(BTC_LISTED_HOUR), at(HOURS))
    assert source.data_ranges() == {
        "BTC/USDT": DataRange(at(BTC_LISTED_HOUR), at(HOURS)),
        "SOL/USDT": DataRange(at(SOL_LISTED_HOUR), at(HOURS)),
    }
    with pytest.raises(FatalExchangeError):
        source.data_range("ETH/USDT")


def test_event_times_hourly_and_funding_within_bounds(source: ReplaySource) -> None:
    times = source.event_times(at(62.5), at(HOURS + 5))

    assert times == [at(h) for h in range(63, HOURS)]


@pytest.mark.parametrize("truncate", [False, True], ids=["overwritten", "truncated"])
async def test_replay_data_after_cutoff_damaged_answers_before_unchanged(
    history_dir: Path, tmp_path: Path, truncate: bool
) -> None:
    cutoff = at(40)
    damaged_dir = damaged_copy(history_dir, tmp_path / "damaged", cutoff, truncate=truncate)
    clean_clock, damaged_clock = SimulatedClock(T0), SimulatedClock(T0)
    clean = ReplaySource(load_history(history_dir), clean_clock)
    damaged = ReplaySource(load_history(damaged_dir), damaged_clock)
    times = [at(h / 2) for h in range(0, 80)] + [cutoff - MS]

    for when in times:
        seen = await observe(clean, clean_clock, when, full_history=True)
        assert seen == await observe(damaged, damaged_clock, when, full_history=True), when

    at_cutoff = await observe(clean, clean_clock, cutoff)
    assert at_cutoff != await observe(damaged, damaged_clock, cutoff)
