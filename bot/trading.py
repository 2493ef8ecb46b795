"""The jobs of the long-running bot. The scheduler calls each one; each does one thing.

- `poll`: one market-wide snapshot; observations stored, thinned per symbol per minute;
  exchange errors back off exponentially with jitter (the stale-data guard then blocks
  entries, existing hedges are kept, trading resumes by itself when data is fresh);
- `evaluate`: trading state → protective actions → strategy → risk gate → executor;
- `capture_funding`: after each funding time of a held perpetual, record the payments;
- `reconcile`, `snapshot_balances`, `heartbeat`.

`evaluate` and `reconcile` share one lock, so an in-flight hedge is never reconciled
half-way, and shutdown waits on the same lock for it to finish.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from bot.capital import CapitalWatch, capital_shortfalls
from bot.circuit import ExchangeCircuit
from bot.clock import Clock
from bot.config import Config
from bot.daily_loss import DailyLoss
from bot.delisting import DelistingWatch
from bot.domain import (
    Balance,
    CloseHedge,
    Event,
    EventSink,
    FundingPayment,
    FuturesAccount,
    Hedge,
    HedgeState,
    Intent,
    MarketSnapshot,
    OpenHedge,
    Pair,
    Portfolio,
    ResizeHedge,
    Severity,
)
from bot.domain.instruments import pair_of
from bot.domain.ledger import (
    BalanceSnapshot,
    MarketObservation,
    PositionSnapshot,
    TradingState,
    TradingStatus,
)
from bot.equity import equity_snapshot
from bot.errors import ExchangeError, TemporaryError
from bot.exchange.port import ExchangePort
from bot.exchange.venues import USDT_TERMS, VenueRouter, wallet_names
from bot.execution.delivery import awaiting_delivery, settle_delivered
from bot.execution.entry_backoff import EntryBackoff
from bot.execution.executor import HedgeExecutor
from bot.execution.sizing import common_step
from bot.persistence.outage import OutageGuard, is_db_outage
from bot.persistence.repositories import Ledger
from bot.reconcile import Reconciler
from bot.risk import AddMargin, Rebalance, RiskGate, RiskView
from strategies.base import StrategyParams
from strategies.carry import premium_index
from strategies.runner import SafeStrategy
from strategies.universe import select_universe

log = logging.getLogger(__name__)

ZERO = Decimal(0)


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


class TradingLoop:
    """The bot's jobs over the injected components (the same in live and paper mode)."""

    def __init__(
        self,
        *,
        config: Config,
        exchange: ExchangePort,
        snapshot: Callable[[], Awaitable[MarketSnapshot]],
        strategy: SafeStrategy,
        params: StrategyParams,
        risk: RiskGate,
        executor: HedgeExecutor,
        reconciler: Reconciler,
        ledger: Ledger,
        guard: OutageGuard,
        events: EventSink,
        clock: Clock,
        pairs: Mapping[str, Pair],
        rng: random.Random | None = None,
        poll_before_evaluate: bool = False,
        heartbeat_parts: Sequence[Callable[[], Awaitable[str]]] = (),
    ) -> None:
        self.config = config
        self._poll_before_evaluate = poll_before_evaluate
        self._heartbeat_parts = tuple(heartbeat_parts)  # e.g. stream health
        self.exchange = exchange
        self._snapshot = snapshot
        self.strategy = strategy
        self.params = params
        self.risk = risk
        self.executor = executor
        self.reconciler = reconciler
        self.ledger = ledger
        self.guard = guard
        self.events = events
        self.clock = clock
        self.pairs = dict(pairs)
        self.lock = asyncio.Lock()
        self.state = LoopState()
        self._rng = rng or random.Random()
        # One backoff for every request path: no job asks the exchange while it is open.
        self.circuit = ExchangeCircuit(
            clock.monotonic, max_seconds=config.exchange.outage_backoff_max_seconds, rng=self._rng
        )
        self._capital: CapitalWatch | None = None
        self.delisting = DelistingWatch(events, clock)
        self._outages_seen = 0  # database outages whose in-flight hedges are finished
        self._held_pairs: set[str] = set()
        self._held_futures: set[str] = set()  # short legs held: perpetual or dated symbols
        self._asset_price: dict[str, Decimal] = {}
        self._all_hedges: list[Hedge] = []
        self._funding_recorded: set[tuple[str, datetime]] = set()  # (perp, funding time)
        self._steps: dict[str, tuple[Pair, Decimal]] = {}  # pair key -> (pair, common step)
        self.entry_backoff = EntryBackoff(
            clock.monotonic,
            first_seconds=config.risk.entry_failure_backoff_seconds,
            max_seconds=config.risk.entry_failure_backoff_max_seconds,
            account_failures_to_stop=config.risk.account_failures_to_stop,
        )

    def is_stopping(self) -> bool:
        """Tell whether shutdown has begun (checked again after every await)."""
        return self.state.stopping

    # --- poll ---------------------------------------------------------------------------
    async def poll(self) -> MarketSnapshot | None:
        """Take one market-wide snapshot; back off on exchange errors (the circuit's probe)."""
        if self.circuit.open:
            return None
        started = self.clock.monotonic()
        snap = await self._poll()
        if snap is not None:
            self.state.poll_ms.append((self.clock.monotonic() - started) * 1000)
            if self.state.snapshot_deferred:
                await self.snapshot_balances()
        return snap

    async def _poll(self) -> MarketSnapshot | None:
        try:
            snap = await self._snapshot()
        except ExchangeError as exc:
            delay = self.circuit.failure()
            failures = self.circuit.failures
            log.warning(
                "Snapshot failed (%s); attempt %d, next try in %.1fs; no new entries "
                "on stale data, hedges kept",
                exc,
                failures,
                delay,
            )
            if failures == 3:
                await self.events.emit(
                    Event(
                        "exchange.outage",
                        f"market data failing: {exc}",
                        self.clock.now(),
                        Severity.ALERT,
                        {"error": str(exc)},
                    )
                )
            return None
        failures = self.circuit.success()
        if failures:
            log.info("Market data is back after %d failed attempt(s)", failures)
            await self.events.emit(
                Event(
                    "exchange.recovered",
                    "market data is back",
                    self.clock.now(),
                    Severity.INFO,
                    {"failures": failures},
                )
            )
        self._track_funding_times(snap)  # compares with the previous snapshot: before replacing it
        self.state.latest = snap
        # Pairs listed after start-up: hedges opened on them must be closable too.
        self.pairs.update((p.key, p) for p in snap.pairs if p.key not in self.pairs)
        self.pairs.update((p.perp.symbol, p) for p in snap.dated_pairs)  # keyed by future
        await self._store_observations(snap)
        return snap

    def _track_funding_times(self, snap: MarketSnapshot) -> None:
        previous = self.state.latest
        for symbol, info in snap.funding.items():
            if symbol in self.state.funding_due:
                continue
            before = previous.funding.get(symbol) if previous else None
            if before is not None and info.next_funding_time > before.next_funding_time:
                self.state.funding_due[symbol] = before.next_funding_time

    async def _store_observations(self, snap: MarketSnapshot) -> None:
        every = self.config.schedule.observation_every_seconds
        bucket = _floor_time(snap.taken_at, every)
        stored = self.state.last_observation_bucket
        # The dated futures held are observed too (status values open hedges from these).
        held = self._held_futures
        observed = (*snap.pairs, *(p for p in snap.dated_pairs if p.perp.symbol in held))
        if all(stored.get(p.perp.symbol) == bucket for p in observed):
            return  # every pair was stored in this bucket already
        keep = self._observed_symbols()
        rows: list[MarketObservation] = []
        for pair in observed:
            perp = pair.perp.symbol
            if pair.key not in keep or self.state.last_observation_bucket.get(perp) == bucket:
                continue
            info = snap.funding.get(perp)
            sq, pq = snap.spot_quotes.get(pair.spot.symbol), snap.perp_quotes.get(perp)
            premium = (
                premium_index(pq.bid, pq.ask, info.index_price)
                if info is not None and pq is not None and info.index_price > 0
                else None
            )
            rows.append(
                MarketObservation(
                    symbol=perp,
                    observed_at=bucket,
                    funding_rate=info.funding_rate if info else None,
                    next_funding_time=info.next_funding_time if info else None,
                    interval_hours=info.interval_hours if info else None,
                    mark_price=info.mark_price if info else None,
                    index_price=info.index_price if info else None,
                    interest_rate=info.interest_rate if info else None,
                    premium=premium,
                    spot_bid=sq.bid if sq else None,
                    spot_ask=sq.ask if sq else None,
                    perp_bid=pq.bid if pq else None,
                    perp_ask=pq.ask if pq else None,
                )
            )
            self.state.last_observation_bucket[perp] = bucket
        if rows:
            await self.guard.write(
                f"{len(rows)} observations", lambda: self.ledger.observations.upsert(rows)
            )

    def _observed_symbols(self) -> set[str]:
        """The strategy's own universe plus every pair a hedge is held on."""
        snap = self.state.latest
        keep = {h for h in self._held_pairs}
        if snap is not None:
            keep |= {p.key for p in select_universe(snap, self.config.universe)}
        return keep

    # --- evaluate -----------------------------------------------------------------------
    async def evaluate(self) -> list[Intent]:
        """Strategy → risk gate → executor on the latest snapshot. Returns what was done."""
        if self._poll_before_evaluate and not self.state.stopping:
            await self.poll()  # streams: the snapshot comes from memory, so take a fresh one
        snap = self.state.latest
        if self.state.stopping or snap is None:
            return []
        if self.circuit.open:
            log.debug(
                "Exchange backing off %.1fs more: evaluate skipped", self.circuit.seconds_left()
            )
            return []
        if not self.guard.healthy and not await self.guard.check():
            log.warning("Database unavailable: no new orders this cycle")
            return []
        async with self.lock:
            if self.is_stopping():
                return []
            started = self.clock.monotonic()
            try:
                if self.guard.outages > self._outages_seen:
                    await self._finish_in_flight()
                return await self._evaluate_locked(snap)
            except Exception as exc:
                if not is_db_outage(exc):
                    raise
                self.guard.mark_down(exc)
                return []
            finally:
                self.state.evaluate_ms.append((self.clock.monotonic() - started) * 1000)

    async def _finish_in_flight(self) -> None:
        """After a database outage, finish the hedges it interrupted (by client order id).

        Their orders' outcomes waited in the guard and are written by now; `recover` asks
        the exchange about every order not final yet before it sends anything.
        """
        outages = self.guard.outages
        in_flight = [HedgeState.OPENING, HedgeState.CLOSING, HedgeState.UNWINDING]
        for hedge in await self.ledger.hedges.in_states(in_flight):
            pair = self._pair_of(hedge)
            if pair is None:
                continue
            log.warning(
                "Database is back: finishing hedge %s (%s) by client order id",
                hedge.id,
                hedge.state.value.upper(),
            )
            self._remember(await self.executor.recover(hedge, pair))
            await self._book(hedge.id)
        self._outages_seen = outages

    async def _evaluate_locked(self, snap: MarketSnapshot) -> list[Intent]:
        """One evaluation; the caller holds the lock. Nothing is sent unless recorded first."""
        self.state.cycles += 1
        ledger_view = await self.ledger.cycle_view()  # one round trip per cycle
        self._refresh_trading_state(ledger_view.trading)
        hedges = ledger_view.active
        self._held_pairs = {h.pair for h in hedges}
        self._held_futures = {h.perp_symbol for h in hedges}
        known = {h.id: h for h in self._all_hedges} | {h.id: h for h in hedges}
        self._all_hedges = sorted(known.values(), key=lambda h: h.id)
        view = await self._risk_view(snap, hedges)
        switch = self.risk.trading_state_after(view)
        if switch is not None:
            await self._set_trading_state(*switch)
            view = await self._risk_view(snap, hedges)
        await self._protect(view, snap)
        portfolio = Portfolio(
            hedges=hedges,
            last_closed_at=ledger_view.last_closed_at,
            equity=self.state.daily.equity or ZERO,
        )
        intents = self.delisting.merge(
            await self.delisting.closes(hedges, snap),
            self.strategy.evaluate(snap, portfolio, self.params),
            snap,
        )
        accepted = await self.risk.review(intents, view, self.events)
        done: list[Intent] = []
        for intent in sorted(accepted, key=_execution_order):
            if self.is_stopping() and isinstance(intent, OpenHedge):
                break
            if await self._execute(intent, snap, hedges):
                done.append(intent)
        return done

    def _refresh_trading_state(self, status: TradingStatus | None) -> None:
        state = status.state if status else TradingState.ACTIVE
        if state is not self.state.trading:
            log.warning(
                "Trading state %s -> %s (%s, by %s)",
                self.state.trading.value.upper(),
                state.value.upper(),
                status.reason if status else "-",
                status.changed_by if status else "-",
            )
        if state is TradingState.ACTIVE and self.state.trading is not TradingState.ACTIVE:
            self.entry_backoff.reset_account()  # the operator resumed: try the account again
        self.state.trading = state

    async def _set_trading_state(self, state: TradingState, reason: str) -> None:
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

    async def _risk_view(self, snap: MarketSnapshot, hedges: list[Hedge]) -> RiskView:
        positions = {}
        try:
            positions = {p.symbol: p for p in await self.exchange.fetch_positions() if p.is_short}
        except ExchangeError as exc:
            self._exchange_failed(exc)
            log.warning("Positions unavailable for the risk view: %s", exc)
        prices = {
            p.key: q.mid
            for p in snap.pairs
            if (q := snap.spot_quotes.get(p.spot.symbol)) is not None
        }
        return RiskView(
            now=self.clock.now(),
            snapshot_at=snap.taken_at,
            trading=self.state.trading,
            hedges=hedges,
            positions=positions,
            prices=prices,
            leverage=self.config.exchange.leverage,
            daily_pnl=self.state.daily.pnl(),
            entry_blocks=self.entry_backoff.blocks(),
            snapshot=snap,
            # The executor equalises legs to the step both markets accept; so does the gate.
            step_sizes=self._step_sizes(),
            pairs=self.pairs,
            spot_fee_in_base=self.executor.spot_fee_in_base,
        )

    def _step_sizes(self) -> dict[str, Decimal]:
        """Return each known pair's common step, worked out again only for a new pair object."""
        steps = self._steps
        out: dict[str, Decimal] = {}
        for key, pair in self.pairs.items():
            known = steps.get(key)
            if known is None or known[0] is not pair:
                known = steps[key] = (pair, common_step(pair))
            out[key] = known[1]
        return out

    async def _protect(self, view: RiskView, snap: MarketSnapshot) -> None:
        by_id = {h.id: h for h in view.hedges}
        for action in self.risk.protect(view):
            hedge = by_id.get(action.hedge_id)
            pair = self._pair_of(hedge) if hedge else None
            if hedge is None or pair is None:
                continue
            await self.events.emit(
                Event(
                    "risk.protect",
                    f"hedge {hedge.id}: {action.reason}",
                    self.clock.now(),
                    Severity.ALERT,
                    {"action": type(action).__name__},
                    hedge.id,
                )
            )
            if isinstance(action, Rebalance):
                await self.executor.rebalance(hedge, pair)
            elif isinstance(action, ResizeHedge):
                sq, pq = (
                    snap.spot_quotes.get(pair.spot.symbol),
                    snap.perp_quotes.get(pair.perp.symbol),
                )
                if sq and pq:
                    await self.executor.resize(
                        hedge,
                        pair,
                        action.notional,
                        reason=action.reason,
                        spot_quote=sq,
                        perp_quote=pq,
                    )
            elif isinstance(action, AddMargin):
                await self._add_margin(hedge, pair, action, snap)

    async def _add_margin(
        self, hedge: Hedge, pair: Pair, action: AddMargin, snap: MarketSnapshot
    ) -> None:
        """Move spot USDT to futures for a short near liquidation; shrink it if that fails."""
        try:
            await self.exchange.transfer(
                "USDT", action.amount, from_wallet="spot", to_wallet="futures"
            )
            await self.events.emit(
                Event(
                    "risk.margin_added",
                    f"hedge {hedge.id}: moved {action.amount} USDT to futures",
                    self.clock.now(),
                    Severity.ALERT,
                    {"amount": str(action.amount)},
                    hedge.id,
                )
            )
            return
        except ExchangeError as exc:
            log.error(
                "Margin transfer for hedge %s failed (%s): reducing the hedge instead",
                hedge.id,
                exc,
            )
        sq, pq = snap.spot_quotes.get(pair.spot.symbol), snap.perp_quotes.get(pair.perp.symbol)
        if sq and pq:
            await self.executor.resize(
                hedge,
                pair,
                hedge.target_notional / 2,
                reason=f"{action.reason}; margin transfer failed",
                spot_quote=sq,
                perp_quote=pq,
            )

    async def _execute(self, intent: Intent, snap: MarketSnapshot, hedges: list[Hedge]) -> bool:
        try:
            if isinstance(intent, OpenHedge):
                if not self._may_open(intent):
                    return False
                pair = self._open_pair(intent, snap)
                sq = snap.spot_quotes.get(pair.spot.symbol) if pair else None
                pq = snap.perp_quotes.get(pair.perp.symbol) if pair else None
                if pair is None or sq is None or pq is None:
                    log.warning("No quotes for %s; skipping the open", intent.pair)
                    return False
                opened = await self.executor.open(
                    pair,
                    intent.notional,
                    reason=intent.reason,
                    metrics=intent.metrics,
                    spot_quote=sq,
                    perp_quote=pq,
                )
                if opened is not None:
                    self._remember(opened)
                    await self._after_entry(pair, opened)
                return opened is not None
            hedge = next((h for h in hedges if h.id == intent.hedge_id), None)
            pair = self._pair_of(hedge) if hedge else None
            if hedge is None or pair is None:
                return False
            if isinstance(intent, CloseHedge):
                hedge = await settle_delivered(
                    hedge, pair, self.exchange, self.ledger, self.clock, self.events
                )
                if awaiting_delivery(hedge, pair, self.clock):
                    log.info("Hedge %s: delivery price of %s unknown", hedge.id, pair.perp.symbol)
                    return False
                unpriced = _unpriced_legs(hedge, pair, snap)
                if unpriced:
                    log.warning(
                        "Hedge %s not closed now: no price for %s; neither leg sent, "
                        "retried next cycle",
                        hedge.id,
                        ", ".join(unpriced),
                    )
                    return False
                self._remember(await self.executor.close(hedge, pair, reason=intent.reason))
                await self._book(hedge.id)
                return True
            sq, pq = snap.spot_quotes.get(pair.spot.symbol), snap.perp_quotes.get(pair.perp.symbol)
            if sq is None or pq is None:
                return False
            await self.executor.resize(
                hedge, pair, intent.notional, reason=intent.reason, spot_quote=sq, perp_quote=pq
            )
            await self._book(hedge.id)
            return True
        except ExchangeError as exc:
            log.error("Executing %s failed: %s", type(intent).__name__, exc)
            await self.events.emit(
                Event(
                    "executor.error",
                    str(exc),
                    self.clock.now(),
                    Severity.ERROR,
                    {"intent": type(intent).__name__},
                )
            )
            return False

    def _pair_of(self, hedge: Hedge) -> Pair | None:
        return pair_of(self.pairs, hedge.pair, hedge.perp_symbol)

    def _open_pair(self, intent: OpenHedge, snap: MarketSnapshot) -> Pair | None:
        """The pair an open trades: the asset's perpetual, or the dated future it names."""
        if intent.future_symbol is not None:
            return self.pairs.get(intent.future_symbol) or next(
                (p for p in snap.dated_pairs if p.perp.symbol == intent.future_symbol), None
            )
        return self.pairs.get(intent.pair) or snap.pair(intent.pair)

    def _may_open(self, intent: OpenHedge) -> bool:
        """A roll's open waits until the hedge it replaces is CLOSED (no asset held twice)."""
        if intent.after_close is None:
            return True
        before = next((h for h in self._all_hedges if h.id == intent.after_close), None)
        if before is not None and before.state is HedgeState.CLOSED:
            return True
        log.warning(
            "Roll into %s skipped: hedge %s is %s, not CLOSED",
            intent.future_symbol,
            intent.after_close,
            before.state.value.upper() if before else "unknown",
        )
        return False

    async def _after_entry(self, pair: Pair, hedge: Hedge) -> None:
        """Book the entry's fees and losses; after a failed entry, cool the pair down."""
        await self._book(hedge.id)
        if hedge.state is HedgeState.OPEN:
            self.entry_backoff.record_success(pair.key)
            return
        if hedge.state not in (HedgeState.FAILED, HedgeState.UNWINDING):
            return  # OPENING with an unresolved order: reconciliation decides
        orders = await self.ledger.orders.for_hedge(hedge.id)
        codes = [o.error_code for o in orders if o.error_code is not None]
        failure = self.entry_backoff.record_failure(
            pair.key, codes, hedge.close_reason or "entry failed"
        )
        scope = "every pair" if failure.account_level else pair.key
        log.warning(
            "Entry of %s failed (%s): no new entry on %s for %.0fs",
            pair.key,
            failure.reason,
            scope,
            failure.cooldown_seconds,
        )
        await self.events.emit(
            Event(
                "entry.backoff",
                f"{scope}: no new entry for {failure.cooldown_seconds:.0f}s after a failed "
                f"entry of {pair.key} ({failure.reason})",
                self.clock.now(),
                Severity.WARNING,
                {
                    "pair": pair.key,
                    "reason": failure.reason,
                    "cooldown_seconds": failure.cooldown_seconds,
                    "account_level": failure.account_level,
                },
                hedge.id,
            )
        )
        if failure.reload_filters:
            await self._reload_filters(pair)
        if failure.stop_entries and self.state.trading is TradingState.ACTIVE:
            await self._set_trading_state(
                TradingState.REDUCING,
                f"entries stopped: repeated account-level entry failures ({failure.reason}, "
                f"last on {pair.key}); fix the account, then `carrybot resume`",
            )

    async def _reload_filters(self, pair: Pair) -> None:
        """Reload the markets (exchangeInfo) so the next try of `pair` uses current filters."""
        try:
            await self.exchange.load_instruments(reload=True)
            fresh = {p.key: p for p in await self.exchange.pairs()}
        except ExchangeError as exc:
            log.warning("Filters of %s not reloaded now (%s)", pair.key, exc)
            return
        if pair.key in fresh:
            self.pairs[pair.key] = fresh[pair.key]
            log.info(
                "Reloaded the filters of %s: spot min notional %s, perp min notional %s",
                pair.key,
                fresh[pair.key].spot.min_notional,
                fresh[pair.key].perp.min_notional,
            )

    async def _book(self, hedge_id: int) -> None:
        """Count the hedge's fees and realised P&L since the last snapshot toward the day."""
        self.state.daily.book(hedge_id, await self.ledger.fills.for_hedge(hedge_id))

    def _exchange_failed(self, exc: ExchangeError) -> None:
        """A temporary error on any request path backs every path off (see `circuit`)."""
        if isinstance(exc, TemporaryError):
            self.circuit.failure()

    def _remember(self, hedge: Hedge) -> None:
        """Keep the latest view of a hedge in memory (used while the database is down)."""
        self._all_hedges = [h for h in self._all_hedges if h.id != hedge.id] + [hedge]
        if hedge.state.is_active:
            self._held_futures.add(hedge.perp_symbol)  # observed from the next poll on

    # --- funding ------------------------------------------------------------------------
    async def capture_funding(self, *, force: bool = False) -> int:
        """Record funding payments once a held perpetual's funding time has passed.

        Returns how many payments were written; those this loop wrote before are skipped.
        """
        now = self.clock.now()
        delay = timedelta(seconds=self.config.schedule.funding_capture_delay_seconds)
        due = [t for t in self.state.funding_due.values() if now >= t + delay]
        if (not due and not force) or self.circuit.open:
            return 0  # while the exchange backs off, what is due waits
        try:
            window = self.state.last_funding_capture
            # After the first capture, only hedges held since the window can own a payment.
            self._all_hedges = (
                await self.ledger.hedges.in_states(None)
                if window is None
                else await self.ledger.hedges.held_since(window - timedelta(hours=1))
            )
        except Exception as exc:
            if not is_db_outage(exc):
                raise
            self.guard.mark_down(exc)  # carry on from memory: payments wait in the guard
        held = [h for h in self._all_hedges if h.opened_at is not None]
        if not held:
            self.state.funding_due.clear()
            return 0
        since = self.state.last_funding_capture or min(
            h.opened_at for h in held if h.opened_at is not None
        )
        try:
            payments = await self.exchange.fetch_funding_payments(since - timedelta(hours=1))
        except ExchangeError as exc:
            self._exchange_failed(exc)
            log.warning("Funding payments not fetched now (%s); will retry", exc)
            return 0
        # The window overlaps the previous one: payments this loop already wrote are skipped.
        recorded_before = self._funding_recorded
        by_symbol: dict[str, list[FundingPayment]] = {}
        for p in payments:
            if (p.symbol, p.funding_time) not in recorded_before:
                by_symbol.setdefault(p.symbol, []).append(p)
        batches: dict[tuple[str, int | None], list[FundingPayment]] = {}
        for symbol, rows in by_symbol.items():
            for payment in rows:
                owner = _owner(held, symbol, payment.funding_time)
                batches.setdefault((symbol, owner.id if owner else None), []).append(payment)
        owned = [(p, owner_id) for (_, owner_id), batch in batches.items() for p in batch]
        recorded = 0
        if owned:  # one write for the whole capture, each payment with its owner
            first = min(p.funding_time for p, _ in owned)
            ok = await self.guard.write(
                f"{len(owned)} funding payment(s) from {first:%Y-%m-%d %H:%M}",
                lambda: self.ledger.funding.record_owned(self.exchange.venue, owned),
            )
            if ok:
                recorded = len(owned)
                recorded_before.update((p.symbol, p.funding_time) for p, _ in owned)
        window_start = since - timedelta(hours=1)
        self._funding_recorded = {k for k in recorded_before if k[1] >= window_start}
        for symbol in [s for s, t in self.state.funding_due.items() if now >= t + delay]:
            del self.state.funding_due[symbol]
        self.state.last_funding_capture = now - timedelta(hours=12)
        if payments and log.isEnabledFor(logging.INFO):
            log.info(
                "Funding capture: %d payment(s) seen since %s", len(payments), since.isoformat()
            )
        return recorded

    # --- periodic checks ----------------------------------------------------------------
    async def reconcile(self) -> None:
        """Run the periodic ledger/exchange comparison (alerts on drift)."""
        if self.state.stopping or not self.guard.healthy or self.circuit.open:
            return
        async with self.lock:
            await self.reconciler.run(startup=False)

    async def snapshot_balances(self) -> Decimal | None:
        """Record balances, positions and equity; track the day's starting equity.

        A snapshot with a held asset unpriced is deferred (nothing written, nothing used)
        and taken again after the next poll that prices it.
        """
        if self.circuit.open:
            self.state.snapshot_deferred = True  # taken after the poll that closes it
            return None
        try:
            spot = await self.exchange.fetch_spot_balances()
            futures = await self.exchange.fetch_futures_account()
            positions = await self.exchange.fetch_positions()
        except ExchangeError as exc:
            self._exchange_failed(exc)
            log.warning("Balances not fetched now: %s", exc)
            return None
        now = self.clock.now()
        await self._watch_capital(spot, futures)
        prices, priceable = self._asset_prices()
        taken = equity_snapshot(
            now, spot, futures, prices, priceable, wallets=wallet_names(self.exchange)
        )
        if not taken.complete:
            if not self.state.snapshot_deferred:
                log.info(
                    "Balance snapshot deferred: no fresh price yet for %s (an unpriced "
                    "asset is not a loss); retried after the next poll",
                    ", ".join(taken.missing),
                )
            self.state.snapshot_deferred = True
            return None
        self.state.snapshot_deferred = False
        position_rows = [
            PositionSnapshot(
                now,
                p.symbol,
                p.position_side,
                p.size,
                p.is_short,
                p.entry_price,
                p.mark_price,
                p.liquidation_price,
                p.unrealized_pnl,
                p.margin_ratio,
                p.leverage,
            )
            for p in positions
        ]
        await self.guard.write(
            "balance snapshot", lambda: self._write_snapshot(taken.rows, position_rows)
        )
        start = None
        if self.state.daily.needs_day_start(now) and self.guard.healthy:
            day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
            start = await self.ledger.snapshots.first_value_since("total", day)
        self.state.daily.snapshot(taken.equity, now, start)
        return taken.equity

    async def _watch_capital(self, spot: Mapping[str, Balance], futures: FuturesAccount) -> None:
        """Across venues, alert when one venue's balance cannot carry a configured hedge."""
        if not isinstance(self.exchange, VenueRouter):
            return
        if self._capital is None:
            self._capital = CapitalWatch(self.events, self.clock)
        spot_venue, futures_venue = self.exchange.leg_venues
        shortfalls = capital_shortfalls(
            self.config, spot_venue=spot_venue, futures_venue=futures_venue, spot=spot,
            futures=futures, spot_quotes={p.spot.quote for p in self.pairs.values()},
            usd_per_usdt=self.exchange.usd_per_usdt,
        )  # fmt: skip
        await self._capital.observe(shortfalls)

    async def _write_snapshot(
        self, rows: list[BalanceSnapshot], positions: list[PositionSnapshot]
    ) -> None:
        await self.ledger.snapshots.record(rows, positions)

    def _asset_prices(self) -> tuple[dict[str, Decimal], set[str]]:
        """Return (fresh USDT bid per asset, assets that have a USDT market).

        Prices come from the latest snapshot only when it is fresh (`max_data_age_seconds`);
        an asset quoted before, or with a listed USDT pair, counts as priceable.
        """
        snap = self.state.latest
        prices: dict[str, Decimal] = {}
        if snap is not None:
            age = (self.clock.now() - snap.taken_at).total_seconds()
            for pair in snap.pairs:
                quote = snap.spot_quotes.get(pair.spot.symbol)
                # a VenueRouter shows USD-quoted spot in USDT terms, so those price too
                if quote is not None and pair.spot.quote in USDT_TERMS:
                    self._asset_price[pair.base] = quote.bid
                    if age <= self.config.risk.max_data_age_seconds:
                        prices[pair.base] = quote.bid
        priceable = set(self._asset_price) | {
            p.base for p in self.pairs.values() if p.spot.quote in USDT_TERMS
        }
        rate = getattr(self.exchange, "usd_per_usdt", None)
        if isinstance(rate, Decimal) and rate > 0:
            prices["USD"] = self._asset_price["USD"] = 1 / rate
            priceable.add("USD")
        return prices, priceable

    async def heartbeat(self) -> str:
        """Log one line: open hedges, equity, snapshot age, trading state."""
        snap = self.state.latest
        age = (self.clock.now() - snap.taken_at).total_seconds() if snap else None
        try:
            open_count = len(await self.ledger.hedges.in_states([HedgeState.OPEN]))
        except Exception:
            open_count = -1
        known = self.state.daily.equity
        equity = f"{known:.2f} USDT" if known is not None else "unknown"
        line = f"Heartbeat: {open_count if open_count >= 0 else '?'} open hedge(s), equity {equity}"
        line += (
            f", last snapshot {'never' if age is None else f'{age:.0f}s ago'}, "
            f"trading {self.state.trading.value.upper()}"
            f"{', database DOWN' if not self.guard.healthy else ''}"
        )
        for name, samples in (("poll", self.state.poll_ms), ("evaluate", self.state.evaluate_ms)):
            if samples:
                ordered = sorted(samples)
                p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
                line += f", {name} mean {sum(ordered) / len(ordered):.1f} ms p99 {p99:.1f} ms"
        for part in self._heartbeat_parts:
            line += f", {await part()}"
        log.info("%s", line)
        return line


