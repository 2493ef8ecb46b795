"""The start and the stop of one run, written once for `carrybot run` and the backtest.

Start: the run is recorded (`bot_runs`), then, once the loop is assembled, the ledger is
reconciled against the exchange before anything trades (crash-only start) and the trading
state is read back. Stop: no new positions; an in-flight hedge finishes or unwinds (the
execution lock, bounded by `SHUTDOWN_GRACE_SECONDS`); what the outage guard still holds
is flushed; the stop is recorded with its reason. The instance lock around a live run is
`carrybot run`'s own (`bot.app`): a backtest has a database of its own.
"""

from __future__ import annotations

import asyncio
import logging

from bot import __version__
from bot.clock import Clock
from bot.config import Config
from bot.domain import Event, EventSink, Severity
from bot.domain.ledger import TradingState
from bot.errors import UserError
from bot.exchange.port import ExchangePort
from bot.persistence.repositories import Ledger
from bot.trading import TradingLoop

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_SECONDS = 25.0


class RunLifecycle:
    """One run's record in the ledger, its start-up and its graceful stop."""

    def __init__(self, base: Ledger, clock: Clock) -> None:
        self._base = base
        self._clock = clock
        self._run_id: int | None = None

    @property
    def run_id(self) -> int:
        """The id of the run (once `open` has recorded it)."""
        if self._run_id is None:
            raise RuntimeError("the run is not open yet")
        return self._run_id

    async def open(self, *, mode: str, environment: str, config: Config) -> Ledger:
        """Record the run's start; return the ledger that writes under this run."""
        run = await self._base.runs.start(
            mode=mode,
            environment=environment,
            config_hash=config.fingerprint(),
            version=__version__,
            at=self._clock.now(),
        )
        self._run_id = run.id
        return self._base.for_run(run.id)

    async def start(self, loop: TradingLoop, exchange: ExchangePort, events: EventSink) -> None:
        """Reconcile before any trading (see `start_up`)."""
        await start_up(loop, exchange, events, self._clock)

    async def stop(self, loop: TradingLoop | None, reason: str) -> None:
        """Stop the loop gracefully (when it was started) and record the run's end."""
        if loop is not None:
            await shutdown(loop, reason)
        await self.record_stop(reason)

    async def record_stop(self, reason: str) -> None:
        """Record the run's end and why (nothing else: for a run that never started)."""
        if self._run_id is not None:
            await self._base.runs.stop(self._run_id, at=self._clock.now(), reason=reason)


async def ensure_same_venue(ledger: Ledger, venue: str) -> None:
    """Refuse a ledger whose active hedges were traded on another venue (paper vs live)."""
    for hedge in await ledger.hedges.active():
        venues = {o.venue for o in await ledger.orders.for_hedge(hedge.id)}
        if venues - {venue}:
            raise UserError(
                f"this database holds active {', '.join(sorted(venues))} hedges (hedge "
                f"{hedge.id}) but the bot now trades on {venue}: use a separate database per "
                "mode (set DATABASE_URL or [database] url), or close those hedges first"
            )


async def start_up(
    loop: TradingLoop, exchange: ExchangePort, events: EventSink, clock: Clock
) -> None:
    """Reconcile before any trading (crash-only start); the position mode is known by now."""
    await ensure_same_venue(loop.ledger, exchange.venue)
    async with loop.lock:
        report = await loop.reconciler.run(startup=True)
    status = await loop.ledger.trading_state.get()
    state = status.state if status else TradingState.ACTIVE
    loop.state.trading = state
    log.info("Start-up reconciliation: %s; trading %s", report.summary(), state.value.upper())
    await events.emit(
        Event(
            "bot.started",
            f"bot started on {exchange.venue}",
            clock.now(),
            Severity.INFO,
            {"trading_state": state.value},
        )
    )


async def shutdown(loop: TradingLoop, reason: str) -> None:
    """Take no new positions; let an in-flight hedge finish; flush the ledger."""
    loop.state.stopping = True
    log.info("Stopping (%s)", reason)
    await wait_in_flight(loop)
    if loop.guard.pending:
        await loop.guard.check()
        if loop.guard.pending:
            log.error(
                "%d ledger record(s) could not be written before exit; the exchange "
                "keeps them and start-up reconciliation adopts them",
                loop.guard.pending,
            )
    await loop.events.emit(
        Event(
            "bot.stopped",
            f"bot stopped: {reason}",
            loop.clock.now(),
            Severity.INFO,
            {"reason": reason},
        )
    )


async def wait_in_flight(loop: TradingLoop) -> None:
    """Wait (bounded) for the execution lock: a hedge in flight finishes or unwinds."""
    if loop.lock.locked():
        log.info("Waiting for the hedge in flight to finish")
    try:
        await asyncio.wait_for(loop.lock.acquire(), timeout=SHUTDOWN_GRACE_SECONDS)
        loop.lock.release()
    except TimeoutError:
        log.error(
            "A hedge was still in flight after %.0fs; start-up reconciliation finishes "
            "it at the next start",
            SHUTDOWN_GRACE_SECONDS,
        )
