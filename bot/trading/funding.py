"""Funding capture: after each funding time of a held perpetual, record the payments.

Each payment is written with the hedge that held the perpetual at its funding time; the
fetch window overlaps the previous one, so what this loop wrote before is skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from bot.domain import FundingPayment, Hedge, MarketSnapshot
from bot.errors import ExchangeError
from bot.persistence.outage import is_db_outage
from bot.trading.context import LoopContext

log = logging.getLogger(__name__)


class FundingCapture:
    """Fetch and record the funding payments that are due."""

    def __init__(self, ctx: LoopContext) -> None:
        self._ctx = ctx
        self._recorded: set[tuple[str, datetime]] = set()  # (perp, funding time)

    async def capture(self, *, force: bool = False) -> int:
        """Record funding payments once a held perpetual's funding time has passed.

        Returns how many payments were written; those this loop wrote before are skipped.
        """
        ctx, state = self._ctx, self._ctx.state
        now = ctx.clock.now()
        delay = timedelta(seconds=ctx.config.schedule.funding_capture_delay_seconds)
        due = [t for t in state.funding_due.values() if now >= t + delay]
        if (not due and not force) or ctx.circuit.open:
            return 0  # while the exchange backs off, what is due waits
        try:
            window = state.last_funding_capture
            # After the first capture, only hedges held since the window can own a payment.
            ctx.held.all = (
                await ctx.ledger.hedges.in_states(None)
                if window is None
                else await ctx.ledger.hedges.held_since(window - timedelta(hours=1))
            )
        except Exception as exc:
            if not is_db_outage(exc):
                raise
            ctx.guard.mark_down(exc)  # carry on from memory: payments wait in the guard
        held = [h for h in ctx.held.all if h.opened_at is not None]
        if not held:
            state.funding_due.clear()
            return 0
        since = state.last_funding_capture or min(
            h.opened_at for h in held if h.opened_at is not None
        )
        try:
            payments = await ctx.exchange.fetch_funding_payments(since - timedelta(hours=1))
        except ExchangeError as exc:
            ctx.exchange_failed(exc)
            log.warning("Funding payments not fetched now (%s); will retry", exc)
            return 0
        recorded = await self._record(held, payments)
        window_start = since - timedelta(hours=1)
        self._recorded = {k for k in self._recorded if k[1] >= window_start}
        for symbol in [s for s, t in state.funding_due.items() if now >= t + delay]:
            del state.funding_due[symbol]
        state.last_funding_capture = now - timedelta(hours=12)
        if payments and log.isEnabledFor(logging.INFO):
            log.info(
                "Funding capture: %d payment(s) seen since %s", len(payments), since.isoformat()
            )
        return recorded

    async def _record(self, held: list[Hedge], payments: Sequence[FundingPayment]) -> int:
        """Write the payments not recorded before, each with its owner, in one write."""
        ctx = self._ctx
        recorded_before = self._recorded
        by_symbol: dict[str, list[FundingPayment]] = {}
        for p in payments:
            if (p.symbol, p.funding_time) not in recorded_before:
                by_symbol.setdefault(p.symbol, []).append(p)
        batches: dict[tuple[str, int | None], list[FundingPayment]] = {}
        for symbol, rows in by_symbol.items():
            for payment in rows:
                owner = _owner(held, symbol, payment.funding_time)
                batches.setdefault((symbol, owner.id if owner else None), []).append(payment)
        owned = [
            (_priced(p, ctx.state.latest), owner_id)
            for (_, owner_id), batch in batches.items()
            for p in batch
        ]
        if not owned:
            return 0
        first = min(p.funding_time for p, _ in owned)
        ok = await ctx.guard.write(
            f"{len(owned)} funding payment(s) from {first:%Y-%m-%d %H:%M}",
            lambda: ctx.ledger.funding.record_owned(ctx.exchange.venue, owned),
        )
        if not ok:
            return 0
        recorded_before.update((p.symbol, p.funding_time) for p, _ in owned)
        return len(owned)


def _priced(payment: FundingPayment, snap: MarketSnapshot | None) -> FundingPayment:
    """A payment in a coin (COIN-M) without a mark (dapi's income has none) gets the mark
    of the latest snapshot, so the ledger values it in USDT (`funding_usdt`)."""
    if payment.asset == "USDT" or payment.mark_price is not None or snap is None:
        return payment
    info = snap.funding.get(payment.symbol)
    if info is None:
        log.warning("Funding of %s in %s recorded without a mark", payment.symbol, payment.asset)
        return payment
    return replace(payment, mark_price=info.mark_price)


def _owner(hedges: list[Hedge], perp_symbol: str, at: datetime) -> Hedge | None:
    """Return the hedge that held `perp_symbol` at `at` (the oldest, if several)."""
    for h in hedges:
        if h.perp_symbol != perp_symbol or h.opened_at is None:
            continue
        if h.opened_at <= at and (h.closed_at is None or h.closed_at >= at):
            return h
    return None
