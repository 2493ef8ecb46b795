"""INSERT … ON CONFLICT on PostgreSQL and SQLite: the one helper behind every idempotent write.

A natural key (a fill's venue, symbol and trade id; funding's venue, symbol and time; an
observation's symbol and minute; a singleton row's id) either keeps the row already stored
(`replace=False`) or takes the new values (`replace=True`).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.persistence.models import Base


@cache
def conflict_insert(dialect: str, table_name: str, keys: tuple[str, ...], *, replace: bool) -> Any:
    """Return INSERT into `table_name` … ON CONFLICT (`keys`) DO NOTHING, or DO UPDATE.

    DO UPDATE sets every column but the key and the primary key to the inserted value. The
    statement is built once per dialect and table, so executing it again skips compiling.
    """
    table = Base.metadata.tables[table_name]
    stmt: Any
    if dialect == "postgresql":
        stmt = postgresql.insert(table)
    elif dialect == "sqlite":
        stmt = sqlite.insert(table)
    else:
        raise NotImplementedError(f"unsupported database dialect {dialect}")
    if not replace:
        return stmt.on_conflict_do_nothing(index_elements=list(keys))
    kept = {c.name for c in table.primary_key.columns} | set(keys)
    return stmt.on_conflict_do_update(
        index_elements=list(keys),
        set_={c.name: stmt.excluded[c.name] for c in table.columns if c.name not in kept},
    )


async def insert_new(
    conn: AsyncConnection, table_name: str, keys: tuple[str, ...], rows: Iterable[dict[str, Any]]
) -> int:
    """INSERT `rows`, skipping those whose `keys` exist; return how many were new.

    Executed once per row in the caller's transaction, so the count stays exact on every
    backend (an executemany's rowcount is not) and the compiled statement is reused (a
    multi-row VALUES is compiled every time).
    """
    stmt = conflict_insert(conn.dialect.name, table_name, keys, replace=False)
    new = 0
    for row in rows:
        result = await conn.execute(stmt, row)
        new += int(result.rowcount or 0)
    return new


async def insert_replacing(
    conn: AsyncConnection, table_name: str, keys: tuple[str, ...], rows: list[dict[str, Any]]
) -> None:
    """INSERT `rows`; a row whose `keys` exist takes the new values (one executemany)."""
    if rows:
        await conn.execute(conflict_insert(conn.dialect.name, table_name, keys, replace=True), rows)
