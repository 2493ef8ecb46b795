"""A way out of drift: the operator adopts what the exchange holds, or closes it.

A position changed while the bot was down (a short reduced by hand, spot moved out) halts
start-up reconciliation. `carrybot adopt [--hedge ID]` asks the next start to re-base the
hedge on the exchange's quantities and trade on (the risk gate then equalises the legs);
`carrybot adopt --close [--hedge ID]` asks it to close what is there, leg by leg, never
opening anything. Requests are `adopt.requested` events; the start that applies them
records `hedge.adopted` per hedge and one `adopt.applied`, after which they are done.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from bot.domain import Event, Hedge, Severity
from bot.errors import UserError
from bot.persistence.port import LedgerPort
from bot.persistence.repositories import Ledger

REQUESTED = "adopt.requested"
APPLIED = "adopt.applied"
ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class AdoptRequest:
    """Re-base (or, with `close`, close) one hedge, or every drifted one when `hedge_id` is
    None."""

    hedge_id: int | None
    close: bool
    at: datetime


def commands_for(hedge_id: int) -> str:
    """Return the two commands an operator may run for a drifted hedge."""
    return (
        f"`carrybot adopt --hedge {hedge_id}` (re-base on the exchange's quantities and trade "
        f"on) or `carrybot adopt --close --hedge {hedge_id}` (close what is there)"
    )


async def request_adopt(
    ledger: Ledger, hedge_id: int | None, *, close: bool, at: datetime, source: str = "cli"
) -> str:
    """Record a request for the next start; return what will happen (one line)."""
    if hedge_id is not None:
        hedge = await ledger.hedges.get(hedge_id)
        if hedge is None or not hedge.state.is_active:
            active = ", ".join(str(h.id) for h in await ledger.hedges.active()) or "none"
            raise UserError(
                f"--hedge {hedge_id}: no active hedge with that id (active hedges: {active})"
            )
    what = f"hedge {hedge_id}" if hedge_id is not None else "every drifted hedge"
    action = (
        "closed as the exchange holds it (leg by leg, nothing opened)"
        if close
        else "re-based on the exchange's quantities, then traded on"
    )
    message = f"{what} will be {action} at the next start"
    await ledger.events.emit(
        Event(
            REQUESTED,
            message,
            at,
            Severity.ALERT,
            {"hedge_id": hedge_id, "close": close, "source": source},
            hedge_id,
        )
    )
    return message


async def pending_requests(ledger: LedgerPort) -> list[AdoptRequest]:
    """Return the requests no start has applied yet, oldest first."""
    applied = await ledger.events.recent(APPLIED, limit=1)
    since = applied[0].at if applied else None
    out = [
        AdoptRequest(e.data.get("hedge_id"), bool(e.data.get("close")), e.at)
        for e in await ledger.events.recent(REQUESTED, limit=100)
        if since is None or e.at > since
    ]
    return sorted(out, key=lambda r: r.at)


async def drifted_hedge_ids(ledger: Ledger) -> list[int]:
    """Return the hedges the latest reconciliation found drifted (none if it was clean)."""
    latest: Event | None = None
    for kind in ("reconcile.halt", "reconcile.drift", "reconcile.ok"):
        for event in await ledger.events.recent(kind, limit=1):
            if latest is None or event.at > latest.at:
                latest = event
    if latest is None or latest.kind == "reconcile.ok":
        return []
    return [int(i) for i in latest.data.get("drifted_hedges", [])]


def rebased_quantities(
    hedge: Hedge,
    others: Sequence[Hedge],
    shorts: Mapping[str, Decimal],
    spot_totals: Mapping[str, Decimal],
) -> tuple[Decimal, Decimal]:
    """Return (spot, short) the exchange holds for `hedge`: what is there less what the
    other active hedges on the same markets hold, never more than the ledger's own."""
    base = hedge.pair.split("/")[0]
    other_short = sum((h.perp_quantity for h in others if h.perp_symbol == hedge.perp_symbol), ZERO)
    other_spot = sum((h.spot_quantity for h in others if h.pair.split("/")[0] == base), ZERO)
    short = max(ZERO, shorts.get(hedge.perp_symbol, ZERO) - other_short)
    spot = max(ZERO, spot_totals.get(base, ZERO) - other_spot)
    return min(spot, hedge.spot_quantity), min(short, hedge.perp_quantity)
