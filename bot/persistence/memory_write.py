"""Store an in-memory ledger (`bot.persistence.memory`) in a migrated database, in one go.

Rows keep their ids, so the database holds what the SQL ledger would have written row by
row: `carrybot status --database …` and the report read it the same way. One transaction,
one executemany per table and chunk: a five-year backtest's ~70,000 rows take a fraction of
a second on SQLite instead of one transaction per write.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Dialect, Table, insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.persistence.memory_rows import TABLES, Tables
from bot.persistence.models import Base, PaperStateRow, TradingStateRow
from bot.persistence.types import Money, UTCDateTime

CHUNK_ROWS = 5000
"""Rows per executemany (bounded so PostgreSQL's parameter buffers stay small)."""
_TRADING_STATE_ID = 1


async def _insert_sqlite(conn: AsyncConnection, table: Table, rows: list[dict[str, Any]]) -> None:
    """INSERT `rows` with one executemany, each value stored as `conn.execute` would store it.

    Money and timestamps, most of the values, are turned into their SQLite text here
    (`Money`: exact decimal text; `UTCDateTime`: naive UTC in SQLAlchemy's DATETIME format);
    other columns go through SQLAlchemy's own bind processors.
    """
    if not rows:
        return
    dialect = conn.dialect
    columns: list[list[Any]] = []
    for column in table.columns:
        convert = _converter(column.type, dialect)
        values = [row[column.key] for row in rows]
        if convert is not None:
            values = [None if v is None else convert(v) for v in values]
        columns.append(values)
    names = ", ".join(f'"{c.name}"' for c in table.columns)
    marks = ", ".join("?" for _ in table.columns)
    sql = f'INSERT INTO "{table.name}" ({names}) VALUES ({marks})'  # noqa: S608 (our schema's names)
    await conn.exec_driver_sql(sql, list(zip(*columns, strict=True)))


def _converter(column_type: Any, dialect: Dialect) -> Callable[[Any], Any] | None:
    if isinstance(column_type, Money):
        return _money_text
    if isinstance(column_type, UTCDateTime):
        return _utc_text
    processor: Callable[[Any], Any] | None = column_type.dialect_impl(dialect).bind_processor(
        dialect
    )
    return processor


def _money_text(value: Decimal) -> str:
    """`Money.process_bind_param` on SQLite, for a value known to be a Decimal."""
    if not value.is_finite():
        raise ValueError(f"money columns take finite values, got {value}")
    return format(value, "f")


def _utc_text(value: datetime) -> str:
    """`UTCDateTime` then SQLite's DATETIME: naive UTC, microseconds always written."""
    if value.tzinfo is None:
        raise ValueError("naive datetime: timestamps must be timezone-aware UTC")
    utc = value.astimezone(UTC)
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d} "
        f"{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}.{utc.microsecond:06d}"
    )


def _table(name: str) -> Table:
    return Base.metadata.tables[name]


async def write_ledger(tables: Tables, engine: AsyncEngine) -> int:
    """Insert every row of `tables` into the (migrated, empty) database; return the count."""
    written = 0
    async with engine.begin() as conn:
        for name in TABLES:
            rows = tables.rows[name]
            table = _table(name)
            if conn.dialect.name == "sqlite":
                await _insert_sqlite(conn, table, rows)
            else:
                for start in range(0, len(rows), CHUNK_ROWS):
                    await conn.execute(insert(table), rows[start : start + CHUNK_ROWS])
            written += len(rows)
        status = tables.trading
        if status is not None:
            await conn.execute(
                insert(cast(Table, TradingStateRow.__table__)),
                [
                    {
                        "id": _TRADING_STATE_ID,
                        "state": status.state.value,
                        "reason": status.reason,
                        "changed_by": status.changed_by,
                        "changed_at": status.changed_at,
                    }
                ],
            )
            written += 1
        paper: list[dict[str, Any]] = [
            {"key": key, "state": state, "updated_at": at}
            for key, (state, at) in tables.paper.items()
        ]
        if paper:
            await conn.execute(insert(cast(Table, PaperStateRow.__table__)), paper)
            written += len(paper)
    return written
