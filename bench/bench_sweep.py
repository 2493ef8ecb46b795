"""Time a sweep of 48 parameter combinations on BTC and ETH, 2020–2024, on 2 processes.

Grid: entry_apr × exit_apr × notional_per_hedge × min_hold_hours = 4 × 3 × 2 × 2. Each
combination is a full backtest through the bot's loop (no charts); processes are forked
after the history is loaded, so they share it. Besides the wall time, the CPU time of the
worker processes per combination is printed (steadier than wall time on a loaded machine).
`--combos N` runs only the first N combinations of the grid (a shorter measure when the
machine is busy; the whole-grid time is then a projection from the rate).

    .venv/bin/python bench/bench_sweep.py [DATA_DIR] [--workers N] [--combos N]
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from bot.backtest.engine import BacktestSpec
from bot.backtest.grid import combinations
from bot.backtest.sweep import preload, rank, run_local, tasks_for, with_overrides
from bot.cli.replay_options import quiet_bot_logs
from bot.config import config_from_dict

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
BASE = {"universe": {"symbols": ["BTC/USDT", "ETH/USDT"]}, "strategy": {"name": "funding_carry"}}
GRID = {
    "strategy": {
        "entry_apr": [Decimal(v) for v in ("0.05", "0.08", "0.10", "0.15")],
        "exit_apr": [Decimal(v) for v in ("0.00", "0.02", "0.03")],
        "min_hold_hours": [Decimal(24), Decimal(72)],
    },
    "sizing": {"notional_per_hedge": [Decimal(500), Decimal(1000)]},
}
START = datetime(2020, 1, 1, tzinfo=UTC)
END = datetime(2024, 12, 31, 23, tzinfo=UTC)


def main(root: Path, workers: int, limit: int | None = None) -> None:
    quiet_bot_logs()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    grid = combinations(BASE, GRID)
    combos = grid[:limit] if limit else grid
    base = config_from_dict(BASE, source="bench")
    began = time.perf_counter()
    preload(BacktestSpec(base, root, "sqlite+aiosqlite://"))
    loaded = time.perf_counter() - began
    with tempfile.TemporaryDirectory() as tmp:
        tasks = tasks_for(combos, root, Path(tmp), start=START, end=END)
        finished = 0

        def done(_: object) -> None:
            nonlocal finished
            finished += 1
            print(
                f"  {finished}/{len(tasks)} done at {time.perf_counter() - began:.0f} s", flush=True
            )

        rows = with_overrides(run_local(tasks, workers, done), combos)
    seconds = time.perf_counter() - began
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = children.ru_utime + children.ru_stime  # the worker processes, once they have ended
    events = sum(r.events for r in rows)
    best = rank(rows, "net_apr")[0]
    print(f"history loaded in {loaded:.1f} s")
    print(
        f"sweep: {len(tasks)} combinations on {workers} processes in {seconds:.1f} s "
        f"({seconds / len(tasks):.1f} s per combination, {events / seconds:,.0f} events/s); "
        f"worker CPU {cpu:.1f} s = {cpu / len(tasks):.2f} s per combination"
    )
    if len(tasks) < len(grid):
        print(
            f"the {len(grid)} combinations at this rate: {seconds / len(tasks) * len(grid):.0f} s; "
            f"on {workers} idle cores: {cpu / len(tasks) * len(grid) / workers:.0f} s"
        )
    print(f"best by net_apr: {best.label}: net_apr {best.bot.get('net_apr')}")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("data", nargs="?", type=Path, default=DATA)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--combos", type=int, default=None)
    args = parser.parse_args()
    main(args.data, args.workers, args.combos)
