"""One running bot per ledger: an instance lock held for the life of `carrybot run`.

Two bots trading on one ledger and one account would each believe they own every hedge and
double every limit. So `carrybot run` takes a lock keyed by its ledger before anything else
and keeps it until it exits:

* PostgreSQL: a session advisory lock (`pg_try_advisory_lock`) on a connection of its own.
  The server releases it when that connection ends, so a killed process frees it at once.
  The holder's host and pid are in the connection's `application_name`, its start time is
  the session's `backend_start`: a second instance reads both from `pg_stat_activity`.
* SQLite: an exclusive `flock` on `<database file>.lock`, beside the database. The kernel
  releases it when the process dies; the holder writes host, pid and since into the file.

Read-only commands (`status`, `scan`, `web`) never take it; backtests have ledgers of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from bot.config import normalise_database_url, redact_url
from bot.errors import UserError
from bot.persistence.startup_checks import sqlite_path

log = logging.getLogger(__name__)

# pg_try_advisory_lock(int4, int4): advisory locks are per database, so one fixed key names
# "the carrybot instance" of whichever database the URL points at.
PG_LOCK_CLASS = 0x63627462  # "cbtb"
PG_LOCK_ID = 1
WAIT_FOR_DEAD_HOLDER_SECONDS = 2.0
"""How long a refused lock is retried: the server may not have noticed a killed holder yet."""


@dataclass(frozen=True)
class Holder:
    """Who holds the lock, as far as it said."""

    host: str | None
    pid: int | None
    since: datetime | None
    backend_pid: int | None = None
    """PostgreSQL: the server process of the holder's session."""

    def describe(self) -> str:
        since = self.since.astimezone(UTC).isoformat(timespec="seconds") if self.since else "?"
        return f"host {self.host or '?'}, pid {self.pid or '?'}, since {since}"


class InstanceLocked(UserError):
    """Another `carrybot run` holds this ledger's instance lock."""

    def __init__(self, url: str, holder: Holder) -> None:
        self.holder = holder
        super().__init__(
            f"another carrybot is already running on the ledger {redact_url(url)} "
            f"({holder.describe()}): stop it first, or give this one its own database "
            "(DATABASE_URL or [database] url)"
        )


class InstanceLock(Protocol):
    async def acquire(self) -> None:
        """Take the lock or raise InstanceLocked naming the holder."""

    async def ensure(self) -> bool:
        """Check the lock is still held, re-taking it after a lost connection.

        Return False if another instance took it meanwhile; raise on a database outage.
        """

    async def release(self) -> None:
        """Give the lock up (idempotent)."""


def _me() -> tuple[str, int]:
    return socket.gethostname(), os.getpid()


def instance_lock_for(url: str, *, now: Callable[[], datetime] | None = None) -> InstanceLock:
    """Return the instance lock of the ledger at `url` (a no-op for in-memory SQLite)."""
    url = normalise_database_url(url)
    if make_url(url).get_backend_name() == "postgresql":
        return PostgresInstanceLock(url)
    path = sqlite_path(url)
    if path is None:
        return NoInstanceLock()
    lock_file = path.with_name(path.name + ".lock")
    return FileInstanceLock(url, lock_file, now or (lambda: datetime.now(UTC)))


class NoInstanceLock:
    """An in-memory database is its process's alone."""

    async def acquire(self) -> None:
        return None

    async def ensure(self) -> bool:
        return True

    async def release(self) -> None:
        return None


class FileInstanceLock:
    """`flock` on a file beside the SQLite database; the kernel drops it with the process."""

    def __init__(self, url: str, path: Path, now: Callable[[], datetime]) -> None:
        self.url = url
        self.path = path
        self._now = now
        self._fd: int | None = None

    async def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise InstanceLocked(self.url, self._read_holder()) from None
        host, pid = _me()
        record = json.dumps({"host": host, "pid": pid, "since": self._now().isoformat()})
        os.ftruncate(fd, 0)
        os.pwrite(fd, record.encode() + b"\n", 0)
        self._fd = fd

    async def ensure(self) -> bool:
        return self._fd is not None

    async def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
        os.close(self._fd)  # closing the descriptor drops the flock
        self._fd = None

    def _read_holder(self) -> Holder:
        try:
            data: dict[str, Any] = json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            data = {}
        since = data.get("since")
        pid = data.get("pid")
        return Holder(
            host=data.get("host"),
            pid=pid if isinstance(pid, int) else None,
            since=datetime.fromisoformat(since) if isinstance(since, str) else None,
        )


