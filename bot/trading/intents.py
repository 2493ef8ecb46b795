"""Carry out the intents the risk gate accepted: one `match` over open, close and resize.

Closes go first (they free capacity for rotation), then resizes and rolls, then opens. A
close sends both legs or neither; a roll moves a dated hedge's short to a later contract
(both futures orders at once, the spot kept) only with all three quotes; an unfinished roll
is finished before anything else is done with its hedge; a failed entry cools its pair (or
the whole account) down, and may stop entries altogether.
"""

from __future__ import annotations

import logging
from typing import assert_never

from bot.domain import (
    CloseHedge,
    Event,
    Hedge,
    HedgeState,
    Intent,
    MarketSnapshot,
    OpenHedge,
    Pair,
    ResizeHedge,
    RollHedge,
    Severity,
)
from bot.domain.hedge import ROLL_TO
from bot.domain.instruments import pair_of
from bot.domain.ledger import TradingState
from bot.errors import ExchangeError
from bot.execution.delivery import awaiting_delivery, settle_delivered
from bot.execution.entry_backoff import EntryBackoff
from bot.execution.executor import HedgeExecutor
from bot.trading.context import LoopContext

log = logging.getLogger(__name__)


class IntentRunner:
    """Send each accepted intent to the executor; book what it did."""

    def __init__(
        self, ctx: LoopContext, executor: HedgeExecutor, entry_backoff: EntryBackoff
    ) -> None:
        self._ctx = ctx
        self._executor = executor
        self._entry_backoff = entry_backoff

    async def run(
        self, accepted: list[Intent], snap: MarketSnapshot, hedges: list[Hedge]
    ) -> list[Intent]:
        """Execute `accepted` in execution order; return the intents that were carried out."""
        done: list[Intent] = []
        rolling = await self._finish_rolls(hedges)
        for intent in sorted(accepted, key=execution_order):
            if self._ctx.is_stopping() and isinstance(intent, OpenHedge):
                break
            if getattr(intent, "hedge_id", None) in rolling:
                continue  # its hedge's unfinished roll was taken on instead this cycle
            if await self._execute(intent, snap, hedges):
                done.append(intent)
        return done

    async def _execute(self, intent: Intent, snap: MarketSnapshot, hedges: list[Hedge]) -> bool:
        ctx = self._ctx
        try:
            match intent:
                case OpenHedge():
                    return await self._open(intent, snap)
                case CloseHedge():
                    return await self._close(intent, snap, hedges)
                case ResizeHedge():
                    return await self._resize(intent, snap, hedges)
                case RollHedge():
                    return await self._roll(intent, snap, hedges)
                case _:
                    assert_never(intent)
        except ExchangeError as exc:
            log.error("Executing %s failed: %s", type(intent).__name__, exc)
            await ctx.events.emit(
                Event(
                    "executor.error",
                    str(exc),
                    ctx.clock.now(),
                    Severity.ERROR,
                    {"intent": type(intent).__name__},
                )
            )
            return False

    async def _open(self, intent: OpenHedge, snap: MarketSnapshot) -> bool:
        pair = self._open_pair(intent, snap)
        sq = snap.spot_quotes.get(pair.spot.symbol) if pair else None
        pq = snap.perp_quotes.get(pair.perp.symbol) if pair else None
        if pair is None or sq is None or pq is None:
            log.warning("No quotes for %s; skipping the open", intent.pair)
            return False
        opened = await self._executor.open(
            pair,
            intent.notional,
            reason=intent.reason,
            metrics=intent.metrics,
            spot_quote=sq,
            perp_quote=pq,
        )
        if opened is not None:
            self._ctx.held.remember(opened)
            await self._after_entry(pair, opened)
        return opened is not None

    def _held(self, hedge_id: int, hedges: list[Hedge]) -> tuple[Hedge, Pair] | None:
        hedge = next((h for h in hedges if h.id == hedge_id), None)
        pair = self._ctx.pair_of(hedge) if hedge else None
        return (hedge, pair) if hedge is not None and pair is not None else None

    async def _close(self, intent: CloseHedge, snap: MarketSnapshot, hedges: list[Hedge]) -> bool:
        ctx = self._ctx
        held = self._held(intent.hedge_id, hedges)
        if held is None:
            return False
        hedge, pair = held
        hedge = await settle_delivered(hedge, pair, ctx.exchange, ctx.ledger, ctx.clock, ctx.events)
        if awaiting_delivery(hedge, pair, ctx.clock):
            log.info("Hedge %s: delivery price of %s unknown", hedge.id, pair.perp.symbol)
            return False
        unpriced = _unpriced_legs(hedge, pair, snap)
        if unpriced:
            log.warning(
                "Hedge %s not closed now: no price for %s; neither leg sent, retried next cycle",
                hedge.id,
                ", ".join(unpriced),
            )
            return False
        ctx.held.remember(await self._executor.close(hedge, pair, reason=intent.reason))
        await ctx.book(hedge.id)
        return True

    async def _resize(self, intent: ResizeHedge, snap: MarketSnapshot, hedges: list[Hedge]) -> bool:
        held = self._held(intent.hedge_id, hedges)
        if held is None:
            return False
        hedge, pair = held
        sq, pq = snap.spot_quotes.get(pair.spot.symbol), snap.perp_quotes.get(pair.perp.symbol)
        if sq is None or pq is None:
            return False
        await self._executor.resize(
            hedge, pair, intent.notional, reason=intent.reason, spot_quote=sq, perp_quote=pq
        )
        await self._ctx.book(hedge.id)
        return True

    async def _roll(self, intent: RollHedge, snap: MarketSnapshot, hedges: list[Hedge]) -> bool:
        ctx = self._ctx
        held = self._held(intent.hedge_id, hedges)
        into = self._dated_pair(intent.future_symbol, snap)
        if held is None or into is None:
            return False
        hedge, pair = held
        sq = snap.spot_quotes.get(pair.spot.symbol)
        held_q = snap.perp_quotes.get(pair.perp.symbol)
        into_q = snap.perp_quotes.get(into.perp.symbol)
        if sq is None or held_q is None or into_q is None:
            log.warning(
                "Hedge %s not rolled now: no quotes for %s, %s and %s; nothing sent",
                hedge.id,
                pair.spot.symbol,
                pair.perp.symbol,
                into.perp.symbol,
            )
            return False
        ctx.held.remember(
            await self._executor.roll(
                hedge,
                pair,
                into,
                reason=intent.reason,
                spot_quote=sq,
                held_quote=held_q,
                into_quote=into_q,
            )
        )
        await ctx.book(hedge.id)
        return True

    async def _finish_rolls(self, hedges: list[Hedge]) -> set[int]:
        """Take on the hedges whose roll is unfinished (orders resolved by client order id
        first; not while HALTED, which sends nothing); return their ids."""
        ctx = self._ctx
        ids: set[int] = set()
        for hedge in hedges:
            if hedge.state is not HedgeState.OPEN or ROLL_TO not in hedge.metrics:
                continue
            ids.add(hedge.id)
            if ctx.state.trading is TradingState.HALTED:
                continue
            blocked = self._executor.roll_blocked(hedge.id)
            if blocked is not None:  # its last try left it unfinished: not every cycle
                log.debug("Hedge %s: unfinished roll waits: %s", hedge.id, blocked)
                continue
            pair = ctx.pair_of(hedge)
            into = pair_of(ctx.pairs, hedge.pair, hedge.metrics[ROLL_TO])
            if pair is None or into is None:
                continue
            log.warning("Hedge %s: finishing its roll into %s", hedge.id, into.perp.symbol)
            ctx.held.remember(await self._executor.recover(hedge, pair, roll_into=into))
            await ctx.book(hedge.id)
        return ids

    def _dated_pair(self, future_symbol: str, snap: MarketSnapshot) -> Pair | None:
        """The pair keyed by its future: a dated future's, or a COIN-M perpetual's."""
        by_future = (*snap.dated_pairs, *snap.coinm_perp_pairs)
        return self._ctx.pairs.get(future_symbol) or next(
            (p for p in by_future if p.perp.symbol == future_symbol), None
        )

    def _open_pair(self, intent: OpenHedge, snap: MarketSnapshot) -> Pair | None:
        """The pair an open trades: the asset's perpetual, or the dated future it names."""
        if intent.future_symbol is not None:
            return self._dated_pair(intent.future_symbol, snap)
        return self._ctx.pairs.get(intent.pair) or snap.pair(intent.pair)

    async def _after_entry(self, pair: Pair, hedge: Hedge) -> None:
        """Book the entry's fees and losses; after a failed entry, cool the pair down."""
        ctx = self._ctx
        await ctx.book(hedge.id)
        if hedge.state is HedgeState.OPEN:
            self._entry_backoff.record_success(pair.key)
            return
        if hedge.state not in (HedgeState.FAILED, HedgeState.UNWINDING):
            return  # OPENING with an unresolved order: reconciliation decides
        orders = await ctx.ledger.orders.for_hedge(hedge.id)
        codes = [o.error_code for o in orders if o.error_code is not None]
        failure = self._entry_backoff.record_failure(
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
        await ctx.events.emit(
            Event(
                "entry.backoff",
                f"{scope}: no new entry for {failure.cooldown_seconds:.0f}s after a failed "
                f"entry of {pair.key} ({failure.reason})",
                ctx.clock.now(),
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
        if failure.stop_entries and ctx.state.trading is TradingState.ACTIVE:
            await ctx.set_trading_state(
                TradingState.REDUCING,
                f"entries stopped: repeated account-level entry failures ({failure.reason}, "
                f"last on {pair.key}); fix the account, then `carrybot resume`",
            )

    async def _reload_filters(self, pair: Pair) -> None:
        """Reload the markets (exchangeInfo) so the next try of `pair` uses current filters."""
        exchange = self._ctx.exchange
        try:
            await exchange.load_instruments(reload=True)
            fresh = {p.key: p for p in await exchange.pairs()}
        except ExchangeError as exc:
            log.warning("Filters of %s not reloaded now (%s)", pair.key, exc)
            return
        if pair.key in fresh:
            self._ctx.pairs[pair.key] = fresh[pair.key]
            log.info(
                "Reloaded the filters of %s: spot min notional %s, perp min notional %s",
                pair.key,
                fresh[pair.key].spot.min_notional,
                fresh[pair.key].perp.min_notional,
            )


def execution_order(intent: Intent) -> int:
    """Closes first (they free capacity for rotation), then resizes and rolls, then opens."""
    match intent:
        case CloseHedge():
            return 0
        case ResizeHedge() | RollHedge():
            return 1
        case _:
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
