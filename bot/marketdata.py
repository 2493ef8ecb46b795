"""Build market-wide snapshots from a `MarketDataSource` with few requests.

Each `snapshot()` makes three requests: the funding snapshot of every perpetual and the best
quotes of each market. Around them it keeps:
- 24h quote volumes, fetched again every `volume_refresh_seconds` (two requests);
- pairs (instruments), reloaded every `instrument_refresh_seconds`;
- settled funding per perpetual of the universe, and of those that left it once tracked or
  were named with `watch` (held hedges keep their history): seeded once, `history_periods`
  back, from the store when it already holds the latest settlement, else from the source;
  then extended when a symbol's `next_funding_time` advances, by fetching what settled
  since the last known row; a settlement not yet published is asked for again after
  `SETTLEMENT_RETRY_SECONDS`, at most `MAX_SETTLEMENT_ATTEMPTS` times;
- optionally order books (`book_depth` > 0) for the pairs of the universe;
- with `dated=True`, the spot + dated-future pairs (`MarketSnapshot.dated_pairs`, refreshed
  with the instruments; a status refresh updates their contracts' status, keeping one that
  stopped trading listed so its hedges are found) and their best quotes (one more request,
  merged into `perp_quotes`; not made when no dated future is listed); and the spot +
  COIN-M perpetual pairs (`coinm_perp_pairs`: their funding and quotes come with the
  perpetuals', their settled funding is tracked for the assets of the universe).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Generator, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from bot.clock import Clock
from bot.config import ScheduleConfig
from bot.domain import (
    FundingInfo,
    Instrument,
    MarketKind,
    MarketSnapshot,
    OrderBook,
    Pair,
    Quote,
    SettledFunding,
)
from bot.domain.instruments import coinm_perp_pairs, dated_pairs, untradable_pairs
from bot.domain.params import UniverseParams
from bot.domain.universe import selected_universe
from bot.errors import ExchangeError
from bot.exchange.port import MarketDataSource, refresh_status_of

log = logging.getLogger(__name__)

SETTLEMENT_TOLERANCE = timedelta(minutes=1)
"""Binance stamps settlements a few ms after the funding time; history rows may drift."""
MAX_SETTLEMENT_ATTEMPTS = 6
SETTLEMENT_RETRY_SECONDS = 30.0


class SettledFundingStore(Protocol):
    """Where settled funding rates are kept between runs (the ledger's repository)."""

    async def upsert(self, venue: str, rows: Iterable[SettledFunding]) -> int: ...

    async def history(self, venue: str, symbol: str, limit: int = 100) -> list[SettledFunding]: ...


class MarketData:
    """Poll a market data source into `MarketSnapshot`s for the strategy."""

    def __init__(
        self,
        source: MarketDataSource,
        clock: Clock,
        *,
        universe: UniverseParams,
        schedule: ScheduleConfig,
        history_periods: int = 21,
        book_depth: int = 0,
        store: SettledFundingStore | None = None,
        venue: str = "binance",
        max_concurrent_requests: int = 4,
        dated: bool = False,
    ) -> None:
        self._source = source
        self._clock = clock
        self._universe = universe
        self._schedule = schedule
        self._history_periods = history_periods
        self._book_depth = book_depth
        self._store = store
        self._venue = venue
        self._limit = asyncio.Semaphore(max_concurrent_requests)
        self._pairs: Sequence[Pair] = ()
        self._dated = dated
        self._dated_pairs: Sequence[Pair] = ()
        self._coinm_perp_pairs: Sequence[Pair] = ()
        self._pairs_at: float | None = None
        self._status_at: float | None = None
        self._untradable: dict[str, str] = {}
        self._in_use: set[str] = set()  # spot symbols of the last universe
        self._volumes: dict[str, Decimal] = {}
        self._volumes_at: float | None = None
        self._history: dict[str, list[SettledFunding]] = {}
        self._history_kept: dict[str, tuple[SettledFunding, ...]] = {}  # popped on change
        self._next_funding: dict[str, datetime] = {}
        self._pending: dict[str, int] = {}  # symbol -> attempts at its latest settlement
        self._retry_at: dict[str, float] = {}  # symbol -> monotonic time of the next attempt
        self._watched: set[str] = set()
        self._last: MarketSnapshot | None = None

    @property
    def last(self) -> MarketSnapshot | None:
        """The latest snapshot, or None before the first one."""
        return self._last

    def age(self) -> timedelta | None:
        """Return how old the latest snapshot is, by the injected clock (None before any)."""
        if self._last is None:
            return None
        return self._clock.now() - self._last.taken_at

    def watch(self, perp_symbols: Iterable[str]) -> None:
        """Keep funding history for these perpetuals too (held hedges outside the universe)."""
        self._watched.update(perp_symbols)

    async def snapshot(self) -> MarketSnapshot:
        """Take one market-wide snapshot; exchange errors of the three main requests propagate."""
        now = self._clock.now()
        await self._refresh_pairs()
        await self._refresh_status()
        funding_task = self._source.fetch_funding_snapshot()
        spot_task = self._source.fetch_best_quotes(MarketKind.SPOT)
        perp_task = self._source.fetch_best_quotes(MarketKind.PERPETUAL)
        funding: Mapping[str, FundingInfo]
        spot_quotes: Mapping[str, Quote]
        perp_quotes: Mapping[str, Quote]
        funding, spot_quotes, perp_quotes, _, dated_quotes = await gather_eagerly(
            funding_task, spot_task, perp_task, self._refresh_volumes(), self._dated_quotes()
        )
        if dated_quotes:
            perp_quotes = {**perp_quotes, **dated_quotes}
        pairs = tuple(self._pairs)
        funding = dict(funding)
        volumes = dict(self._volumes)
        # Only the pairs the strategy will evaluate need history (top N when automatic):
        # fundingRate has its own small budget (500 requests / 5 min). The final snapshot
        # shares these inputs and carries this universe: it is selected once per snapshot.
        preliminary = MarketSnapshot(now, pairs, funding, {}, {}, volumes)
        selected = selected_universe(preliminary, self._universe)
        universe = selected.pairs
        self._in_use = {p.spot.symbol for p in universe}
        in_universe = {p.key for p in universe}
        coinm_perps = [p for p in self._coinm_perp_pairs if p.key in in_universe]
        await self._update_history(
            [*self._tracked(pairs, universe), *(p.perp.symbol for p in coinm_perps)], funding, now
        )
        books = await self._fetch_books(universe) if self._book_depth > 0 else {}
        snap = MarketSnapshot(
            taken_at=now,
            pairs=pairs,
            funding=funding,
            spot_quotes=dict(spot_quotes),
            perp_quotes=dict(perp_quotes),
            volumes_24h=volumes,
            funding_history=self._history_tuples(),
            books=books,
            dated_pairs=self._dated_pairs,
            coinm_perp_pairs=self._coinm_perp_pairs,
            untradable=self._untradable,
            universe=selected,
        )
        self._last = snap
        return snap

    def _history_tuples(self) -> dict[str, tuple[SettledFunding, ...]]:
        """Each tracked history as a tuple, the same tuple while the history is unchanged."""
        kept = self._history_kept
        out: dict[str, tuple[SettledFunding, ...]] = {}
        for symbol, rows in self._history.items():
            frozen = kept.get(symbol)
            if frozen is None:
                frozen = kept[symbol] = tuple(rows)
            out[symbol] = frozen
        return out

    def _due(self, last: float | None, every: float) -> bool:
        return last is None or self._clock.monotonic() - last >= every

    async def _refresh_pairs(self) -> None:
        if not self._due(self._pairs_at, self._schedule.instrument_refresh_seconds):
            return
        if self._pairs_at is not None:
            await self._source.load_instruments(reload=True)
        self._pairs = tuple(await self._source.pairs())
        instruments = await self._source.load_instruments()
        if self._dated:
            self._dated_pairs = tuple(dated_pairs(instruments))
            self._coinm_perp_pairs = tuple(coinm_perp_pairs(instruments))
        self._untradable = untradable_pairs(instruments)
        self._pairs_at = self._status_at = self._clock.monotonic()

    async def _refresh_status(self) -> None:
        """Re-read instrument statuses (cheap) when due; a failure keeps the last ones."""
        if not self._due(self._status_at, self._schedule.instrument_status_seconds):
            return
        self._status_at = self._clock.monotonic()
        held = {s.split(":")[0] for s in self._watched}
        wanted = set(self._universe.symbols) | self._in_use | held
        try:
            changed = await refresh_status_of(self._source, wanted)
        except ExchangeError as exc:
            log.warning("Instrument status refresh failed, keeping the last: %s", exc)
            return
        if changed:
            self._pairs = tuple(await self._source.pairs())
            instruments = await self._source.load_instruments()
            self._untradable = untradable_pairs(instruments)
            if self._dated:
                self._dated_pairs = _with_status(self._dated_pairs, instruments)

    async def _dated_quotes(self) -> Mapping[str, Quote]:
        if not self._dated_pairs:
            return {}
        return await self._source.fetch_best_quotes(MarketKind.DATED_FUTURE)

    async def _refresh_volumes(self) -> None:
        if not self._due(self._volumes_at, self._schedule.volume_refresh_seconds):
            return
        try:
            spot, perp = await gather_eagerly(
                self._source.fetch_volumes_24h(MarketKind.SPOT),
                self._source.fetch_volumes_24h(MarketKind.PERPETUAL),
            )
        except ExchangeError as exc:
            if self._volumes_at is None:
                raise
            log.warning("24h volumes refresh failed, keeping the previous ones: %s", exc)
            return
        self._volumes = {**spot, **perp}
        self._volumes_at = self._clock.monotonic()

    def _tracked(self, pairs: Sequence[Pair], universe: Sequence[Pair]) -> list[str]:
        """Perpetuals of the universe, then watched or already tracked ones that left it."""
        symbols = [p.perp.symbol for p in universe]
        inside = set(symbols)
        keep = self._watched | self._history.keys()
        symbols += [p.perp.symbol for p in pairs if p.perp.symbol in keep - inside]
        return symbols

    async def _update_history(
        self, symbols: Sequence[str], funding: Mapping[str, FundingInfo], now: datetime
    ) -> None:
        jobs: list[Coroutine[Any, Any, list[SettledFunding]]] = []
        for symbol in symbols:
            info = funding.get(symbol)
            if info is None:
                continue
            previous = self._next_funding.get(symbol)
            if symbol not in self._history:
                jobs.append(self._seed(symbol, info, now))
            elif previous is not None and info.next_funding_time > previous:
                self._pending.setdefault(symbol, 0)
            if symbol in self._pending and symbol in self._history and self._retry_due(symbol):
                jobs.append(self._extend(symbol, info, now))
            self._next_funding[symbol] = info.next_funding_time
        if jobs:
            fetched: list[list[SettledFunding]] = await gather_eagerly(*jobs)
            await self._save([row for rows in fetched for row in rows])  # one write for all

    def _retry_due(self, symbol: str) -> bool:
        return self._clock.monotonic() >= self._retry_at.get(symbol, float("-inf"))

    async def _seed(self, symbol: str, info: FundingInfo, now: datetime) -> list[SettledFunding]:
        """Seed `symbol`'s history; return the fetched rows the store does not hold yet."""
        latest = info.next_funding_time - timedelta(hours=info.interval_hours)
        if self._store is not None:
            stored = await self._store.history(self._venue, symbol, self._history_periods)
            if stored and stored[-1].funding_time >= latest - SETTLEMENT_TOLERANCE:
                self._history_kept.pop(symbol, None)
                self._history[symbol] = list(stored)
                return []
        since = now - timedelta(hours=info.interval_hours * (self._history_periods + 1))
        rows = await self._fetch_history(symbol, since)
        if rows is None:
            return []  # seeded again on the next snapshot
        kept = [r for r in rows if r.funding_time <= now][-self._history_periods :]
        self._history_kept.pop(symbol, None)
        self._history[symbol] = kept
        if not kept or kept[-1].funding_time < latest - SETTLEMENT_TOLERANCE:
            self._pending[symbol] = 0  # the latest settlement is not published yet
            self._retry_at[symbol] = self._clock.monotonic() + SETTLEMENT_RETRY_SECONDS
        return list(kept)

    async def _extend(self, symbol: str, info: FundingInfo, now: datetime) -> list[SettledFunding]:
        """Fetch what settled since `symbol`'s last known row; return the new rows."""
        rows = self._history[symbol]
        expected = info.next_funding_time - timedelta(hours=info.interval_hours)
        if rows and rows[-1].funding_time >= expected - SETTLEMENT_TOLERANCE:
            self._pending.pop(symbol, None)
            return []
        since = (
            rows[-1].funding_time + timedelta(milliseconds=1)
            if rows
            else expected - SETTLEMENT_TOLERANCE
        )
        fetched = await self._fetch_history(symbol, since)
        last = rows[-1].funding_time if rows else None
        new = [
            r
            for r in fetched or ()
            if (last is None or r.funding_time > last) and r.funding_time <= now
        ]
        self._history_kept.pop(symbol, None)
        rows.extend(new)
        del rows[: -self._history_periods]
        if rows and rows[-1].funding_time >= expected - SETTLEMENT_TOLERANCE:
            self._pending.pop(symbol, None)
            return new
        self._pending[symbol] += 1
        self._retry_at[symbol] = self._clock.monotonic() + SETTLEMENT_RETRY_SECONDS
        if self._pending[symbol] >= MAX_SETTLEMENT_ATTEMPTS:
            log.warning(
                "Settlement of %s at %s not published after %d attempts; giving up on it",
                symbol,
                expected.isoformat(),
                self._pending.pop(symbol),
            )
        return new

    async def _fetch_history(self, symbol: str, since: datetime) -> Sequence[SettledFunding] | None:
        try:
            async with self._limit:
                return await self._source.fetch_funding_history(symbol, since)
        except ExchangeError as exc:
            log.warning("Funding history of %s unavailable: %s", symbol, exc)
            return None

    async def _save(self, rows: Sequence[SettledFunding]) -> None:
        if self._store is not None and rows:
            await self._store.upsert(self._venue, rows)

    async def _fetch_books(self, universe: Sequence[Pair]) -> dict[str, OrderBook]:
        pairs = list(universe)
        if not self._universe.symbols:  # automatic: the most liquid top_n only
            pairs.sort(key=self._min_volume, reverse=True)
            pairs = pairs[: self._universe.top_n]
        symbols = [s for p in pairs for s in (p.spot.symbol, p.perp.symbol)]
        books: list[OrderBook | None] = await gather_eagerly(
            *(self._fetch_book(s) for s in symbols)
        )
        return {b.symbol: b for b in books if b is not None}

    async def _fetch_book(self, symbol: str) -> OrderBook | None:
        try:
            async with self._limit:
                return await self._source.fetch_order_book(symbol, self._book_depth)
        except ExchangeError as exc:
            log.warning("Order book of %s unavailable: %s", symbol, exc)
            return None

    def _min_volume(self, pair: Pair) -> Decimal:
        zero = Decimal(0)
        return min(
            self._volumes.get(pair.spot.symbol, zero), self._volumes.get(pair.perp.symbol, zero)
        )


async def gather_eagerly(*coros: Coroutine[Any, Any, Any]) -> list[Any]:
    """Run coroutines concurrently like `asyncio.gather`; those that never wait cost no task.

    A source that answers from memory (the replay, a stand-in) finishes each request at
    once, and a task per request would only add trips round the event loop. So each
    coroutine is started in turn in the calling task: one that finishes at once just gives
    its result. The first one that has to wait is carried on in the calling task (whatever it
    tied to the current task, such as a timeout, stays right) while the ones after it run
    as tasks of an `asyncio.gather`, started before it resumes; with a live exchange that
    is as concurrent as `asyncio.gather` itself.

    Results come back in order. As with `asyncio.gather`, every coroutine is started even
    when one fails, the first failure met is raised and the others are left to finish, and
    cancelling the caller cancels those still running. One difference: a failure of a later
    coroutine is raised once the one carried on in the calling task is done.
    """
    results: list[Any] = [None] * len(coros)
    for i, coro in enumerate(coros):
        try:
            waiting_on = coro.send(None)
        except StopIteration as done:
            results[i] = done.value
            continue
        except BaseException:
            _leave_running(asyncio.gather(*coros[i + 1 :]))
            raise
        later = asyncio.gather(*coros[i + 1 :])  # their tasks start at the next loop turn
        try:
            results[i] = await _Resumed(coro, waiting_on)
        except asyncio.CancelledError:
            later.cancel()
            raise
        except BaseException:
            _leave_running(later)
            raise
        results[i + 1 :] = await later
        break
    return results


class _Resumed:
    """Await, in the awaiting task, the rest of a coroutine that stopped on `waiting_on`."""

    __slots__ = ("_coro", "_waiting_on")

    def __init__(self, coro: Coroutine[Any, Any, Any], waiting_on: Any) -> None:
        self._coro = coro
        self._waiting_on = waiting_on

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, waiting_on = self._coro, self._waiting_on
        while True:  # what `await coro` does, from where the coroutine stopped
            try:
                sent = yield waiting_on
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:
                try:
                    waiting_on = coro.throw(exc)
                except StopIteration as done:
                    return done.value
            else:
                try:
                    waiting_on = coro.send(sent)
                except StopIteration as done:
                    return done.value


def _leave_running(future: asyncio.Future[Any]) -> None:
    """Let `future` finish on its own; its outcome is dropped (as `asyncio.gather` drops it)."""
    future.add_done_callback(lambda f: f.cancelled() or f.exception())


def _with_status(pairs: Sequence[Pair], instruments: Mapping[str, Instrument]) -> tuple[Pair, ...]:
    """The dated pairs with their contracts' refreshed status; a contract that stopped
    trading stays listed (its hedges are found, and it is screened out of rolls and
    entries), one that started trading is added."""
    fresh = {p.perp.symbol: p for p in dated_pairs(instruments)}
    for pair in pairs:
        if pair.perp.symbol not in fresh:
            spot = instruments.get(pair.spot.symbol, pair.spot)
            fresh[pair.perp.symbol] = Pair(spot, instruments.get(pair.perp.symbol, pair.perp))
    return tuple(sorted(fresh.values(), key=lambda p: (p.key, p.perp.symbol)))
