"""What each evaluation cycle reads from the SQL ledger, kept until a write changes it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.domain import Hedge, HedgeState
from bot.domain.ledger import CloseRequest, TradingState, TradingStatus
from bot.persistence.mapping import hedge_of, table_of
from bot.persistence.models import CloseRequestRow, HedgeRow, TradingStateRow

# Statements read every evaluation cycle, built once: rows, not ORM objects, are enough.
ALL_HEDGES = select(table_of(HedgeRow)).order_by(HedgeRow.id)
_ACTIVE_HEDGES = ALL_HEDGES.where(
    HedgeRow.state.in_([st.value for st in HedgeState if st.is_active])
)
_LAST_CLOSED = (
    select(HedgeRow.pair, func.max(HedgeRow.closed_at))
    .where(HedgeRow.closed_at.is_not(None))
    .group_by(HedgeRow.pair)
)
TRADING_STATE = select(table_of(TradingStateRow)).where(TradingStateRow.id == 1)
PENDING_CLOSES = (
    select(table_of(CloseRequestRow))
    .where(CloseRequestRow.done_at.is_(None))
    .order_by(CloseRequestRow.id)
)
_HELD_SINCE = ALL_HEDGES.where(
    HedgeRow.opened_at.is_not(None),
    HedgeRow.closed_at.is_(None) | (HedgeRow.closed_at >= bindparam("since")),
)


class CycleReads:
    """What each cycle reads, kept as read until the next write that changes it.

    Built by the composition root, one per engine (`run_bot`, the backtest, each command),
    and given to the `Ledger` over that engine; every ledger over the engine in a process
    shares it (`Ledger.for_run` passes it on), so a kept read is never older than a write
    made through any of them.

    Kept: the active hedges, the last close per pair, the hedges held since a time (funding
    capture) and, with `keep_trading_state`, the trading state. Hedges are written only by
    the bot's own process, through `HedgeRepository`; the trading state also by `carrybot
    halt`/`resume` from another process, so it is kept only for a ledger no other process
    writes (a backtest's throwaway file). Each write bumps `generation` when it begins and
    again when it ends, committed or not; a read keeps what it read only if no write began
    or ended meanwhile.
    """

    __slots__ = (
        "active",
        "generation",
        "held",
        "held_read_at",
        "held_since",
        "last_closed",
        "private",
        "read_at",
        "status",
        "status_read_at",
    )

    def __init__(self, *, keep_trading_state: bool = False) -> None:
        self.generation = 0
        self.read_at = -1  # the generation `active` and `last_closed` were read at
        self.active: tuple[Hedge, ...] = ()
        self.last_closed: dict[str, datetime] = {}
        self.private = keep_trading_state
        self.status_read_at = -1  # the generation `status` was read at
        self.status: TradingStatus | None = None
        self.held_read_at = -1  # the generation `held` was read at
        self.held_since: datetime | None = None
        self.held: tuple[Hedge, ...] = ()

    def invalidate(self) -> None:
        self.generation += 1

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[None]:
        """Mark the kept reads stale before a write and again once it is over."""
        self.invalidate()
        try:
            yield
        finally:
            self.invalidate()

    def current(self) -> tuple[list[Hedge], dict[str, datetime]] | None:
        """Return copies of the kept hedge reads, or None when a hedge was written since."""
        if self.read_at != self.generation:
            return None
        return list(self.active), dict(self.last_closed)

    async def read(self, conn: AsyncConnection) -> tuple[list[Hedge], dict[str, datetime]]:
        """Return the kept reads, else read both on `conn` (and keep them if still current)."""
        kept = self.current()
        if kept is not None:
            return kept
        generation = self.generation
        active = [hedge_of(cast(HedgeRow, r)) for r in await conn.execute(_ACTIVE_HEDGES)]
        closed = {pair: at for pair, at in await conn.execute(_LAST_CLOSED) if at is not None}
        if generation == self.generation:
            self.active, self.last_closed, self.read_at = tuple(active), dict(closed), generation
        return active, closed

    def kept_held(self, since: datetime) -> list[Hedge] | None:
        """Hedges held at or after `since`, from a read kept for an earlier `since`, or None.

        A hedge held at or after `since` was also held after any earlier time, so a current
        read from an earlier `since` holds every answer; the filter drops those closed before.
        """
        kept_since = self.held_since
        if self.held_read_at != self.generation or kept_since is None or kept_since > since:
            return None
        return [h for h in self.held if h.closed_at is None or h.closed_at >= since]

    async def read_held(self, conn: AsyncConnection, since: datetime) -> list[Hedge]:
        """Read the hedges held at or after `since` on `conn` (kept while still current)."""
        generation = self.generation
        rows = await conn.execute(_HELD_SINCE, {"since": since})
        held = [hedge_of(cast(HedgeRow, r)) for r in rows]
        if generation == self.generation:
            self.held, self.held_since, self.held_read_at = tuple(held), since, generation
        return held

    def kept_status(self) -> tuple[bool, TradingStatus | None]:
        """Return (True, status) when a private ledger's trading state is kept and current."""
        if self.private and self.status_read_at == self.generation:
            return True, self.status
        return False, None

    async def read_status(self, conn: AsyncConnection) -> TradingStatus | None:
        """Read the trading state on `conn` (kept when the ledger is private)."""
        generation = self.generation
        status = trading_status_of((await conn.execute(TRADING_STATE)).first())
        if self.private and generation == self.generation:
            self.status, self.status_read_at = status, generation
        return status


def close_request_of(row: Any) -> CloseRequest:
    """Return the close request of a `close_requests` row."""
    return CloseRequest(row.id, row.hedge_id, row.reason, row.source, row.requested_at)


def trading_status_of(row: Any) -> TradingStatus | None:
    """Return the kill-switch state of a `trading_state` row (None when never set)."""
    if row is None:
        return None
    return TradingStatus(TradingState(row.state), row.reason, row.changed_by, row.changed_at)


@dataclass(frozen=True, slots=True)
class CycleView:
    """What one evaluation cycle reads from the ledger (see `Ledger.cycle_view`)."""

    trading: TradingStatus | None
    active: list[Hedge]
    last_closed_at: dict[str, datetime]
    close_requests: tuple[CloseRequest, ...] = ()
    """Operator closes not acted on yet (`carrybot close`, the dashboard)."""
