"""Time a backtest of all five symbols over their full history in ../shared/data (1h bars).

The bot's own trading loop replays every hourly bar open and funding time of 2019-09 to
2024-12 (default parameters, the five pairs as the universe), then the report, the passive
baseline and the output files are built. Target: under 60 s on the project's machines.

    .venv/bin/python bench/bench_backtest.py [DATA_DIR]
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

from bot.backtest.engine import BacktestSpec, load_for
from bot.backtest.session import backtest, default_database
from bot.cli.replay_options import quiet_bot_logs
from bot.config import config_from_dict

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PAIRS = ["BTC/USDT", "ETH/USDT", "XRP/USDT", "SOL/USDT", "DOGE/USDT"]


def main(root: Path) -> None:
    quiet_bot_logs()
    config = config_from_dict({"universe": {"symbols": PAIRS}}, source="bench")
    began = time.perf_counter()
    history = load_for(config, root)
    loaded = time.perf_counter() - began
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        spec = BacktestSpec(config, root, default_database(out))
        steps = 0

        def progress(done: int, total: int) -> None:
            nonlocal steps
            steps = total

        started = time.perf_counter()
        report = asyncio.run(backtest(spec, out, history=history, charts=False, progress=progress))
        replayed = time.perf_counter() - started
    total = time.perf_counter() - began
    run = report.run
    print(f"data {root}: {len(history.symbols)} symbols loaded in {loaded:.2f} s")
    print(
        f"backtest {run.start:%Y-%m-%d %H:%M} → {run.end:%Y-%m-%d %H:%M}: {run.events} events, "
        f"{report.bot.hedges} hedges, net {report.bot.net_pnl:.2f} USDT"
    )
    print(
        f"replay + report + files: {replayed:.1f} s ({run.events / replayed:,.0f} events/s); "
        f"wall time with loading: {total:.1f} s (target < 60 s)"
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else DATA)
