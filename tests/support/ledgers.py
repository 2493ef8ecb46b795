"""Ledger databases for tests: PostgreSQL databases reused within a test process, and a
migrated SQLite file copied instead of migrated again.

Every test that asks for a PostgreSQL ledger gets a database of its own. Creating and
dropping one per test cost ~1.3 s on the shared server (`DROP DATABASE` forces a
checkpoint, which every worker then waits on), and migrating one ~0.4 s, so each test
process keeps the databases it created: a finished test's database goes back to the pool
and the next test gets it back either empty (sessions ended, `public` dropped and created
again) or migrated and holding no rows (sessions ended, every table truncated, identities
restarted; only when it still has exactly the tables and revision the migrations left).
The pool's databases are dropped when the test process ends (`drop_all`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path

import asyncpg

from bot.persistence import migrate
from bot.persistence.db import create_engine

PREFIX = "carrybot_test_"


async def upgrade(url: str) -> None:
    """Migrate the database at `url` to the head revision (what `carrybot db upgrade` does)."""
    engine = create_engine(url)
    try:
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()


class PgDatabases:
    """The databases this test process created, and the ones no test holds (by state)."""

    def __init__(self, host: str, port: int, user: str) -> None:
        self.host, self.port, self.user = host, port, user
        self.created: list[str] = []
        self.free: list[str] = []  # to be emptied before use
        self.free_migrated: list[str] = []  # at head: to be truncated before use
        self.migrated_tables: frozenset[str] | None = None  # as the migrations leave them
        self.reached = False  # a connection succeeded once: later errors are not "unreachable"

    def url(self, name: str) -> str:
        return f"postgresql+asyncpg://{self.user}@{self.host}:{self.port}/{name}"

    async def connect(self, database: str = "postgres") -> asyncpg.Connection:
        conn = await asyncpg.connect(
            host=self.host, port=self.port, user=self.user, database=database, timeout=5
        )
        self.reached = True
        return conn

    async def acquire(self) -> str:
        """Return the URL of an empty database no other test holds."""
        if self.free or self.free_migrated:
            name = (self.free or self.free_migrated).pop()
            await self._end_sessions(name)
            conn = await self.connect(name)
            try:
                await conn.execute("SET lock_timeout = '20s'")  # a leftover fails, not hangs
                await conn.execute(  # as initdb leaves it (PostgreSQL 15)
                    "DROP SCHEMA public CASCADE; CREATE SCHEMA public AUTHORIZATION"
                    " pg_database_owner; GRANT USAGE ON SCHEMA public TO PUBLIC"
                )
            finally:
                await conn.close()
            return self.url(name)
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        name = f"{PREFIX}{worker}_{uuid.uuid4().hex[:10]}"
        conn = await self.connect()
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        self.created.append(name)
        return self.url(name)

    async def acquire_migrated(self) -> str:
        """Return the URL of a database at the head revision with no rows in any table."""
        while self.free_migrated:
            name = self.free_migrated.pop()
            if await self._truncate(name):
                return self.url(name)
            self.free.append(name)  # its schema changed: empty it and migrate again
        url = await self.acquire()
        await upgrade(url)
        if self.migrated_tables is None:
            conn = await self.connect(url.rsplit("/", 1)[1])
            try:
                self.migrated_tables = frozenset(await self._tables(conn))
            finally:
                await conn.close()
        return url

    def release(self, url: str, *, migrated: bool = False) -> None:
        """Give a database back once its test is done with it."""
        name = url.rsplit("/", 1)[1]
        (self.free_migrated if migrated else self.free).append(name)

    async def _end_sessions(self, name: str) -> None:
        """End every session on `name` (a bot the test killed may still hold one, and locks)."""
        conn = await self.connect()
        try:
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = $1 AND pid <> pg_backend_pid()",
                name,
            )
        finally:
            await conn.close()

    @staticmethod
    async def _tables(conn: asyncpg.Connection) -> list[str]:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return [r["tablename"] for r in rows]

    async def _truncate(self, name: str) -> bool:
        await self._end_sessions(name)
        conn = await self.connect(name)
        try:
            tables = frozenset(await self._tables(conn))
            if tables != self.migrated_tables:
                return False
            revision = await conn.fetchval("SELECT version_num FROM alembic_version")
            if revision != migrate.head_revision():
                return False
            await conn.execute("SET lock_timeout = '20s'")
            names = ", ".join(f'"{t}"' for t in sorted(tables - {"alembic_version"}))
            await conn.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
            return True
        finally:
            await conn.close()

    async def drop_all(self) -> None:
        """Drop every database this process created."""
        if not self.created:
            return
        conn = await self.connect()
        try:
            for name in self.created:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()
        self.created, self.free, self.free_migrated = [], [], []


class SqliteTemplate:
    """One SQLite ledger migrated per test process; tests get copies of the file."""

    def __init__(self) -> None:
        self._path: Path | None = None

    async def copy_to(self, path: Path) -> None:
        """Write a migrated, empty ledger at `path`."""
        if self._path is None:
            directory = Path(tempfile.mkdtemp(prefix="carrybot-ledger-template-"))
            template = directory / "ledger.db"
            await upgrade(f"sqlite+aiosqlite:///{template}")  # closed: nothing left in a -wal
            self._path = template
        shutil.copyfile(self._path, path)

    def remove(self) -> None:
        if self._path is not None:
            shutil.rmtree(self._path.parent, ignore_errors=True)
            self._path = None
