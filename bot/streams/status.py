"""Stream health in the ledger (`stream_states`) and in `carrybot status` / the heartbeat.

The running bot writes every stream's state at each heartbeat; `carrybot status`, which
reads the database only, shows them with their age, and the maintenance window that
blocks entries (from the config), if any.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.persistence.models import StreamStateRow
from bot.persistence.outage import OutageGuard, is_db_outage
from bot.streams.config import StreamsConfig
from bot.streams.gate import maintenance_block
from bot.streams.health import HealthBoard

Sessions = async_sessionmaker[AsyncSession]


@dataclass(frozen=True, slots=True)
class StreamStatus:
    """One stream as `carrybot status` shows it."""

    name: str
    state: str
    endpoint: str
    last_message_at: datetime | None
    reconnects: int
    messages: int
    bad_messages: int
    last_error: str
    updated_at: datetime

    def to_json(self, now: datetime) -> dict[str, Any]:
        age = (now - self.last_message_at).total_seconds() if self.last_message_at else None
        return {
            "name": self.name,
            "state": self.state,
            "endpoint": self.endpoint,
            "last_message_age_seconds": None if age is None else round(age, 3),
            "reconnects": self.reconnects,
            "messages": self.messages,
            "bad_messages": self.bad_messages,
            "last_error": self.last_error,
            "written_at": self.updated_at.isoformat(),
        }


class StreamStateStore:
    """`stream_states`: one row per stream name, replaced as a whole at each write."""

    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions

    async def replace(self, rows: list[StreamStatus]) -> None:
        async with self._sessions.begin() as session:
            await session.execute(delete(StreamStateRow))
            session.add_all(
                StreamStateRow(
                    name=r.name,
                    state=r.state,
                    endpoint=r.endpoint,
                    last_message_at=r.last_message_at,
                    reconnects=r.reconnects,
                    messages=r.messages,
                    bad_messages=r.bad_messages,
                    last_error=r.last_error,
                    updated_at=r.updated_at,
                )
                for r in rows
            )

    async def read(self) -> list[StreamStatus]:
        async with self._sessions() as session:
            rows = (
                await session.scalars(select(StreamStateRow).order_by(StreamStateRow.name))
            ).all()
        return [
            StreamStatus(
                r.name,
                r.state,
                r.endpoint,
                r.last_message_at,
                r.reconnects,
                r.messages,
                r.bad_messages,
                r.last_error,
                r.updated_at,
            )
            for r in rows
        ]


def snapshot_rows(board: HealthBoard, clock: Clock) -> list[StreamStatus]:
    """The board's streams as rows, their last-message times turned into UTC."""
    now, mono = clock.now(), clock.monotonic()
    rows = []
    for h in board.all():
        age = h.age(mono)
        rows.append(
            StreamStatus(
                h.name,
                h.state.value,
                h.endpoint,
                None if age is None else now - timedelta(seconds=age),
                h.reconnects,
                h.messages,
                h.bad_messages,
                h.last_error,
                now,
            )
        )
    return rows


def heartbeat_hook(
    board: HealthBoard, clock: Clock, store: StreamStateStore, guard: OutageGuard
) -> Callable[[], Awaitable[str]]:
    """A heartbeat part: write the stream states (when the database is up), return a summary."""

    async def beat() -> str:
        if guard.healthy:
            try:
                await store.replace(snapshot_rows(board, clock))
            except Exception as exc:
                if not is_db_outage(exc):
                    raise
                guard.mark_down(exc)
        return board.summary()

    return beat


def status_section(
    rows: list[StreamStatus], config: StreamsConfig, now: datetime
) -> dict[str, Any]:
    """What `carrybot status --json` adds: streams and the maintenance block, if any."""
    blocked = maintenance_block(config, now)
    return {
        "streams": [r.to_json(now) for r in rows],
        "maintenance": None
        if blocked is None
        else {
            "start": blocked[0].start.isoformat(),
            "end": blocked[0].end.isoformat(),
            "message": blocked[1],
        },
    }


def status_lines(rows: list[StreamStatus], config: StreamsConfig, now: datetime) -> list[str]:
    """The plain-text lines of `carrybot status` for streams and maintenance."""
    lines = []
    blocked = maintenance_block(config, now)
    if blocked is not None:
        lines.append(f"entries blocked: {blocked[1]}")
    if not rows:
        lines.append("streams: none recorded (REST polling, or the bot has not written them)")
        return lines
    written = max(r.updated_at for r in rows)
    lines.append(f"streams (as of {(now - written).total_seconds():.0f}s ago):")
    for r in rows:
        age = (
            "never"
            if r.last_message_at is None
            else (f"{(written - r.last_message_at).total_seconds():.1f}s")
        )
        err = f", last error: {r.last_error}" if r.last_error and r.state != "live" else ""
        lines.append(
            f"  {r.name}: {r.state}, last message {age} before, {r.reconnects} reconnects, "
            f"{r.bad_messages} bad messages, {r.endpoint}{err}"
        )
    return lines
