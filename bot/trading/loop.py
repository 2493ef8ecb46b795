"""The trading loop: the bot's jobs over the injected parts (the same in live, paper, backtest).

- `poll` (`MarketPoller`): one market-wide snapshot, observations stored;
- `capture_funding` (`FundingCapture`): after each funding time of a held perpetual, record
  the payments;
- `snapshot_balances` (`AccountSnapshots`): balances, positions and equity;
- `evaluate` (`Evaluator`): trading state → protective actions → strategy → risk gate →
  executor;
- `reconcile` (the `Reconciler`) and `heartbeat` (`Heartbeat`).

`evaluate` and `reconcile` share one lock, so an in-flight hedge is never reconciled
half-way, and shutdown waits on the same lock for it to finish.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from bot.circuit import ExchangeCircuit
from bot.clock import Clock
from bot.config import Config
from bot.delisting import DelistingWatch
from bot.domain import EventSink, Intent, MarketSnapshot, Pair
from bot.domain.fee_schedule import AccountFees
from bot.domain.params import FeeParams
from bot.exchange.port import ExchangePort
from bot.execution.entry_backoff import EntryBackoff
from bot.execution.executor import HedgeExecutor
from bot.fee_watch import FeeWatch
from bot.persistence.outage import OutageGuard
from bot.persistence.repositories import Ledger
from bot.reconcile import Reconciler
from bot.safe_strategy import SafeStrategy
from bot.trading.context import LoopContext, LoopPorts, LoopState, TradingParts
from bot.trading.evaluator import Evaluator
from bot.trading.funding import FundingCapture
from bot.trading.heartbeat import Heartbeat
from bot.trading.poller import MarketPoller
from bot.trading.snapshots import AccountSnapshots


@dataclass(frozen=True)
class MarketFeed:
    """Where snapshots come from, and the pairs known at start-up."""

    snapshot: Callable[[], Awaitable[MarketSnapshot]]
    pairs: Mapping[str, Pair]
    from_memory: bool = False
    """Streams: snapshots come from memory, so `evaluate` takes a fresh one first."""


class TradingLoop:
    """The bot's jobs over the injected components (the same in live and paper mode)."""

    def __init__(
        self,
        config: Config,
        ports: LoopPorts,
        parts: TradingParts,
        market: MarketFeed,
        *,
        rng: random.Random | None = None,
        heartbeat_parts: Sequence[Callable[[], Awaitable[str]]] = (),
    ) -> None:
        rng = rng or random.Random()
        # One backoff for every request path: no job asks the exchange while it is open.
        circuit = ExchangeCircuit(
            ports.clock.monotonic,
            max_seconds=config.exchange.outage_backoff_max_seconds,
            rng=rng,
        )
        self.ctx = ctx = LoopContext(config, ports, dict(market.pairs), circuit)
        self.parts = parts
        self._poll_before_evaluate = market.from_memory
        self.entry_backoff = EntryBackoff(
            ports.clock.monotonic,
            first_seconds=config.risk.entry_failure_backoff_seconds,
            max_seconds=config.risk.entry_failure_backoff_max_seconds,
            account_failures_to_stop=config.risk.account_failures_to_stop,
        )
        self.poller = MarketPoller(ctx, market.snapshot)
        self.fee_watch = FeeWatch(
            ports.exchange,
            ports.clock,
            ports.events,
            self.use_fees,
            every_seconds=config.schedule.fee_refresh_seconds,
        )
        self.funding = FundingCapture(ctx)
        self.snapshots = AccountSnapshots(ctx)
        self.evaluator = Evaluator(ctx, parts, self.entry_backoff)
        self._heartbeat = Heartbeat(ctx, heartbeat_parts)

    # --- what the jobs share (read by the app, the dashboard and the backtest) ------------
    @property
    def config(self) -> Config:
        return self.ctx.config

    @property
    def state(self) -> LoopState:
        return self.ctx.state

    @property
    def lock(self) -> asyncio.Lock:
        return self.ctx.lock

    @property
    def pairs(self) -> dict[str, Pair]:
        return self.ctx.pairs

    @property
    def circuit(self) -> ExchangeCircuit:
        return self.ctx.circuit

    @property
    def exchange(self) -> ExchangePort:
        return self.ctx.exchange

    @property
    def ledger(self) -> Ledger:
        return self.ctx.ledger

    @property
    def guard(self) -> OutageGuard:
        return self.ctx.guard

    @property
    def events(self) -> EventSink:
        return self.ctx.events

    @property
    def clock(self) -> Clock:
        return self.ctx.clock

    @property
    def strategy(self) -> SafeStrategy:
        return self.parts.strategy

    @property
    def executor(self) -> HedgeExecutor:
        return self.parts.executor

    @property
    def reconciler(self) -> Reconciler:
        return self.parts.reconciler

    @property
    def delisting(self) -> DelistingWatch:
        return self.evaluator.delisting

    def is_stopping(self) -> bool:
        """Tell whether shutdown has begun (checked again after every await)."""
        return self.ctx.is_stopping()

    # --- the jobs -------------------------------------------------------------------------
    async def poll(self) -> MarketSnapshot | None:
        """Take one market-wide snapshot; a deferred balance snapshot is taken after it."""
        snap = await self.poller.poll()
        if snap is not None:
            self.parts.executor.fee_prices.observe(snap.spot_quotes)
            if self.fee_watch.live:
                wanted = set(self.ctx.config.universe.symbols)
                await self.fee_watch.tick([p for p in snap.pairs if p.key in wanted] or snap.pairs)
        if snap is not None and self.ctx.state.snapshot_deferred:
            await self.snapshots.take()
        return snap

    def use_fees(self, fees: FeeParams, account: AccountFees | None = None) -> None:
        """Put `fees` (the rates paid) in force for the strategy's costs and the executor."""
        self.ctx.state.params = self.parts.params.model_copy(update={"fees": fees})
        self.parts.executor.use_fees(fees, spot_in_bnb=account.spot_bnb if account else None)

    async def capture_funding(self, *, force: bool = False) -> int:
        """Record the funding payments that are due (all since the window when `force`)."""
        return await self.funding.capture(force=force)

    async def snapshot_balances(self) -> Decimal | None:
        """Record balances, positions and equity; return the equity (None: not recorded)."""
        return await self.snapshots.take()

    async def evaluate(self) -> list[Intent]:
        """Strategy → risk gate → executor on the latest snapshot. Returns what was done."""
        if self._poll_before_evaluate and not self.ctx.state.stopping:
            await self.poll()  # streams: the snapshot comes from memory, so take a fresh one
        return await self.evaluator.evaluate()

    async def reconcile(self) -> None:
        """Run the periodic ledger/exchange comparison (alerts on drift)."""
        ctx = self.ctx
        if ctx.state.stopping or not ctx.guard.healthy or ctx.circuit.open:
            return
        async with ctx.lock:
            await self.parts.reconciler.run(startup=False)

    async def heartbeat(self) -> str:
        """Log one line: open hedges, equity, snapshot age, trading state."""
        return await self._heartbeat.beat()
