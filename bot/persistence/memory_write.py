"""Store an in-memory ledger (`bot.persistence.memory`) in a migrated database, in one go.

Rows keep their ids, so the database holds what the SQL ledger would have written row by
row: `carrybot status --database …` and the report read it the same way. One transaction,
one executemany per table and chunk: a five-year backtest's ~70,000 rows take a fraction of
a second on SQLite instead of one transaction per write.
"""

from __future__ import annotations

import json
from typing import Any, cast

from sqlalchemy import Table, insert
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.persistence.memory_rows import TABLES, Tables
from bot.persistence.models import Base, PaperStateRow, TradingStateRow

CHUNK_ROWS = 5000
"""Rows per executemany (bounded so PostgreSQL's parameter buffers stay small)."""
_TRADING_STATE_ID = 1


def _table(name: str) -> Table:
    return Base.metadata.tables[name]


async def write_ledger(tables: Tables, engine: AsyncEngine) -> int:
    """Insert every row of `tables` into the (migrated, empty) database; return the count."""
    written = 0
    async with engine.begin() as conn:
        for name in TABLES:
            rows = tables.rows[name]
            table = _table(name)
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
            {"key": key, "state": json.loads(state), "updated_at": at}
            for key, (state, at) in tables.paper.items()
        ]
        if paper:
            await conn.execute(insert(cast(Table, PaperStateRow.__table__)), paper)
            written += len(paper)
    return written
