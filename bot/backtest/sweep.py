"""Sweeps: the backtest over every combination of a grid, on local processes or Dask.

Each combination is one `SweepTask` (plain data, so it pickles to a process or a Dask
worker) whose run writes its own directory (summary.json, hedges.csv, equity.csv, ledger.db)
and returns one `SweepRow`. Rows are ranked by a summary figure of the bot.

Walk-forward: with `train_until`, the grid runs on the period before it, the best
combination is chosen there, and only that one runs on the rest (the test period): the
test figures are the ones to trust.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from bot.backtest.engine import BacktestSpec, load_for
from bot.backtest.grid import Combination
from bot.backtest.history import History
from bot.backtest.replay import ReplayAnswers
from bot.backtest.resume import clear_finished, mark_finished
from bot.config import config_from_dict
from bot.errors import UserError

log = logging.getLogger(__name__)

# name: True when larger is better
METRICS: dict[str, bool] = {
    "net_apr": True,
    "net_apr_notional": True,
    "net_pnl": True,
    "funding": True,
    "basis_pnl": True,
    "time_in_market": True,
    "hedges": True,
    "avg_holding_hours": True,
    "fees": False,
    "max_drawdown": False,
    "max_drawdown_pct": False,
}
RUNS_DIR = "runs"


@dataclass(frozen=True)
class SweepTask:
    """One combination to run (plain, picklable data)."""

    index: int
    label: str
    raw: dict[str, Any]
    data_dir: str
    start: datetime | None
    end: datetime | None
    out: str
    seed: int = 0


@dataclass(frozen=True)
class SweepRow:
    """What one combination gave: the bot's figures, or the error that stopped it."""

    index: int
    label: str
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    bot: dict[str, Any] = field(default_factory=dict)
    passive: dict[str, Any] = field(default_factory=dict)
    events: int = 0
    error: str | None = None

    def value(self, metric: str) -> Decimal | None:
        raw = self.bot.get(metric)
        return None if raw is None else Decimal(str(raw))

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "label": self.label,
            "params": {
                f"{section}.{key}": _plain(value)
                for section, values in self.overrides.items()
                for key, value in values.items()
            },
            "error": self.error,
            "events": self.events,
            "bot": self.bot,
            "passive": self.passive,
        }


def check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise UserError(f"--metric {metric!r}: unknown; use one of {', '.join(METRICS)}")
    return metric


def tasks_for(
    combos: Sequence[Combination],
    data_dir: Path,
    out: Path,
    *,
    start: datetime | None,
    end: datetime | None,
    seed: int = 0,
) -> list[SweepTask]:
    """Return one task per valid combination, each writing under out/runs/NNN.

    Paths are absolute: a Dask worker runs in a directory of its own.
    """
    data_dir, out = data_dir.resolve(), out.resolve()
    return [
        SweepTask(
            index=c.index,
            label=c.label,
            raw=c.raw,
            data_dir=str(data_dir),
            start=start,
            end=end,
            out=str(out / RUNS_DIR / f"{c.index:03d}"),
            seed=seed,
        )
        for c in combos
        if c.config is not None
    ]


# --- running one task (in whatever process runs it) ------------------------------------

_HISTORY: dict[tuple[str, tuple[str, ...] | None], tuple[History, ReplayAnswers]] = {}


def run_task(task: SweepTask) -> SweepRow:
    """Run one combination's backtest; errors become the row's `error` (never raise)."""
    try:
        return _run(task)
    except Exception as exc:  # one bad combination must not stop the sweep
        log.exception("Combination %d (%s) failed", task.index, task.label)
        return SweepRow(task.index, task.label, error=f"{type(exc).__name__}: {exc}")


def _run(task: SweepTask) -> SweepRow:
    from bot.backtest.session import backtest, default_database

    logging.getLogger("bot").setLevel(logging.WARNING)
    logging.getLogger("strategies").setLevel(logging.WARNING)
    config = config_from_dict(task.raw, source=f"combination {task.index}")
    out = Path(task.out)
    clear_finished(task)  # a run cut short must not leave an older marker behind
    spec = BacktestSpec(
        config=config,
        data_dir=Path(task.data_dir),
        database_url=default_database(out),
        start=task.start,
        end=task.end,
        seed=task.seed,
    )
    history, answers = cached_replay(spec)
    report = asyncio.run(backtest(spec, out, history=history, charts=False, answers=answers))
    summary = report.summary_json()
    row = SweepRow(
        index=task.index,
        label=task.label,
        bot=summary["bot"],
        passive=summary["passive"],
        events=report.run.events,
    )
    mark_finished(task, config.fingerprint(), row)  # last: `--resume` trusts only this
    return row


def cached_history(spec: BacktestSpec) -> History:
    """Load a history once per process (a worker runs many combinations on the same data)."""
    return cached_replay(spec)[0]


