"""The bot's own state in the SQL ledger: runs, events, the kill switch, the paper account."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from bot.domain import Event, Severity
from bot.domain.ledger import BotRun, CloseRequest, TradingState, TradingStatus
from bot.persistence.base import Sessions, SqlRepository
from bot.persistence.cycle_reads import (
    PENDING_CLOSES,
    TRADING_STATE,
    CycleReads,
    close_request_of,
    trading_status_of,
)
from bot.persistence.mapping import run_of
from bot.persistence.models import BotRunRow, CloseRequestRow, EventRow, PaperStateRow
from bot.persistence.upsert import insert_replacing


class RunRepository(SqlRepository):
    async def start(
        self, *, mode: str, environment: str, config_hash: str, version: str, at: datetime
    ) -> BotRun:
        """Record the start of a bot run and return it."""
        async with self._sessions.begin() as s:
            row = BotRunRow(
                mode=mode,
                exchange_environment=environment,
                config_hash=config_hash,
                version=version,
                started_at=at,
            )
            s.add(row)
            await s.flush()
            return run_of(row)

    async def stop(self, run_id: int, *, at: datetime, reason: str) -> None:
        """Record the end of a bot run."""
        async with self._sessions.begin() as s:
            await s.execute(
                update(BotRunRow)
                .where(BotRunRow.id == run_id)
                .values(stopped_at=at, stop_reason=reason)
            )

    async def latest(self, limit: int = 10) -> list[BotRun]:
        async with self._sessions() as s:
            rows = await s.scalars(select(BotRunRow).order_by(BotRunRow.id.desc()).limit(limit))
            return [run_of(r) for r in rows]


class EventRepository(SqlRepository):
    """Events in the ledger; also an `EventSink` for components that emit them."""

    def __init__(self, sessions: Sessions, run_id: int | None = None) -> None:
        super().__init__(sessions)
        self.run_id = run_id

    async def emit(self, event: Event) -> None:
        async with self._sessions.begin() as s:
            s.add(
                EventRow(
                    at=event.at,
                    kind=event.kind,
                    severity=event.severity.value,
                    message=event.message,
                    data=dict(event.data),
                    hedge_id=event.hedge_id,
                    run_id=self.run_id,
                )
            )

    async def recent(self, kind: str | None = None, limit: int = 100) -> list[Event]:
        """Return the newest events (optionally of one kind), newest first."""
        async with self._sessions() as s:
            q = select(EventRow).order_by(EventRow.id.desc()).limit(limit)
            if kind is not None:
                q = q.where(EventRow.kind == kind)
            return [
                Event(r.kind, r.message, r.at, Severity(r.severity), r.data or {}, r.hedge_id)
                for r in await s.scalars(q)
            ]


class TradingStateRepository(SqlRepository):
    _ROW_ID = 1

    def __init__(self, sessions: Sessions, reads: CycleReads) -> None:
        super().__init__(sessions)
        self._reads = reads

    async def get(self) -> TradingStatus | None:
        """Return the kill-switch state, or None when it was never set (treated as ACTIVE)."""
        async with self._sessions() as s:
            return trading_status_of((await s.execute(TRADING_STATE)).first())

    async def set(
        self, state: TradingState, *, reason: str, changed_by: str, at: datetime
    ) -> TradingStatus:
        row = {
            "id": self._ROW_ID,
            "state": state.value,
            "reason": reason,
            "changed_by": changed_by,
            "changed_at": at,
        }
        async with self._reads.writing(), self._engine.begin() as conn:
            await insert_replacing(conn, "trading_state", ("id",), [row])
        return TradingStatus(state, reason, changed_by, at)


class CloseRequestRepository(SqlRepository):
    """Operator closes of hedges: written by `carrybot close` or the dashboard, read by the
    running bot every cycle (`Ledger.cycle_view`) until it records what it did."""

    async def add(self, hedge_id: int, *, reason: str, source: str, at: datetime) -> CloseRequest:
        """Record a close request for `hedge_id` and return it."""
        async with self._sessions.begin() as s:
            row = CloseRequestRow(hedge_id=hedge_id, reason=reason, source=source, requested_at=at)
            s.add(row)
            await s.flush()
            return close_request_of(row)

    async def pending(self) -> list[CloseRequest]:
        """Requests the bot has not acted on yet, oldest first."""
        async with self._engine.connect() as conn:
            return [close_request_of(r) for r in await conn.execute(PENDING_CLOSES)]

    async def finish(self, request_id: int, *, outcome: str, at: datetime) -> None:
        """Record that the bot acted on the request (`outcome`: what became of the hedge)."""
        async with self._sessions.begin() as s:
            await s.execute(
                update(CloseRequestRow)
                .where(CloseRequestRow.id == request_id)
                .values(done_at=at, outcome=outcome)
            )


class PaperStateRepository(SqlRepository):
    async def load(self, key: str) -> dict[str, Any] | None:
        async with self._sessions() as s:
            row = await s.get(PaperStateRow, key)
            return dict(row.state) if row else None

    async def save(self, key: str, state: dict[str, Any], *, at: datetime) -> None:
        async with self._engine.begin() as conn:
            row = {"key": key, "state": state, "updated_at": at}
            await insert_replacing(conn, "paper_state", ("key",), [row])
