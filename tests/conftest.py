"""Shared fixtures: ledger databases on SQLite and the real PostgreSQL server, shared data.

Under CI=true a missing PostgreSQL server or a missing ../shared/data is a failure, not a
skip; elsewhere those tests skip with the reason.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.persistence.db import create_engine, session_factory
from bot.persistence.repositories import CycleReads, Ledger
from tests.support.ledgers import PgDatabases, SqliteTemplate

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


PG_DATABASES = PgDatabases(PG_HOST, PG_PORT, PG_USER)
SQLITE_TEMPLATE = SqliteTemplate()


async def _pg_connect(database: str = "postgres") -> asyncpg.Connection:
    return await PG_DATABASES.connect(database)


async def create_pg_database(*, migrated: bool = False) -> str:
    """Return the async URL of a PostgreSQL database of this test's own: empty, or at the
    migrations' head holding no rows (`migrated`)."""
    try:
        if migrated:
            return await PG_DATABASES.acquire_migrated()
        return await PG_DATABASES.acquire()
    except (OSError, asyncpg.PostgresError) as exc:
        if PG_DATABASES.reached:
            raise
        unavailable(f"PostgreSQL at {PG_HOST}:{PG_PORT} is not reachable: {exc}")
        raise  # unreachable: unavailable() always raises


async def drop_pg_database(url: str, *, migrated: bool = False) -> None:
    """Hand the database back: the next test gets it emptied (see tests/support/ledgers.py)."""
    PG_DATABASES.release(url, migrated=migrated)


def _start_rank(item: pytest.Item) -> int:
    """0 for the bot-process tests marked slow, 1 for the rest of tests/e2e, 2 for others."""
    if item.get_closest_marker("slow") is not None:
        return 0
    return 1 if "e2e" in item.path.parts else 2


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Start the longest tests first (order within each rank kept).

    The slow ones run the bot and the fake Binance as processes and mostly wait on the wall
    clock; started first and spread over xdist's workers (`make test`: --maxschedchunk 1),
    they no longer make the tail of the run on the one worker that drew them."""
    items.sort(key=_start_rank)


def pytest_sessionfinish(session: pytest.Session) -> None:
    SQLITE_TEMPLATE.remove()
    asyncio.run(PG_DATABASES.drop_all())


@pytest.fixture(params=["sqlite", "postgres"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database URL on each backend (the PostgreSQL one is reused emptied)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}"
        return
    url = await create_pg_database()
    try:
        yield url
    finally:
        await drop_pg_database(url)


@pytest.fixture(params=["sqlite", "postgres"])
async def migrated_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A database at the migrations' head with no rows, on each backend (SQLite: a copy of
    a file migrated once per test process; PostgreSQL: see tests/support/ledgers.py)."""
    if request.param == "sqlite":
        await SQLITE_TEMPLATE.copy_to(tmp_path / "ledger.db")
        yield f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}"
        return
    url = await create_pg_database(migrated=True)
    try:
        yield url
    finally:
        await drop_pg_database(url, migrated=True)


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
async def engine(migrated_url: str) -> AsyncIterator[AsyncEngine]:
    """A migrated engine on each backend."""
    eng = create_engine(migrated_url)
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
