"""Engine and session factory for the ledger (SQLite via aiosqlite, PostgreSQL via asyncpg)."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from bot.config import normalise_database_url

SQLITE_PRAGMAS: Mapping[str, str] = {
    "foreign_keys": "ON",
    "journal_mode": "WAL",
    "synchronous": "NORMAL",
}
THROWAWAY_SQLITE_PRAGMAS: Mapping[str, str] = {
    "synchronous": "OFF",  # a crash may corrupt the file: fine for one that is rebuilt
    "temp_store": "MEMORY",
}
"""Overrides for a database that is rebuilt rather than recovered (e.g. a backtest's)."""


def create_engine(
    url: str, *, sqlite_pragmas: Mapping[str, str] | None = None, **kwargs: Any
) -> AsyncEngine:
    """Create an async engine; SQLite gets WAL, foreign keys and a busy timeout.

    `sqlite_pragmas` override the SQLite defaults (`SQLITE_PRAGMAS`); PostgreSQL ignores them.
    """
    url = normalise_database_url(url)
    if url.startswith("sqlite"):
        kwargs.setdefault("connect_args", {"timeout": 30})
    else:
        kwargs.setdefault("pool_pre_ping", True)
    engine = create_async_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        pragmas = {**SQLITE_PRAGMAS, **(sqlite_pragmas or {})}
        event.listen(engine.sync_engine, "connect", partial(_sqlite_pragmas, pragmas))
    return engine


def _sqlite_pragmas(pragmas: Mapping[str, str], dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    for name, value in pragmas.items():
        cursor.execute(f"PRAGMA {name}={value}")
    cursor.close()


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Return the session maker every repository uses (objects stay usable after commit)."""
    return async_sessionmaker(engine, expire_on_commit=False)
