"""Time a sweep of 500 parameter combinations on BTC and ETH, on local processes.

Grid: entry_apr × exit_apr × min_hold_hours × notional_per_hedge = 5 × 5 × 5 × 4, each a
full backtest through the bot's loop (no charts) over `--from`..`--to` (default: 2024, one
year; pass --from 2020-01-01 for the five years of `bench_sweep.py`). Target: under 15 min.
`--dask` then runs the same tasks on a Dask `LocalCluster` (as many worker processes, one
thread each) and tells whether its ranking by net_apr is the local one, combination for
combination.

    .venv/bin/python bench/bench_sweep_500.py [DATA_DIR] [--workers N] [--from D] [--to D]
                                              [--dask]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from bot.backtest.engine import BacktestSpec
from bot.backtest.grid import combinations
from bot.backtest.sweep import (
    SweepRow,
    SweepTask,
    preload,
    rank,
    run_dask,
    run_local,
    tasks_for,
    with_overrides,
)
from bot.cli.replay_options import quiet_bot_logs
from bot.config import config_from_dict

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
BASE = {"universe": {"symbols": ["BTC/USDT", "ETH/USDT"]}, "strategy": {"name": "funding_carry"}}
GRID = {
    "strategy": {
        "entry_apr": [Decimal(v) for v in ("0.05", "0.08", "0.10", "0.15", "0.20")],
        "exit_apr": [Decimal(v) for v in ("-0.02", "0.00", "0.01", "0.02", "0.03")],
        "min_hold_hours": [Decimal(v) for v in (8, 24, 48, 72, 168)],
    },
    "sizing": {"notional_per_hedge": [Decimal(v) for v in (250, 500, 750, 1000)]},
}
TARGET_SECONDS = 15 * 60


def on_dask(tasks: list[SweepTask], workers: int) -> tuple[list[SweepRow], float]:
    """Run `tasks` on a fresh LocalCluster of `workers` processes; return (rows, seconds)."""
    import distributed

    began = time.perf_counter()
    with distributed.LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        protocol="tcp",
        host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:
        rows = run_dask(tasks, cluster.scheduler_address, lambda _: None)
    return rows, time.perf_counter() - began


def main(root: Path, workers: int, start: datetime, end: datetime, dask: bool) -> None:
    quiet_bot_logs()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    combos = combinations(BASE, GRID)
    began = time.perf_counter()
    preload(BacktestSpec(config_from_dict(BASE, source="bench"), root, "sqlite+aiosqlite://"))
    with tempfile.TemporaryDirectory() as tmp:
        tasks = tasks_for(combos, root, Path(tmp), start=start, end=end)
        finished = 0

        def done(_: object) -> None:
            nonlocal finished
            finished += 1
            if finished % 25 == 0 or finished == len(tasks):
                spent = time.perf_counter() - began
                eta = spent / finished * (len(tasks) - finished)
                print(f"  {finished}/{len(tasks)} at {spent:.0f} s, ETA {eta:.0f} s", flush=True)

        rows = with_overrides(run_local(tasks, workers, done), combos)
        seconds = time.perf_counter() - began
        dask_rows, dask_seconds = on_dask(tasks, workers) if dask else ([], 0.0)
    events = sum(r.events for r in rows)
    failed = sum(1 for r in rows if r.error)
    best = rank(rows, "net_apr")[0]
    print(
        f"sweep {start:%Y-%m-%d} → {end:%Y-%m-%d}: {len(tasks)} combinations ({failed} failed) "
        f"on {workers} processes in {seconds:.1f} s ({seconds / len(tasks):.2f} s per "
        f"combination, {events / seconds:,.0f} events/s); target < {TARGET_SECONDS} s: "
        f"{'met' if seconds < TARGET_SECONDS else 'NOT met'}"
    )
    print(f"best by net_apr: {best.label}: net_apr {best.bot.get('net_apr')}")
    if dask:
        local_order = [(r.index, r.bot.get("net_apr")) for r in rank(rows, "net_apr")]
        dask_order = [(r.index, r.bot.get("net_apr")) for r in rank(dask_rows, "net_apr")]
        print(
            f"Dask LocalCluster ({workers} worker processes): {len(dask_rows)} combinations in "
            f"{dask_seconds:.1f} s; ranking by net_apr "
            f"{'IDENTICAL to' if local_order == dask_order else 'DIFFERENT from'} the local one"
        )
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("data", nargs="?", type=Path, default=DATA)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--from", dest="start", default="2024-01-01")
    parser.add_argument("--to", dest="end", default="2024-12-31T23:00")
    parser.add_argument("--dask", action="store_true")
    args = parser.parse_args()

    def when(text: str) -> datetime:
        return datetime.fromisoformat(text).replace(tzinfo=UTC)

    main(args.data, args.workers, when(args.start), when(args.end), args.dask)
