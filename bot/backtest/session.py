"""One backtest end to end: replay, read the ledger back, write the files."""

from __future__ import annotations

from pathlib import Path

from bot.backtest.engine import BacktestSpec, Progress, run_backtest
from bot.backtest.history import History
from bot.backtest.outputs import write_outputs
from bot.backtest.replay import ReplayAnswers
from bot.backtest.report import BacktestReport, build_report

LEDGER_FILE = "ledger.db"


def default_database(out: Path) -> str:
    """Return the URL of the run's own SQLite ledger in `out`, removing an older one."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / LEDGER_FILE
    for leftover in (path, *(path.with_name(path.name + s) for s in ("-wal", "-shm", "-journal"))):
        leftover.unlink(missing_ok=True)
    return f"sqlite+aiosqlite:///{path}"


async def backtest(
    spec: BacktestSpec,
    out: Path,
    *,
    history: History | None = None,
    charts: bool = True,
    progress: Progress | None = None,
    answers: ReplayAnswers | None = None,
) -> BacktestReport:
    """Replay `spec`, then write summary.json, hedges.csv, equity.csv (and charts) to `out`."""
    run = await run_backtest(spec, history=history, progress=progress, answers=answers)
    report = await build_report(run, run.ledger)
    write_outputs(report, out)
    if charts:
        from bot.backtest.plots import write_charts  # matplotlib loads only when drawing

        write_charts(report, out)
    return report
