"""Run the bot's own trading loop over replayed history, driven by a simulated clock.

Nothing here re-implements trading: `assemble_loop` (the composition root of live and paper
mode) builds the loop over a `PaperExchange` whose market data is a `ReplaySource`. What a
backtest injects is the clock, the source, a seeded uid generator and its own ledger.

The clock visits every event time t (each hourly bar open and each funding time in
[start, end]) and the bot's one `Cycle` runs at t + `REACTION`, as `carrybot run` runs it:
poll, capture funding, (balance snapshot, reconcile when due), evaluate. Acting one second after
the bar opens keeps the exchange's order of things: the funding settled at t is paid to the
position held at t, so a hedge opened at a funding time does not collect it and one closed
then does. At the end, hedges still open are closed by the executor, so every figure is
realised and the costs of leaving are counted, as in the passive baseline.

A pair whose data ends before the run's end (a market delisted, one file shorter than the
other) is no longer offered to the strategy in its last hour of data (`DATA_END_WINDOW`),
and hedges on it are closed by the executor at that hour, while both markets still have
prices. A close whose legs cannot both be priced is not sent at all (never half a hedge).
"""

from __future__ import annotations

import dataclasses
import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.app import assemble_loop
from bot.backtest.history import History, load_history
from bot.backtest.replay import DataRange, ReplayAnswers, ReplaySource
from bot.backtest.series import HOUR_MS, from_ms
from bot.backtest.venue_spot import venue_pairs, with_venue_spot
from bot.clock import SimulatedClock
from bot.config import Config, normalise_database_url
from bot.domain import Hedge, HedgeState, MarketKind, PositionMode
from bot.domain.instruments import pair_of
from bot.errors import UserError
from bot.exchange.paper import PaperExchange
from bot.lifecycle import RunLifecycle
from bot.persistence import migrate
from bot.persistence.db import THROWAWAY_SQLITE_PRAGMAS, create_engine, session_factory
from bot.persistence.inline_sqlite import inline_sqlite_args
from bot.persistence.memory import MemoryLedger
from bot.persistence.memory_write import write_ledger
from bot.persistence.models import BotRunRow
from bot.persistence.outage import BufferedEventSink, OutageGuard
from bot.persistence.repositories import CycleReads, Ledger
from bot.trading import TradingLoop
from bot.trading.cycle import Cycle, Due

log = logging.getLogger(__name__)

REACTION = timedelta(seconds=1)
"""How long after an event time the jobs run (see the module docstring)."""
DATA_END_WINDOW = timedelta(hours=1)
"""A pair stops being offered this long before its data ends: the time left to close."""
END_REASON = "backtest end"
DATA_END_REASON = "data end"
PAPER_STATE_KEY = "backtest"

Progress = Callable[[int, int], None]
_MIGRATING = threading.Lock()  # sweeps on Dask run backtests in threads of one process


@dataclass(frozen=True)
class BacktestSpec:
    """What to replay: the config, the data, the period (inclusive) and where to record it."""

    config: Config
    data_dir: Path
    database_url: str
    start: datetime | None = None
    end: datetime | None = None
    seed: int = 0
    snapshot_every: timedelta = timedelta(hours=8)
    # The replayed prices are already on disk: the ledger keeps a sparse record of them.
    observation_every: timedelta = timedelta(hours=8)
    reconcile_every: timedelta | None = None
    throwaway_database: bool = True
    ledger_in_memory: bool = True
    """Keep the ledger in memory and store it at the end (False: write as it goes, as the bot
    does; the same rows either way, kept for comparison)."""


@dataclass(frozen=True)
class EquityPoint:
    at: datetime
    equity: Decimal


@dataclass(frozen=True)
class BacktestRun:
    """What the replay did; the ledger at `database_url` holds the rest."""

    spec: BacktestSpec
    history: History
    start: datetime
    end: datetime
    events: int
    run_id: int
    initial_equity: Decimal
    equity: list[EquityPoint]
    strategy_failures: int
    ledger: Ledger
    """The run's ledger in memory (also stored at `spec.database_url`)."""


def symbols_to_load(config: Config) -> list[str] | None:
    """Return the exchange symbols the universe can trade (None: all, automatic universe)."""
    explicit = [s for s in config.universe.symbols if s not in config.universe.deny]
    return explicit or None


def load_for(config: Config, data_dir: Path) -> History:
    """Load the history of the pairs `config`'s universe can trade.

    With the spot leg on another venue, its spot bars are that venue's (`venue_spot.py`).
    """
    symbols = symbols_to_load(config)
    if not config.venues.cross_venue:
        return load_history(data_dir, symbols=symbols)
    binance, quotes = venue_pairs(symbols or [])
    history = load_history(data_dir, symbols=binance or None)
    spot = with_venue_spot(
        data_dir, config.venues.spot, history.symbols, quotes, explicit=bool(binance)
    )
    return dataclasses.replace(history, symbols=spot)