def cached_replay(spec: BacktestSpec) -> tuple[History, ReplayAnswers]:
    """The history of `spec` and the replay answers shared by this process's runs over it."""
    from bot.backtest.engine import symbols_to_load

    symbols = symbols_to_load(spec.config)
    key = (str(spec.data_dir.resolve()), tuple(symbols) if symbols else None)
    if key not in _HISTORY:
        _HISTORY[key] = (load_for(spec.config, spec.data_dir), ReplayAnswers())
    return _HISTORY[key]


def preload(spec: BacktestSpec) -> None:
    """Load the history in this process before forking workers (they inherit it)."""
    cached_history(spec)


# --- running many --------------------------------------------------------------------------

Done = Callable[[SweepRow], None]


def run_local(tasks: Sequence[SweepTask], workers: int, done: Done) -> list[SweepRow]:
    """Run tasks on `workers` local processes (forked where possible: they share the data)."""
    if not tasks:
        return []
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    pool = ProcessPoolExecutor(max_workers=max(1, workers), mp_context=context)
    try:
        futures = [pool.submit(run_task, t) for t in tasks]
        rows = _collect(as_completed(futures), done)
    except BaseException:
        # Ctrl-C (or a worker lost): what has not started never will. Leaving the pool by
        # `with` would wait for every queued combination to run first.
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown()
    return rows


def run_dask(tasks: Sequence[SweepTask], address: str, done: Done) -> list[SweepRow]:
    """Run tasks on the Dask distributed cluster whose scheduler is at `address`."""
    try:
        distributed: Any = importlib.import_module("distributed")
    except ImportError:
        raise UserError(
            "--dask-scheduler needs dask.distributed: pip install 'carrybot[dask]'"
        ) from None
    if not tasks:
        return []
    try:
        client = distributed.Client(address, timeout="10s")
    except (OSError, ValueError) as exc:  # refused, timed out (OSError), bad address
        raise UserError(f"--dask-scheduler {address}: cannot connect ({exc})") from None
    try:
        futures = client.map(run_task, list(tasks), pure=False)
        return _collect(iter(distributed.as_completed(futures)), done)
    finally:
        client.close()


def _collect(finished: Iterator[Any], done: Done) -> list[SweepRow]:
    rows: list[SweepRow] = []
    for future in finished:
        row = future.result()
        assert isinstance(row, SweepRow)
        rows.append(row)
        done(row)
    return rows


def rank(rows: Sequence[SweepRow], metric: str) -> list[SweepRow]:
    """Order rows best first by `metric`, then rows without it, then failed ones (by index)."""
    better_high = METRICS[metric]

    def key(row: SweepRow) -> tuple[int, Decimal, int]:
        if row.error is not None:
            return (2, Decimal(0), row.index)
        value = row.value(metric)
        if value is None:
            return (1, Decimal(0), row.index)
        return (0, -value if better_high else value, row.index)

    return sorted(rows, key=key)


def invalid_rows(combos: Sequence[Combination]) -> list[SweepRow]:
    """Return a row for each combination the config validation refused."""
    return [
        SweepRow(c.index, c.label, c.overrides, error=c.error) for c in combos if c.config is None
    ]


def with_overrides(rows: Sequence[SweepRow], combos: Sequence[Combination]) -> list[SweepRow]:
    by_index = {c.index: c for c in combos}
    return [replace(r, overrides=by_index[r.index].overrides) for r in rows]


def test_task(task: SweepTask, out: Path) -> SweepTask:
    """Return `task` moved to the walk-forward test directory (out/test)."""
    return replace(task, out=str(out.resolve() / "test"))


def default_workers() -> int:
    return os.cpu_count() or 1


def train_end(train_until: datetime) -> datetime:
    """The training period ends with the last hourly event before `train_until`."""
    return train_until - timedelta(hours=1)


def ranking_csv_rows(rows: Sequence[SweepRow], metric: str) -> list[list[Any]]:
    """Return the ranking as CSV rows (rank, index, params, metric, main figures, error)."""
    out: list[list[Any]] = []
    for position, row in enumerate(rows, start=1):
        bot = row.bot
        out.append(
            [
                position if row.error is None else "",
                row.index,
                row.label,
                bot.get(metric, ""),
                bot.get("net_pnl", ""),
                bot.get("net_apr", ""),
                bot.get("funding", ""),
                bot.get("fees", ""),
                bot.get("max_drawdown", ""),
                bot.get("hedges", ""),
                row.passive.get("net_apr", ""),
                row.error or "",
            ]
        )
    return out


RANKING_COLUMNS = (
    "rank",
    "combination",
    "params",
    "metric",
    "net_pnl",
    "net_apr",
    "funding",
    "fees",
    "max_drawdown",
    "hedges",
    "passive_net_apr",
    "error",
)


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return f"{value:f}"
    return value
