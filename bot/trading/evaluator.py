"""The evaluator: trading state → protective actions → strategy → risk gate → executor.

It runs under the loop's lock (shared with reconciliation), so an in-flight hedge is never
reconciled half-way. Nothing is sent unless it was recorded first; after a database outage
the hedges it interrupted are finished (by client order id) before anything new is decided.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import assert_never

from bot.delisting import DelistingWatch
from bot.domain import (
    Event,
    Hedge,
    HedgeState,
    Intent,
    MarketSnapshot,
    Pair,
    Portfolio,
    ResizeHedge,
    RollHedge,
    Severity,
)
from bot.domain.ledger import TradingState, TradingStatus, TransferStatus
from bot.errors import ExchangeError, TemporaryError
from bot.execution.entry_backoff import EntryBackoff
from bot.execution.sizing import common_step
from bot.persistence.outage import is_db_outage
from bot.risk import AddMargin, Rebalance, RiskView
from bot.trading.context import LoopContext, TradingParts
from bot.trading.intents import IntentRunner
from bot.trading.operator_close import OperatorCloses

log = logging.getLogger(__name__)

ZERO = Decimal(0)


class Evaluator:
    """One evaluation of the latest snapshot per call."""

    def __init__(self, ctx: LoopContext, parts: TradingParts, entry_backoff: EntryBackoff) -> None:
        self._ctx = ctx
        self._parts = parts
        self._entry_backoff = entry_backoff
        self._intents = IntentRunner(ctx, parts.executor, entry_backoff)
        self.delisting = DelistingWatch(ctx.events, ctx.clock)
        self.operator = OperatorCloses(ctx)
        self._outages_seen = 0  # database outages whose in-flight hedges are finished
        self._steps: dict[str, tuple[Pair, Decimal]] = {}  # pair key -> (pair, common step)

    async def evaluate(self) -> list[Intent]:
        """Strategy → risk gate → executor on the latest snapshot. Returns what was done."""
        ctx = self._ctx
        snap = ctx.state.latest
        if ctx.state.stopping or snap is None:
            return []
        if ctx.circuit.open:
            log.debug(
                "Exchange backing off %.1fs more: evaluate skipped", ctx.circuit.seconds_left()
            )
            return []
        if not ctx.guard.healthy and not await ctx.guard.check():
            log.warning("Database unavailable: no new orders this cycle")
            return []
        async with ctx.lock:
            if ctx.is_stopping():  # shutdown may have begun while the lock was awaited
                return []
            started = ctx.clock.monotonic()
            try:
                if ctx.guard.outages > self._outages_seen:
                    await self._finish_in_flight()
                return await self._evaluate_locked(snap)
            except Exception as exc:
                if not is_db_outage(exc):
                    raise
                ctx.guard.mark_down(exc)
                return []
            finally:
                ctx.state.evaluate_ms.append((ctx.clock.monotonic() - started) * 1000)

    async def _finish_in_flight(self) -> None:
        """After a database outage, finish the hedges it interrupted (by client order id).

        Their orders' outcomes waited in the guard and are written by now; `recover` asks
        the exchange about every order not final yet before it sends anything.
        """
        ctx = self._ctx
        outages = ctx.guard.outages
        in_flight = [HedgeState.OPENING, HedgeState.CLOSING, HedgeState.UNWINDING]
        for hedge in await ctx.ledger.hedges.in_states(in_flight):
            pair = ctx.pair_of(hedge)
            if pair is None:
                continue
            log.warning(
                "Database is back: finishing hedge %s (%s) by client order id",
                hedge.id,
                hedge.state.value.upper(),
            )
            ctx.held.remember(await self._parts.executor.recover(hedge, pair))
            await ctx.book(hedge.id)
        self._outages_seen = outages

    async def _evaluate_locked(self, snap: MarketSnapshot) -> list[Intent]:
        """One evaluation; the caller holds the lock. Nothing is sent unless recorded first."""
        ctx, parts = self._ctx, self._parts
        ctx.state.cycles += 1
        ledger_view = await ctx.ledger.cycle_view()  # one round trip per cycle
        self._refresh_trading_state(ledger_view.trading)
        hedges = ledger_view.active
        ctx.held.replace_active(hedges)
        view = await self._risk_view(snap, hedges)
        switch = parts.risk.trading_state_after(view)
        if switch is not None:
            await ctx.set_trading_state(*switch)
            view = await self._risk_view(snap, hedges)
        if await self._protect(view, snap):
            # A protective action changed legs: the strategy, the gate and the intents work
            # from the hedges as they are now, not as they were before it (a resize of the
            # old legs would record quantities the exchange does not hold).
            hedges = await ctx.ledger.hedges.active()
            ctx.held.replace_active(hedges)
            view = await self._risk_view(snap, hedges)
        portfolio = Portfolio(
            hedges=hedges,
            last_closed_at=ledger_view.last_closed_at,
            equity=ctx.state.daily.equity or ZERO,
        )
        requested = ledger_view.close_requests
        closes = self.operator.intents(requested, hedges)
        by_operator = {c.hedge_id for c in closes}
        closes += [
            c for c in await self.delisting.closes(hedges, snap) if c.hedge_id not in by_operator
        ]
        intents = self.delisting.merge(
            closes,
            parts.strategy.evaluate(snap, portfolio, ctx.state.params or parts.params),
            snap,
        )
        intents = self._without_cooling_rolls(intents)
        accepted = await parts.risk.review(intents, view, ctx.events)
        done = await self._intents.run(accepted, snap, hedges)
        if requested:
            await self.operator.settle(requested, hedges)
        return done

    def _without_cooling_rolls(self, intents: list[Intent]) -> list[Intent]:
        """Drop the rolls of hedges cooling down after a failed roll: no order, no event
        (the failure was reported once; the close before delivery is not held back)."""
        executor = self._parts.executor
        kept: list[Intent] = []
        for intent in intents:
            if isinstance(intent, RollHedge):
                blocked = executor.roll_blocked(intent.hedge_id)
                if blocked is not None:
                    log.debug("Hedge %s: %s", intent.hedge_id, blocked)
                    continue
            kept.append(intent)
        return kept

    def _refresh_trading_state(self, status: TradingStatus | None) -> None:
        state = self._ctx.state
        trading = status.state if status else TradingState.ACTIVE
        if trading is not state.trading:
            log.warning(
                "Trading state %s -> %s (%s, by %s)",
                state.trading.value.upper(),
                trading.value.upper(),
                status.reason if status else "-",
                status.changed_by if status else "-",
            )
        if trading is TradingState.ACTIVE and state.trading is not TradingState.ACTIVE:
            self._entry_backoff.reset_account()  # the operator resumed: try the account again
        state.trading = trading

    async def _risk_view(self, snap: MarketSnapshot, hedges: list[Hedge]) -> RiskView:
        ctx = self._ctx
        positions = {}
        # The gate reads positions for the liquidation distance of hedges only: with none
        # held there is nothing to ask the exchange (one request, or a margin computation).
        if hedges:
            try:
                positions = {
                    p.symbol: p for p in await ctx.exchange.fetch_positions() if p.is_short
                }
            except ExchangeError as exc:
                ctx.exchange_failed(exc)
                log.warning("Positions unavailable for the risk view: %s", exc)
        prices = {
            p.key: q.mid
            for p in snap.pairs
            if (q := snap.spot_quotes.get(p.spot.symbol)) is not None
        }
        return RiskView(
            now=ctx.clock.now(),
            snapshot_at=snap.taken_at,
            trading=ctx.state.trading,
            hedges=hedges,
            positions=positions,
            prices=prices,
            leverage=ctx.config.exchange.leverage,
            daily_pnl=ctx.state.daily.pnl(),
            entry_blocks=self._entry_backoff.blocks(),
            snapshot=snap,
            # The executor equalises legs to the step both markets accept; so does the gate.
            step_sizes=self._step_sizes(),
            pairs=ctx.pairs,
            spot_fee_in_base=self._parts.executor.spot_fee_in_base,
        )

    def _step_sizes(self) -> dict[str, Decimal]:
        """Return each known pair's common step, worked out again only for a new pair object."""
        steps = self._steps
        out: dict[str, Decimal] = {}
        for key, pair in self._ctx.pairs.items():
            known = steps.get(key)
            if known is None or known[0] is not pair:
                known = steps[key] = (pair, common_step(pair))
            out[key] = known[1]
        return out

    async def _protect(self, view: RiskView, snap: MarketSnapshot) -> bool:
        """Carry out what the limits require (rebalance, shrink, add margin) before entries;
        return whether any action was carried out."""
        ctx, executor = self._ctx, self._parts.executor
        by_id = {h.id: h for h in view.hedges}
        acted = False
        for action in self._parts.risk.protect(view):
            hedge = by_id.get(action.hedge_id)
            pair = ctx.pair_of(hedge) if hedge else None
            if hedge is None or pair is None:
                continue
            if isinstance(action, Rebalance) and executor.equalise_paused(hedge):
                continue  # its correction was rejected: paused (one ALERT), not sent each cycle
            acted = True
            await ctx.events.emit(
                Event(
                    "risk.protect",
                    f"hedge {hedge.id}: {action.reason}",
                    ctx.clock.now(),
                    Severity.ALERT,
                    {"action": type(action).__name__},
                    hedge.id,
                )
            )
            match action:
                case Rebalance():
                    await executor.rebalance(hedge, pair)
                case ResizeHedge():
                    sq = snap.spot_quotes.get(pair.spot.symbol)
                    pq = snap.perp_quotes.get(pair.perp.symbol)
                    if sq and pq:
                        await executor.resize(
                            hedge,
                            pair,
                            action.notional,
                            reason=action.reason,
                            spot_quote=sq,
                            perp_quote=pq,
                        )
                case AddMargin():
                    await self._add_margin(hedge, pair, action, snap)
                case _:
                    assert_never(action)
        return acted

    async def _add_margin(
        self, hedge: Hedge, pair: Pair, action: AddMargin, snap: MarketSnapshot
    ) -> None:
        """Move spot USDT to futures for a short near liquidation (a `transfers` row); shrink
        it if that fails. A lost answer is recorded UNKNOWN (nothing resolves it later: the
        shrink follows anyway)."""
        ctx = self._ctx
        record = await ctx.ledger.transfers.request(
            hedge_id=hedge.id,
            asset="USDT",
            amount=action.amount,
            from_wallet="spot",
            to_wallet="futures",
            reason=f"add margin: {action.reason}",
            at=ctx.clock.now(),
        )
        try:
            tran_id = await ctx.exchange.transfer(
                "USDT", action.amount, from_wallet="spot", to_wallet="futures"
            )
            await ctx.ledger.transfers.finish(
                record.id, status=TransferStatus.DONE, at=ctx.clock.now(), exchange_id=tran_id
            )
            await ctx.events.emit(
                Event(
                    "risk.margin_added",
                    f"hedge {hedge.id}: moved {action.amount} USDT to futures",
                    ctx.clock.now(),
                    Severity.ALERT,
                    {"amount": str(action.amount)},
                    hedge.id,
                )
            )
            return
        except ExchangeError as exc:
            unknown = isinstance(exc, TemporaryError)
            await ctx.ledger.transfers.finish(
                record.id,
                status=TransferStatus.UNKNOWN if unknown else TransferStatus.FAILED,
                at=ctx.clock.now(),
                error=str(exc),
            )
            log.error(
                "Margin transfer for hedge %s failed (%s): reducing the hedge instead",
                hedge.id,
                exc,
            )
        sq, pq = snap.spot_quotes.get(pair.spot.symbol), snap.perp_quotes.get(pair.perp.symbol)
        if sq and pq:
            await self._parts.executor.resize(
                hedge,
                pair,
                hedge.target_notional / 2,
                reason=f"{action.reason}; margin transfer failed",
                spot_quote=sq,
                perp_quote=pq,
            )