def replay_period(
    ranges: dict[str, DataRange], start: datetime | None, end: datetime | None
) -> tuple[datetime, datetime]:
    """Clamp the requested period (inclusive) to where some pair has data."""
    first = min(r.start for r in ranges.values())
    last = max(r.end for r in ranges.values()) - timedelta(milliseconds=HOUR_MS)
    lo = max(start, first) if start is not None else first
    hi = min(end, last) if end is not None else last
    if lo > hi:
        raise UserError(
            f"no data between {lo:%Y-%m-%d %H:%M} and {hi:%Y-%m-%d %H:%M} UTC: the history "
            f"covers {first:%Y-%m-%d} to {last:%Y-%m-%d}; change --from/--to"
        )
    return lo, hi


async def run_backtest(
    spec: BacktestSpec,
    *,
    history: History | None = None,
    progress: Progress | None = None,
    answers: ReplayAnswers | None = None,
) -> BacktestRun:
    """Replay `spec`'s period through the trading loop; return what happened.

    `answers` (a sweep's, shared by its runs over `history`) keeps what the replay showed.
    """
    history = history or load_for(spec.config, spec.data_dir)
    clock = SimulatedClock(from_ms(min(s.start_ms for s in history.symbols.values())))
    source = ReplaySource(history, clock, answers=answers, closing_window=DATA_END_WINDOW)
    start, end = replay_period(source.data_ranges(), spec.start, spec.end)
    times = source.event_times(start, end)
    clock.set(times[0] + REACTION)
    engine = _create_engine(spec)
    try:
        with _MIGRATING:  # Alembic keeps global state: one migration at a time per process
            await migrate.upgrade(engine)
        sessions = session_factory(engine)
        await _require_empty(sessions, spec.database_url)
        # A throwaway file is this run's own: no `carrybot halt` can reach it.
        reads = CycleReads(keep_trading_state=_throwaway_sqlite(spec))
        base = MemoryLedger() if spec.ledger_in_memory else Ledger(sessions, reads)
        lifecycle = RunLifecycle(base, clock)
        ledger = await lifecycle.open(mode="backtest", environment="replay", config=spec.config)
        loop, exchange, events = await _assemble(
            spec, source, clock, ledger, engine, lifecycle.run_id
        )
        await lifecycle.start(loop, exchange, events)
        initial = await loop.snapshot_balances() or Decimal(0)
        equity: list[EquityPoint] = []
        stepper = CycleStepper(loop, spec, equity, _data_ends(source, times[-1]))
        for i, t in enumerate(times):
            clock.set(t + REACTION)
            await stepper.step()
            if progress is not None:
                progress(i + 1, len(times))
        await _close_all(loop)
        await loop.capture_funding(force=True)
        await stepper.snapshot()
        await ledger.paper_state.save(
            PAPER_STATE_KEY, exchange.simulator.to_state(), at=clock.now()
        )
        await lifecycle.stop(loop, "backtest finished")
        if isinstance(base, MemoryLedger):
            await write_ledger(base.tables, engine)  # the whole run in one transaction
        return BacktestRun(
            spec=spec,
            history=history,
            start=start,
            end=end,
            events=len(times),
            run_id=lifecycle.run_id,
            initial_equity=initial,
            equity=equity,
            strategy_failures=loop.strategy.failures,
            ledger=base,
        )
    finally:
        await engine.dispose()


def _create_engine(spec: BacktestSpec) -> AsyncEngine:
    """A throwaway SQLite file runs in this thread with durability off; else the usual."""
    url = normalise_database_url(spec.database_url)
    if _throwaway_sqlite(spec):
        return create_engine(
            url, sqlite_pragmas=THROWAWAY_SQLITE_PRAGMAS, connect_args=inline_sqlite_args()
        )
    return create_engine(url)


def _throwaway_sqlite(spec: BacktestSpec) -> bool:
    return spec.throwaway_database and normalise_database_url(spec.database_url).startswith(
        "sqlite"
    )


async def _require_empty(sessions: async_sessionmaker[AsyncSession], url: str) -> None:
    async with sessions() as s:
        runs = int(await s.scalar(select(func.count()).select_from(BotRunRow)) or 0)
    if runs:
        raise UserError(
            f"--database {url}: already holds {runs} run(s); a backtest needs an empty "
            "database (drop it, or leave --database out for a fresh SQLite file)"
        )


async def _assemble(
    spec: BacktestSpec,
    source: ReplaySource,
    clock: SimulatedClock,
    ledger: Ledger,
    engine: AsyncEngine,
    run_id: int,
) -> tuple[TradingLoop, PaperExchange, BufferedEventSink]:
    config = spec.config
    exchange = await PaperExchange.open(
        source,
        clock=clock,
        fees=config.fees,
        paper=config.paper,
        spot_fee_in_quote=config.venues.cross_venue,  # Bitstamp takes the quote currency
        position_mode=(
            PositionMode.HEDGE if config.exchange.position_mode == "hedge" else PositionMode.ONE_WAY
        ),
    )
    exchange.simulator.set_instruments(source.all_instruments())
    guard = OutageGuard(engine, clock)
    events = BufferedEventSink(ledger.events, guard)
    rng = random.Random(spec.seed)
    loop = await assemble_loop(
        _recording_config(spec),
        exchange,
        ledger,
        guard,
        events,
        clock,
        run_id,
        rng=rng,
        store_funding_history=False,
        listed_later=source.data_ranges(),  # every pair of the history, listed now or later
    )
    return loop, exchange, events


