"""Operator control, one path for the CLI and the dashboard: the kill switch and close
requests are written to the ledger (a running bot reads both every cycle) and each is
recorded as an event naming its source.
"""

from __future__ import annotations

from datetime import datetime

from bot.domain import Event, HedgeState, Severity
from bot.domain.ledger import CloseRequest, TradingState, TradingStatus
from bot.errors import UserError
from bot.persistence.repositories import Ledger


async def set_trading_state(
    ledger: Ledger, state: TradingState, *, reason: str, source: str, at: datetime
) -> TradingStatus:
    """Write the trading state and record `control.<state>` with the source (cli, web, …)."""
    status = await ledger.trading_state.set(state, reason=reason, changed_by=source, at=at)
    verb = "resume" if state is TradingState.ACTIVE else "halt"
    await ledger.events.emit(
        Event(
            f"control.{verb}",
            f"trading {state.value.upper()} by {source}: {reason}",
            at,
            Severity.ALERT if state is not TradingState.ACTIVE else Severity.INFO,
            {"state": state.value, "reason": reason, "source": source},
        )
    )
    return status


class CloseRefused(UserError):
    """A close request the ledger cannot take: `not_found` (no such hedge) or not OPEN."""

    def __init__(self, message: str, *, not_found: bool) -> None:
        super().__init__(message)
        self.not_found = not_found


async def request_close(
    ledger: Ledger, hedge_id: int, *, reason: str, source: str, at: datetime
) -> CloseRequest:
    """Ask the running bot to close an OPEN hedge (both legs at once, in its next cycle).

    The request is stored in the ledger and recorded as `control.close_requested` with its
    source; a second request for a hedge already waiting returns the first one. Raises
    `CloseRefused` for an unknown hedge or one that is not OPEN.
    """
    hedge = await ledger.hedges.get(hedge_id)
    if hedge is None:
        open_ids = ", ".join(str(h.id) for h in await ledger.hedges.active()) or "none"
        raise CloseRefused(
            f"hedge {hedge_id}: no hedge with that id (active hedges: {open_ids})",
            not_found=True,
        )
    if hedge.state is not HedgeState.OPEN:
        raise CloseRefused(
            f"hedge {hedge_id} is {hedge.state.value.upper()}, not OPEN: only an open hedge can "
            "be closed on request (a hedge in flight is finished by the bot itself)",
            not_found=False,
        )
    waiting = [r for r in await ledger.close_requests.pending() if r.hedge_id == hedge_id]
    if waiting:
        return waiting[0]
    request = await ledger.close_requests.add(hedge_id, reason=reason, source=source, at=at)
    await ledger.events.emit(
        Event(
            "control.close_requested",
            f"close of hedge {hedge_id} ({hedge.pair}) requested by {source}: {reason}",
            at,
            Severity.ALERT,
            {"reason": reason, "source": source, "request_id": request.id},
            hedge_id,
        )
    )
    return request