def _execution_order(intent: Intent) -> int:
    """Closes first (they free capacity for rotation), then resizes, then opens."""
    if isinstance(intent, CloseHedge):
        return 0
    if isinstance(intent, ResizeHedge):
        return 1
    return 2


def _unpriced_legs(hedge: Hedge, pair: Pair, snap: MarketSnapshot) -> list[str]:
    """Return the symbols of the hedge's held legs that the snapshot cannot price.

    A close sends both legs or neither: one leg sent alone would leave the other naked.
    """
    missing = []
    if hedge.spot_quantity > 0 and pair.spot.symbol not in snap.spot_quotes:
        missing.append(pair.spot.symbol)
    if hedge.perp_quantity > 0 and pair.perp.symbol not in snap.perp_quotes:
        missing.append(pair.perp.symbol)
    return missing


def _owner(hedges: list[Hedge], perp_symbol: str, at: datetime) -> Hedge | None:
    """Return the hedge that held `perp_symbol` at `at` (the oldest, if several)."""
    for h in hedges:
        if h.perp_symbol != perp_symbol or h.opened_at is None:
            continue
        if h.opened_at <= at and (h.closed_at is None or h.closed_at >= at):
            return h
    return None


def _floor_time(when: datetime, seconds: float) -> datetime:
    epoch = when.timestamp()
    return datetime.fromtimestamp(epoch - epoch % seconds, tz=UTC)
