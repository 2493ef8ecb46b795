"""What the loop's jobs share: the ports they use, and what they remember between runs.

`LoopPorts` is what each job talks to (exchange, ledger, outage guard, event sink, clock);
`LoopContext` adds the shared memory: the latest snapshot and trading state (`LoopState`),
the known pairs, the hedges held, the exchange's backoff (`ExchangeCircuit`) and the one
lock under which hedges are evaluated and reconciled.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from bot.circuit import ExchangeCircuit
from bot.clock import Clock
from bot.config import Config
from bot.daily_loss import DailyLoss
from bot.domain import Event, EventSink, Hedge, MarketSnapshot, Pair, Severity
from bot.domain.instruments import pair_of
from bot.domain.ledger import TradingState
from bot.domain.strategy import StrategyParams
from bot.errors import ExchangeError, TemporaryError
from bot.exchange.port import ExchangePort
from bot.execution.executor import HedgeExecutor
from bot.persistence.outage import OutageGuard
from bot.persistence.repositories import Ledger
from bot.reconcile import Reconciler
from bot.risk import RiskGate
from bot.safe_strategy import SafeStrategy


@dataclass
class LoopState:
    """What the jobs share between runs (in memory; the ledger has the rest)."""

    latest: MarketSnapshot | None = None
    trading: TradingState = TradingState.ACTIVE
    stopping: bool = False
    last_observation_bucket: dict[str, datetime] = field(default_factory=dict)
    funding_due: dict[str, datetime] = field(default_factory=dict)
    last_funding_capture: datetime | None = None
    daily: DailyLoss = field(default_factory=DailyLoss)
    snapshot_deferred: bool = False
    cycles: int = 0
    poll_ms: deque[float] = field(default_factory=lambda: deque(maxlen=1000))
    evaluate_ms: deque[float] = field(default_factory=lambda: deque(maxlen=1000))
    params: StrategyParams | None = None
    """The strategy parameters in force when they differ from the parts' (the live
    account's fees, see `bot.fee_watch`); None: the parts' own."""


@dataclass(frozen=True)
class LoopPorts:
    """The outside world of the loop's jobs; modes differ only in what is plugged in here."""

    exchange: ExchangePort
    ledger: Ledger
    guard: OutageGuard
    events: EventSink
    clock: Clock


@dataclass(frozen=True)
class TradingParts:
    """What decides and acts: strategy and its parameters, risk gate, executor, reconciler."""

    strategy: SafeStrategy
    params: StrategyParams
    risk: RiskGate
    executor: HedgeExecutor
    reconciler: Reconciler


@dataclass
class HeldHedges:
    """The hedges the loop knows of, kept in memory (used while the database is down)."""

    pairs: set[str] = field(default_factory=set)
    """Pair keys of the active hedges."""
    futures: set[str] = field(default_factory=set)
    """Short legs held: perpetual or dated symbols (observed from the next poll on)."""
    all: list[Hedge] = field(default_factory=list)
    """Every hedge seen, active or not, by id."""

    def replace_active(self, active: list[Hedge]) -> None:
        """Take the ledger's active hedges as the held ones (and remember them)."""
        self.pairs = {h.pair for h in active}
        self.futures = {h.perp_symbol for h in active}
        known = {h.id: h for h in self.all} | {h.id: h for h in active}
        self.all = sorted(known.values(), key=lambda h: h.id)

    def remember(self, hedge: Hedge) -> None:
        """Keep the latest view of `hedge`."""
        self.all = [h for h in self.all if h.id != hedge.id] + [hedge]
        if hedge.state.is_active:
            self.futures.add(hedge.perp_symbol)


@dataclass
class LoopContext:
    """Everything the jobs of one loop share."""

    config: Config
    ports: LoopPorts
    pairs: dict[str, Pair]
    circuit: ExchangeCircuit
    state: LoopState = field(default_factory=LoopState)
    held: HeldHedges = field(default_factory=HeldHedges)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def exchange(self) -> ExchangePort:
        return self.ports.exchange

    @property
    def ledger(self) -> Ledger:
        return self.ports.ledger

    @property
    def guard(self) -> OutageGuard:
        return self.ports.guard

    @property
    def events(self) -> EventSink:
        return self.ports.events

    @property
    def clock(self) -> Clock:
        return self.ports.clock

    def is_stopping(self) -> bool:
        """Tell whether shutdown has begun (checked again after every await)."""
        return self.state.stopping

    def exchange_failed(self, exc: ExchangeError) -> None:
        """A temporary error on any request path backs every path off (see `circuit`)."""
        if isinstance(exc, TemporaryError):
            self.circuit.failure()

    def pair_of(self, hedge: Hedge) -> Pair | None:
        """The pair `hedge` trades (its dated future's pair for a dated hedge)."""
        return pair_of(self.pairs, hedge.pair, hedge.perp_symbol)

    async def book(self, hedge_id: int) -> None:
        """Count the hedge's fees and realised P&L since the last snapshot toward the day."""
        hedge = await self.ledger.hedges.get(hedge_id)
        inverse = (
            {s: Decimal(hedge.metrics["contract_size"]) for s in hedge.short_symbols}
            if hedge is not None and hedge.is_coinm
            else None
        )
        self.state.daily.book(hedge_id, await self.ledger.fills.for_hedge(hedge_id), inverse)

    async def set_trading_state(self, state: TradingState, reason: str) -> None:
        """Record a trading state the risk limits require, and alert on it."""
        await self.ledger.trading_state.set(
            state, reason=reason, changed_by="risk", at=self.clock.now()
        )
        await self.events.emit(
            Event(
                "trading.state",
                f"trading {state.value.upper()}: {reason}",
                self.clock.now(),
                Severity.ALERT,
                {"state": state.value, "reason": reason},
            )
        )
        self.state.trading = state
