"""Database outages: detect them, keep what arrives meanwhile, write it when the DB returns.

While the database is down the bot sends no new orders (an intent that cannot be recorded
is not sent); fills, funding payments and events that arrive meanwhile wait in memory, in
order, and are written by `flush` once `SELECT 1` answers again.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.clock import Clock
from bot.domain import Event, Severity

log = logging.getLogger(__name__)

DB_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    DBAPIError,
    OSError,
    ConnectionError,
)


def is_db_outage(exc: BaseException) -> bool:
    """Tell whether `exc` means the database is unreachable (not a bug in a query)."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, OperationalError | InterfaceError | OSError | ConnectionError):
        return True
    name = type(exc).__name__
    return name in {
        "ConnectionDoesNotExistError",
        "CannotConnectNowError",
        "ConnectionRefusedError",
        "AdminShutdownError",
        "InterfaceError",
    } or (isinstance(exc, DBAPIError) and "connection" in str(exc).lower())


@dataclass
class PendingWrite:
    description: str
    write: Callable[[], Awaitable[object]]


class OutageGuard:
    """Tracks database health and buffers writes that could not be made."""

    def __init__(
        self,
        engine: AsyncEngine,
        clock: Clock,
        *,
        max_pending: int = 100_000,
        probe: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        """`probe` runs after `SELECT 1` answers; False keeps the database counted as down
        (the bot's instance lock uses it: no order until the lock is held again)."""
        self._engine = engine
        self._clock = clock
        self._probe = probe
        self._pending: deque[PendingWrite] = deque(maxlen=max_pending)
        self.healthy = True
        self.down_since: float | None = None
        self.outages = 0  # times the database went down (callers notice a recovery by it)

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def check(self) -> bool:
        """Ping the database; on recovery write what waited. Return whether it is up."""
        try:
            async with self._engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            if self._probe is not None and not await self._probe():
                self.healthy = False
                return False
        except Exception as exc:
            if not is_db_outage(exc):
                raise
            self._mark_down(exc)
            return False
        if not self.healthy:
            down_for = self._clock.monotonic() - (self.down_since or self._clock.monotonic())
            log.warning(
                "Database is back after %.0fs; writing %d buffered record(s)",
                down_for,
                len(self._pending),
            )
            self.healthy = True
            self.down_since = None
        await self.flush()
        return self.healthy

    async def write(self, description: str, write: Callable[[], Awaitable[object]]) -> bool:
        """Run `write`; if the database is down, keep it for later. Return whether it ran."""
        if self._pending or not self.healthy:
            self._pending.append(PendingWrite(description, write))
            return False
        try:
            await write()
            return True
        except Exception as exc:
            if not is_db_outage(exc):
                raise
            self._mark_down(exc)
            self._pending.append(PendingWrite(description, write))
            return False

    async def flush(self) -> int:
        """Write buffered records in order; stop at the first failure. Return how many."""
        written = 0
        while self._pending:
            item = self._pending[0]
            try:
                await item.write()
            except Exception as exc:
                if not is_db_outage(exc):
                    log.exception(
                        "Dropping buffered write %s: not an outage error", item.description
                    )
                    self._pending.popleft()
                    continue
                self._mark_down(exc)
                return written
            self._pending.popleft()
            written += 1
        return written

    def mark_down(self, exc: BaseException) -> None:
        """Record that the database failed (seen by a caller outside `write`)."""
        self._mark_down(exc)

    def _mark_down(self, exc: BaseException) -> None:
        if self.healthy:
            log.error(
                "Database unavailable (%s): no new orders until it is back; "
                "fills and funding are kept in memory",
                type(exc).__name__,
            )
            self.down_since = self._clock.monotonic()
            self.outages += 1
        self.healthy = False


class BufferedEventSink:
    """An EventSink that never fails the caller: events wait in the guard while the DB is down."""

    def __init__(self, inner: object, guard: OutageGuard) -> None:
        self._inner = inner
        self._guard = guard

    async def emit(self, event: Event) -> None:
        emit = self._inner.emit  # type: ignore[attr-defined]
        await self._guard.write(f"event {event.kind}", lambda: emit(event))
        if event.severity in (Severity.ALERT, Severity.ERROR):
            log.warning("ALERT %s: %s", event.kind, event.message)
