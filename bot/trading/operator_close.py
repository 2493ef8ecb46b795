"""Operator closes (`carrybot close`, the dashboard's Close button) inside the evaluation.

A pending request becomes a `CloseHedge` ahead of the strategy's intents, so it goes through
the risk gate and the executor's close like any close: both legs at once, the same fault
handling (a leg that keeps failing leaves the hedge CLOSING with an alert, finished by
reconciliation; nothing is ever re-opened).
Once the hedge is no longer OPEN the request is done: its outcome is stored and recorded as
`control.close` with the request's source. In HALTED (no orders at all) the request waits,
and so does one whose legs the snapshot cannot price.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from bot.domain import CloseHedge, Event, Hedge, HedgeState, Severity
from bot.domain.ledger import CloseRequest, TradingState
from bot.trading.context import LoopContext

log = logging.getLogger(__name__)


class OperatorCloses:
    """Turn pending close requests into intents, and settle them after the cycle acted."""

    def __init__(self, ctx: LoopContext) -> None:
        self._ctx = ctx
        self._waiting_told: set[int] = set()  # requests whose wait was logged (once each)

    def intents(self, requests: Sequence[CloseRequest], hedges: list[Hedge]) -> list[CloseHedge]:
        """A close per request whose hedge is OPEN (none while trading is HALTED)."""
        if not requests:
            return []
        if self._ctx.state.trading is TradingState.HALTED:
            for r in requests:
                if r.id not in self._waiting_told:
                    self._waiting_told.add(r.id)
                    log.warning(
                        "Close of hedge %s (requested by %s) waits: trading is HALTED, no "
                        "orders; `carrybot halt --reducing` or `carrybot resume` lets it run",
                        r.hedge_id,
                        r.source,
                    )
            return []
        open_ids = {h.id for h in hedges if h.state is HedgeState.OPEN}
        seen: set[int] = set()
        closes = []
        for r in requests:
            if r.hedge_id in open_ids and r.hedge_id not in seen:
                seen.add(r.hedge_id)
                closes.append(CloseHedge(r.hedge_id, f"operator close ({r.source}): {r.reason}"))
        return closes

    async def settle(self, requests: Sequence[CloseRequest], hedges: list[Hedge]) -> None:
        """Finish each request whose hedge is no longer OPEN; the others wait a cycle."""
        ctx = self._ctx
        latest = {h.id: h for h in hedges} | {h.id: h for h in ctx.held.all}
        for r in requests:
            hedge = latest.get(r.hedge_id) or await ctx.ledger.hedges.get(r.hedge_id)
            if hedge is not None and hedge.state is HedgeState.OPEN:
                continue
            state = hedge.state.value if hedge is not None else "unknown"
            await ctx.ledger.close_requests.finish(r.id, outcome=state, at=ctx.clock.now())
            self._waiting_told.discard(r.id)
            closed = state == HedgeState.CLOSED.value
            await ctx.events.emit(
                Event(
                    "control.close",
                    f"hedge {r.hedge_id} {state.upper()} on the close requested by {r.source}: "
                    f"{r.reason}",
                    ctx.clock.now(),
                    Severity.INFO if closed else Severity.ALERT,
                    {
                        "request_id": r.id,
                        "source": r.source,
                        "reason": r.reason,
                        "outcome": state,
                    },
                    r.hedge_id,
                )
            )
