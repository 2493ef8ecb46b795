"""Shared fixtures: ledger databases on SQLite and the real PostgreSQL server, shared data.

Under CI=true a missing PostgreSQL server or a missing ../shared/data is a failure, not a
skip; elsewhere those tests skip with the reason.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.persistence import migrate
from bot.persistence.db import create_engine, session_factory
from bot.persistence.repositories import CycleReads, Ledger

IN_CI = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}
REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("CARRYBOT_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
PG_HOST = os.environ.get("CARRYBOT_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("CARRYBOT_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("CARRYBOT_TEST_PG_USER", "postgres")


def unavailable(reason: str) -> None:
    """Skip locally, fail under CI=true: CI must run every test."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: this must run, not skip)")
    pytest.skip(reason)


async def _pg_connect(database: str = "postgres") -> asyncpg.Connection:
    return await asyncpg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, database=database, timeout=5
    )


async def create_pg_database() -> str:
    """Create a uniquely named PostgreSQL database and return its async URL."""
    name = f"carrybot_test_{uuid.uuid4().hex[:12]}"
    try:
        conn = await _pg_connect()
    except (OSError, asyncpg.PostgresError) as exc:
        unavailable(f"PostgreSQL at {PG_HOST}:{PG_PORT} is not reachable: {exc}")
        raise  # unreachable: unavailable() always raises
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"


async def drop_pg_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    conn = await _pg_connect()
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", "postgres"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database URL on each backend (the PostgreSQL one is dropped afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}"
        return
    url = await create_pg_database()
    try:
        yield url
    finally:
        await drop_pg_database(url)


@pytest.fixture
async def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}"


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    url = await create_pg_database()
    try:
        yield url
    finally:
        await drop_pg_database(url)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """A migrated engine on each backend."""
    eng = create_engine(database_url)
    await migrate.upgrade(eng)
    try:
        yield eng
    finally:
        await eng.dispose()


@pytest.fixture
async def ledger(engine: AsyncEngine) -> Ledger:
    return Ledger(session_factory(engine), CycleReads())


@pytest.fixture
def shared_data() -> Iterator[Path]:
    """The real Binance history in ../shared/data (read in place, never copied)."""
    if not (SHARED_DATA / "binance" / "funding").is_dir():
        unavailable(f"shared data not found at {SHARED_DATA}")
    yield SHARED_DATA