_APP_NAME = re.compile(r"^carrybot pid=(\d+) host=(\S*)")


class PostgresInstanceLock:
    """A session advisory lock on a dedicated, autocommit connection (never in a transaction)."""

    def __init__(self, url: str) -> None:
        self.url = url
        host, pid = _me()
        app_name = f"carrybot pid={pid} host={host}"[:63]  # PostgreSQL keeps 63 bytes
        self._engine: AsyncEngine = create_async_engine(
            url,
            poolclass=NullPool,
            connect_args={"server_settings": {"application_name": app_name}, "timeout": 10},
        )
        self._conn: AsyncConnection | None = None
        self._backend_pid: int | None = None

    async def acquire(self) -> None:
        conn = await self._engine.connect()
        try:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            deadline = time.monotonic() + WAIT_FOR_DEAD_HOLDER_SECONDS
            while not await self._try_lock(conn):
                holder = await self._holder(conn)
                if holder.backend_pid is not None and holder.backend_pid == self._backend_pid:
                    # Our own earlier session, which the server still thinks alive (the
                    # network dropped under it without a word): end it and take the lock.
                    log.warning("Ending this bot's stale lock session %d", holder.backend_pid)
                    await conn.execute(
                        text("SELECT pg_terminate_backend(:p)"), {"p": holder.backend_pid}
                    )
                elif time.monotonic() >= deadline:
                    raise InstanceLocked(self.url, holder)
                await asyncio.sleep(0.2)
            self._backend_pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        except BaseException:
            await conn.close()
            raise
        self._conn = conn

    async def ensure(self) -> bool:
        if self._conn is not None:
            try:
                await self._conn.execute(text("SELECT 1"))
                return True
            except Exception:
                log.warning("The instance lock's database connection was lost; re-taking it")
                await self._drop()
        try:
            await self.acquire()
        except InstanceLocked as exc:
            log.error("Instance lock lost: %s", exc)
            return False
        log.info("Instance lock re-taken")
        return True

    async def release(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.execute(
                    text("SELECT pg_advisory_unlock(:c, :i)"), {"c": PG_LOCK_CLASS, "i": PG_LOCK_ID}
                )
            await self._drop()
        await self._engine.dispose()

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.invalidate()
            with contextlib.suppress(Exception):
                await conn.close()

    @staticmethod
    async def _try_lock(conn: AsyncConnection) -> bool:
        result = await conn.execute(
            text("SELECT pg_try_advisory_lock(:c, :i)"), {"c": PG_LOCK_CLASS, "i": PG_LOCK_ID}
        )
        return bool(result.scalar_one())

    @staticmethod
    async def _holder(conn: AsyncConnection) -> Holder:
        row = (
            await conn.execute(
                text(
                    "SELECT a.application_name, a.backend_start, a.client_addr::text, a.pid "
                    "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                    "WHERE l.locktype = 'advisory' AND l.granted "
                    "AND l.database = (SELECT oid FROM pg_database "
                    "WHERE datname = current_database()) "
                    "AND l.classid = :c AND l.objid = :i AND l.objsubid = 2"
                ),
                {"c": PG_LOCK_CLASS, "i": PG_LOCK_ID},
            )
        ).first()
        if row is None:
            return Holder(None, None, None)
        match = _APP_NAME.match(row[0] or "")
        if match is None:
            return Holder(row[2], None, row[1], row[3])
        return Holder(match.group(2) or row[2], int(match.group(1)), row[1], row[3])


class LockKeeper:
    """Keeps a held lock held: checks it every few seconds and re-takes it after an outage.

    While the lock's connection is down the database counts as down (no order is sent);
    if another instance took the lock meanwhile, `on_lost` is called (the bot stops).
    """

    def __init__(self, lock: InstanceLock, on_lost: Callable[[], None]) -> None:
        self.lock = lock
        self._on_lost = on_lost
        self.lost = False

    async def ensure(self) -> bool:
        """The OutageGuard's probe: is the lock held (re-taken if need be)?"""
        if self.lost:
            return False
        if await self.lock.ensure():
            return True
        self.lost = True
        self._on_lost()
        return False

    async def run(self, mark_down: Callable[[BaseException], None], interval: float) -> None:
        """Check forever (cancel to stop); a failed check marks the database down."""
        while not self.lost:
            await asyncio.sleep(interval)
            try:
                if not await self.ensure():
                    mark_down(ConnectionError("the instance lock is held by another carrybot"))
            except Exception as exc:
                mark_down(exc)
