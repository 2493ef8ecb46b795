"""The composition root: settings → ledger → exchange → market data → risk → executor → jobs.

`run_bot` starts the bot (start-up reconciliation first, crash-only), runs the scheduler
until SIGINT/SIGTERM, `--duration` or `--once`, then stops gracefully: no new positions, an
in-flight hedge finishes or unwinds, the ledger is flushed, exit status 0 within 30 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from bot.clock import Clock, SystemClock
from bot.config import Config
from bot.domain import SettledFunding
from bot.domain.instruments import (
    coinm_perp_pairs,
    dated_pairs,
    keyed_by_future,
    pairs_of,
    untradable_pairs,
)
from bot.errors import AuthError, ExchangeError, UserError
from bot.exchange.factory import build_exchange
from bot.exchange.port import ExchangePort, coinm_of
from bot.execution.account_setup import AccountSetup
from bot.execution.executor import HedgeExecutor
from bot.ids import UidFactory
from bot.lifecycle import RunLifecycle
from bot.listings import check_explicit_symbols
from bot.marketdata import MarketData
from bot.operations import Operations
from bot.persistence import migrate
from bot.persistence.db import create_engine, session_factory
from bot.persistence.instance_lock import LockKeeper, instance_lock_for
from bot.persistence.outage import BufferedEventSink, OutageGuard
from bot.persistence.repositories import CycleReads, Ledger, SettledFundingRepository
from bot.persistence.startup_checks import database_errors
from bot.reconcile import Reconciler
from bot.risk import RiskGate
from bot.scheduler import build_scheduler
from bot.settings import Mode, Settings
from bot.strategy_host import load_safe_strategy, strategy_params
from bot.streams.factory import find_streaming_source
from bot.streams.gate import EntryGate
from bot.streams.status import StreamStateStore, heartbeat_hook
from bot.trading import LoopPorts, MarketFeed, TradingLoop, TradingParts
from bot.trading.cycle import Cycle, Due
from bot.web import check_binding

log = logging.getLogger(__name__)

LOCK_CHECK_SECONDS = 2.0
JOB_STOP_SECONDS = 5.0
"""How long a graceful stop waits for the running jobs (a cycle's stage, a heartbeat) to end."""


@dataclass(frozen=True)
class RunOptions:
    once: bool = False
    duration: float | None = None
    banner: str | None = None
    """Printed once the instance lock is held (a refused second instance prints only why)."""


class GuardedSettledStore:
    """The settled-funding repository behind the outage guard (history is optional data)."""

    def __init__(self, repo: SettledFundingRepository, guard: OutageGuard) -> None:
        self._repo = repo
        self._guard = guard

    async def upsert(self, venue: str, rows: Iterable[SettledFunding]) -> int:
        batch = list(rows)
        await self._guard.write(
            f"{len(batch)} settled funding rows", lambda: self._repo.upsert(venue, batch)
        )
        return len(batch)

    async def history(self, venue: str, symbol: str, limit: int = 100) -> list[SettledFunding]:
        if not self._guard.healthy:
            return []
        try:
            return await self._repo.history(venue, symbol, limit)
        except Exception as exc:
            from bot.persistence.outage import is_db_outage

            if not is_db_outage(exc):
                raise
            return []


async def run_bot(
    settings: Settings,
    config: Config,
    database_url: str,
    mode: Mode,
    options: RunOptions,
    *,
    clock: Clock | None = None,
    stop: asyncio.Event | None = None,
) -> int:
    """Run the bot until stopped; return the process exit status."""
    clock = clock or SystemClock()
    stop = stop or asyncio.Event()
    if config.web.enabled:  # refuse a public dashboard without a token before anything else
        check_binding(
            config.web, settings.web_token.get_secret_value() if settings.web_token else None
        )
    lock = instance_lock_for(database_url, now=clock.now)
    keeper = LockKeeper(lock, on_lost=stop.set)
    engine = create_engine(database_url)
    exchange: ExchangePort | None = None
    lifecycle = RunLifecycle(Ledger(session_factory(engine), CycleReads()), clock)
    keeping: asyncio.Task[None] | None = None
    ops: Operations | None = None
    try:
        with database_errors(database_url):  # a bad ledger is one line, before any order
            await lock.acquire()
            if options.banner:
                print(options.banner, flush=True)
            await migrate.ensure_current(engine)
            ledger = await lifecycle.open(
                mode=mode.value, environment=config.exchange.environment, config=config
            )
        guard = OutageGuard(engine, clock, probe=keeper.ensure)
        keeping = asyncio.create_task(keeper.run(guard.mark_down, LOCK_CHECK_SECONDS))
        ops = Operations(config, settings, ledger, clock, mode.value)
        events = ops.event_sink(guard)
        _install_signal_handlers(stop)
        connected = await _connect(
            mode,
            settings,
            config,
            ledger,
            guard,
            events,
            clock,
            lifecycle.run_id,
            stop,
            attempts=3 if options.once else None,
        )
        if connected is None:
            await lifecycle.record_stop("stopped before start")
            return 0
        exchange, loop = connected
        await lifecycle.start(loop, exchange, events)
        if options.once:
            await run_once(loop)
            reason = "--once finished"
        else:
            await ops.start(loop)
            reason = await _serve(
                loop, config, clock, stop, options.duration, on_job=ops.metrics.observe_job
            )
        if keeper.lost:
            reason = "instance lock taken by another carrybot"
        await lifecycle.stop(loop, reason)
        return 1 if keeper.lost else 0
    except AuthError as exc:
        raise UserError(
            f"the exchange refused the API key ({exc}): check BINANCE_API_KEY and "
            "BINANCE_API_SECRET (BITSTAMP_… for a Bitstamp spot leg), the key's permissions "
            "(spot and USDⓈ-M trading) and its IP whitelist, then start again"
        ) from None
    finally:
        if ops is not None:
            await ops.stop()
        if keeping is not None:
            keeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeping
        if exchange is not None:
            with contextlib.suppress(Exception):
                await exchange.close()
        await engine.dispose()
        await lock.release()


async def run_once(loop: TradingLoop) -> None:
    """`carrybot run --once`: every stage of the cycle once (funding looked for), then the
    heartbeat line."""
    await Cycle(loop).run(Due(force_funding=True))
    await loop.heartbeat()


async def _connect(
    mode: Mode,
    settings: Settings,
    config: Config,
    ledger: Ledger,
    guard: OutageGuard,
    events: BufferedEventSink,
    clock: Clock,
    run_id: int,
    stop: asyncio.Event,
    *,
    attempts: int | None,
) -> tuple[ExchangePort, TradingLoop] | None:
    """Build the exchange and the loop, retrying with backoff while the exchange is down."""
    failures = 0
    while not stop.is_set():
        exchange: ExchangePort | None = None
        try:
            exchange = await build_exchange(
                mode, settings, config, clock, events, ledger.paper_state
            )
            loop = await assemble_loop(config, exchange, ledger, guard, events, clock, run_id)
            return exchange, loop
        except BaseException as exc:
            if exchange is not None:
                with contextlib.suppress(Exception):
                    await exchange.close()
            if isinstance(exc, AuthError) or not isinstance(exc, ExchangeError):
                raise  # a refused key is the user's to fix: no retry
            failures += 1
            if attempts is not None and failures >= attempts:
                raise
            delay = min(300.0, 2.0**failures) * (0.5 + random.random())
            log.warning("Exchange unavailable at start-up (%s); retrying in %.0fs", exc, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)
    return None


async def assemble_loop(
    config: Config,
    exchange: ExchangePort,
    ledger: Ledger,
    guard: OutageGuard,
    events: BufferedEventSink,
    clock: Clock,
    run_id: int,
    *,
    rng: random.Random | None = None,
    store_funding_history: bool = True,
    listed_later: Iterable[str] = (),
) -> TradingLoop:
    """Wire strategy, risk gate, executor, reconciler and market data into the bot's loop.

    Live, paper and backtest runs all build their loop here; only the injected parts differ
    (exchange, ledger, clock, and `rng`, which seeds hedge uids and jitter when given).
    The ledger keeps the exchange's settled funding so a restarted bot need not fetch it
    again; a backtest, which never restarts and replays that history from its data
    directory, passes `store_funding_history=False`, and with `listed_later` the pairs its
    history lists after the start (they pass the explicit-universe check).
    """
    pairs = {p.key: p for p in await exchange.pairs()}
    instruments = await exchange.load_instruments()
    # Pairs that stopped trading stay known: a hedge held there is closed, nothing opened.
    stopped = untradable_pairs(instruments)
    pairs.update((p.key, p) for p in pairs_of(instruments, stopped))
    check_explicit_symbols(config.universe.symbols, [*pairs, *listed_later], exchange.venue)
    for key in set(config.universe.symbols) & stopped.keys():
        log.warning("universe.symbols: %s takes no new position: %s", key, stopped[key])
    # Dated pairs keyed by their future's symbol: hedges held on them stay closable.
    pairs.update((p.perp.symbol, p) for p in dated_pairs(instruments))
    pairs.update((p.perp.symbol, p) for p in coinm_perp_pairs(instruments))
    setup = AccountSetup(exchange, config.exchange, events, clock)
    await setup.detect()
    if coinm_of(exchange) is not None and "coinm" in config.strategy.instruments:
        await setup.detect(coinm=True)  # COIN-M keeps its own position mode
    executor = HedgeExecutor(
        exchange,
        ledger,
        clock,
        setup,
        risk=config.risk,
        fees=config.fees,
        events=events,
        uids=UidFactory(clock, rng),
        run_id=run_id,
        recv_window_ms=config.exchange.recv_window_ms,
        guard=guard,
    )
    held = await ledger.hedges.active()
    market_data = MarketData(
        exchange,
        clock,
        universe=config.universe,
        schedule=config.schedule,
        history_periods=int(getattr(config.strategy, "history_periods", 21)),
        store=GuardedSettledStore(ledger.settled_funding, guard) if store_funding_history else None,
        venue=exchange.venue,
        dated=config.strategy.trades_dated or any(keyed_by_future(h.perp_symbol) for h in held),
    )
    market_data.watch(h.perp_symbol for h in held)
    streams = find_streaming_source(exchange)
    gate = (
        EntryGate(config.streams, clock, streams, pairs)
        if streams is not None or config.streams.maintenance
        else None
    )
    loop = TradingLoop(
        config,
        LoopPorts(exchange, ledger, guard, events, clock),
        TradingParts(
            strategy=load_safe_strategy(config.strategy.name),
            params=strategy_params(config),
            risk=RiskGate(config.risk, config.exchange, entry_gate=gate),
            executor=executor,
            reconciler=Reconciler(exchange, ledger, executor, clock, events, pairs),
        ),
        # A snapshot from streams comes from memory: evaluate takes a fresh one first.
        MarketFeed(market_data.snapshot, pairs, from_memory=streams is not None),
        rng=rng,
        heartbeat_parts=[]
        if streams is None
        else [heartbeat_hook(streams.health, clock, StreamStateStore(ledger.sessions), guard)],
    )
    if streams is not None:
        streams.on_user_resync = resync_by(loop.reconcile)
    return loop


def resync_by(reconcile: Callable[[], Awaitable[None]]) -> Callable[[], None]:
    """A callback that runs `reconcile` in the background (one at a time, kept referenced)."""
    running: set[asyncio.Task[None]] = set()

    def start() -> None:
        if running:
            return  # one already checks every order in flight
        task = asyncio.ensure_future(reconcile())
        running.add(task)
        task.add_done_callback(running.discard)

    return start


async def _serve(
    loop: TradingLoop,
    config: Config,
    clock: Clock,
    stop: asyncio.Event,
    duration: float | None,
    *,
    on_job: Callable[[str, float], None] | None = None,
) -> str:
    bot = build_scheduler(loop, config.schedule, clock, on_job=on_job)
    scheduler = bot.scheduler
    scheduler.start()
    try:
        if duration is None:
            await stop.wait()
            return "signal"
        try:
            await asyncio.wait_for(stop.wait(), timeout=duration)
            return "signal"
        except TimeoutError:
            return f"--duration {duration:g}s elapsed"
    finally:
        await bot.stop(loop, within=JOB_STOP_SECONDS)


def _install_signal_handlers(stop: asyncio.Event) -> None:
    running = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            running.add_signal_handler(sig, stop.set)
