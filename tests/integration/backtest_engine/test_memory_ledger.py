"""A backtest's ledger kept in memory gives the same run and the same file as one written
row by row through SQLAlchemy, and `carrybot status` reads that file."""

from __future__ import annotations

import json
import math
import sqlite3
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from bot.backtest.engine import BacktestSpec
from bot.backtest.replay import ReplayAnswers
from bot.backtest.session import backtest, default_database
from bot.persistence.db import create_engine, session_factory
from bot.persistence.repositories import CycleReads, Ledger
from tests.e2e.cli import run_cli
from tests.integration.backtest_engine.conftest import ALWAYS_IN, config, run
from tests.unit.backtest_engine.synthetic import T0, write_flat_history

D = Decimal
SWINGING = {
    **ALWAYS_IN,
    "universe": {"symbols": ["BTC/USDT", "ETH/USDT"]},
    "strategy": {
        "name": "funding_carry",
        "entry_apr": D("0.05"),
        "exit_apr": D("0.0"),
        "max_breakeven_hours": D(1000),
        "min_hold_hours": D(8),
        "cooldown_hours": D(8),
    },
}


def _swinging_rate(k: int) -> Decimal:
    return D(str(round(0.001 * math.sin(k / 4.0), 6)))


def _dump(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return list(conn.iterdump())


async def test_memory_ledger_gives_the_same_files_and_rows_as_the_sql_ledger(
    tmp_path: Path,
) -> None:
    data = write_flat_history(
        tmp_path / "data", symbols=("BTCUSDT", "ETHUSDT"), rate_at=_swinging_rate, days=40
    )
    cfg = config(SWINGING)
    end = T0 + timedelta(days=25)

    memory = await run(cfg, data, tmp_path / "memory", T0, end)
    sql = await run(cfg, data, tmp_path / "sql", T0, end, ledger_in_memory=False)
    assert sql.bot == memory.bot

    assert memory.bot.hedges >= 4  # the swings open and close hedges on both pairs
    for name in ("summary.json", "hedges.csv", "equity.csv"):
        assert (tmp_path / "memory" / name).read_bytes() == (tmp_path / "sql" / name).read_bytes()
    rows = _dump(tmp_path / "memory" / "ledger.db")
    assert rows == _dump(tmp_path / "sql" / "ledger.db")
    assert sum(r.startswith('INSERT INTO "fills"') for r in rows) >= 8


async def test_memory_ledger_file_reads_back_through_the_sql_ledger(tmp_path: Path) -> None:
    data = write_flat_history(
        tmp_path / "data", symbols=("BTCUSDT", "ETHUSDT"), rate_at=_swinging_rate, days=30
    )
    report = await run(config(SWINGING), data, tmp_path / "out", T0, T0 + timedelta(days=20))

    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'out' / 'ledger.db'}")
    try:
        stored = Ledger(session_factory(engine), CycleReads())
        assert await stored.hedges.in_states(None) == await report.run.ledger.hedges.in_states(None)
        assert await stored.fills.all() == await report.run.ledger.fills.all()
        assert await stored.funding.payments() == await report.run.ledger.funding.payments()
        runs = await stored.runs.latest()
        assert runs[0].stop_reason == "backtest finished"
    finally:
        await engine.dispose()
    status = run_cli(
        "status",
        "--database",
        f"sqlite+aiosqlite:///{tmp_path / 'out' / 'ledger.db'}",
        "--json",
        cwd=tmp_path,
    )
    assert status.code == 0, status.stderr
    assert json.loads(status.stdout)["totals"]["hedges"] == report.bot.hedges >= 2


async def test_shared_replay_answers_leave_a_second_run_byte_identical(tmp_path: Path) -> None:
    data = write_flat_history(
        tmp_path / "data", symbols=("BTCUSDT", "ETHUSDT"), rate_at=_swinging_rate, days=20
    )
    cfg = config(SWINGING)
    answers = ReplayAnswers()

    async def once(out: Path) -> bytes:
        spec = BacktestSpec(cfg, data, default_database(out), T0, T0 + timedelta(days=10))
        await backtest(spec, out, charts=False, answers=answers)
        return (out / "summary.json").read_bytes()

    first = await once(tmp_path / "a")
    kept = len(answers)
    second = await once(tmp_path / "b")

    assert kept > 0 and len(answers) == kept  # the second run found every answer kept
    assert first == second
    plain = await run(cfg, data, tmp_path / "c", T0, T0 + timedelta(days=10))
    assert plain.run.events and (tmp_path / "c" / "summary.json").read_bytes() == first