def _recording_config(spec: BacktestSpec) -> Config:
    """`spec.config` with market observations stored every `spec.observation_every`.

    Across venues the replay's pairs are `X/USDT` (the venue's spot in USDT terms): the
    universe's `X/USD` names are mapped to them.
    """
    schedule = spec.config.schedule.model_copy(
        update={"observation_every_seconds": spec.observation_every.total_seconds()}
    )
    update: dict[str, object] = {"schedule": schedule}
    if spec.config.venues.cross_venue and spec.config.universe.symbols:
        symbols = venue_pairs(spec.config.universe.symbols)[0]
        update["universe"] = spec.config.universe.model_copy(update={"symbols": symbols})
    return spec.config.model_copy(update=update)


class CycleStepper:
    """Run the bot's one `Cycle` at each clock time, with the backtest's own intervals."""

    def __init__(
        self,
        loop: TradingLoop,
        spec: BacktestSpec,
        equity: list[EquityPoint],
        data_ends: dict[str, datetime],
    ) -> None:
        self._loop = loop
        self._spec = spec
        self._equity = equity
        self._next_snapshot: datetime | None = None
        self._next_reconcile: datetime | None = None
        self._data_ends = data_ends  # pair -> its last bar, for pairs ending before the run
        self._next_data_end = min(data_ends.values(), default=None)
        self._now = loop.clock.now()  # the time of the step being run
        self._cycle = Cycle(loop, before_snapshot=self._close_due)

    async def step(self) -> None:
        """Run the cycle at the clock's time: a snapshot and a reconciliation when due."""
        now = self._loop.clock.now()
        snapshot = self._next_snapshot is None or now >= self._next_snapshot
        every = self._spec.reconcile_every
        reconcile = every is not None and (
            self._next_reconcile is None or now >= self._next_reconcile
        )
        self._now = now
        result = await self._cycle.run(Due(snapshot=snapshot, reconcile=reconcile))
        if snapshot:
            self._record(result.equity)
            self._next_snapshot = now + self._spec.snapshot_every
        if every is not None and reconcile:
            self._next_reconcile = now + every

    async def _close_due(self) -> None:
        """Between funding capture and snapshot: close what is in its last hour of data."""
        if self._next_data_end is not None and self._now >= self._next_data_end:
            await self._close_ending(self._now)

    async def _close_ending(self, now: datetime) -> None:
        """Close the hedges on pairs in their last hour of data (before the strategy runs)."""
        ending = {p for p, last in self._data_ends.items() if now >= last}
        for pair in ending:
            del self._data_ends[pair]
        self._next_data_end = min(self._data_ends.values(), default=None)
        loop = self._loop
        async with loop.lock:
            for hedge in await loop.ledger.hedges.active():
                if hedge.pair in ending:
                    await _close_one(loop, hedge, DATA_END_REASON)

    async def snapshot(self) -> None:
        self._record(await self._loop.snapshot_balances())

    def _record(self, equity: Decimal | None) -> None:
        if equity is not None:
            self._equity.append(EquityPoint(self._loop.clock.now(), equity))


def _data_ends(source: ReplaySource, last_time: datetime) -> dict[str, datetime]:
    """Return the last bar of every pair whose data ends before the run's last event time."""
    out: dict[str, datetime] = {}
    for pair, span in source.data_ranges().items():
        last = span.end - DATA_END_WINDOW
        if last < last_time:
            out[pair] = last
    return out


async def _close_all(loop: TradingLoop) -> None:
    """Close what is still open through the executor, as an operator would at the end."""
    async with loop.lock:
        for hedge in await loop.ledger.hedges.active():
            await _close_one(loop, hedge, END_REASON)


async def _close_one(loop: TradingLoop, hedge: Hedge, reason: str) -> None:
    """Close (or finish closing) `hedge` if both its markets can be priced now, else log."""
    pair = pair_of(loop.pairs, hedge.pair, hedge.perp_symbol)  # a dated hedge: its future
    if pair is None:
        log.warning("Hedge %s on %s left open: pair unknown", hedge.id, hedge.pair)
        return
    spot = await loop.exchange.fetch_best_quotes(MarketKind.SPOT)
    perp = await loop.exchange.fetch_best_quotes(pair.perp.kind)
    if pair.spot.symbol not in spot or pair.perp.symbol not in perp:
        log.warning(
            "Hedge %s on %s left open at %s: no price for both legs (%s); nothing sent",
            hedge.id,
            hedge.pair,
            reason,
            ", ".join(s for s in (pair.spot.symbol, pair.perp.symbol) if s not in {**spot, **perp}),
        )
        return
    if hedge.state is HedgeState.OPEN:
        await loop.executor.close(hedge, pair, reason=reason)
    else:
        await loop.executor.recover(hedge, pair)
