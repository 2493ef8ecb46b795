"""The in-thread SQLite connection: same results as aiosqlite, concurrent writers wait their turn."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import text

from bot.persistence.db import THROWAWAY_SQLITE_PRAGMAS, create_engine
from bot.persistence.inline_sqlite import inline_sqlite_args


async def test_inline_engine_concurrent_transactions_all_commit(tmp_path: Path) -> None:
    engine = create_engine(
        f"sqlite+aiosqlite:///{tmp_path / 'x.db'}",
        sqlite_pragmas=THROWAWAY_SQLITE_PRAGMAS,
        connect_args=inline_sqlite_args(),
    )
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (v INTEGER)"))

    async def write(v: int) -> None:
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO t VALUES (:v)"), {"v": v})
            await asyncio.sleep(0)  # hold the write lock across a turn of the loop

    await asyncio.gather(*(write(v) for v in range(20)))

    async with engine.connect() as conn:
        total = (await conn.execute(text("SELECT count(*), sum(v) FROM t"))).one()
    await engine.dispose()
    assert tuple(total) == (20, sum(range(20)))
