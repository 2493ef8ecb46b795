"""Time a backtest of all five symbols over their full history in ../shared/data (1h bars).

The bot's own trading loop replays every hourly bar open and funding time of 2019-09 to
2024-12 (default parameters, the five pairs as the universe), then the report, the passive
baseline and the output files are built. In the same run the script measures the floor:
reading every CSV file of those pairs with Python's `csv` and `gzip` modules. Target: the
backtest, loading included, within 10x that floor, peak RSS under 1 GiB.

    .venv/bin/python bench/bench_backtest.py [DATA_DIR] [--runs N] [--summary FILE]
                                             [--save-summary FILE] [--strategy NAME]
                                             [--sql-ledger] [--until YYYY-MM-DD]

`--summary FILE` also checks the run's summary.json byte for byte against FILE;
`--save-summary FILE` keeps it (a reference for the next version). Each run also prints its
CPU time against the floor's CPU time (steadier than wall time when other processes load
the machine). `--strategy` runs another
registered strategy than the default one with its default parameters. `--sql-ledger` writes
the ledger row by row through SQLAlchemy, as the live bot does (the path whose speed rests
on the kept cycle reads, `bot/persistence/cycle_reads.py`), instead of in memory; `--until`
ends the replay early (a shorter window; the floor still reads every file).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import gzip
import io
import os
import resource
import statistics
import tempfile
import time
from datetime import UTC, date, datetime
from datetime import time as time_of_day
from pathlib import Path

from bot.backtest.engine import BacktestSpec, load_for
from bot.backtest.session import backtest, default_database
from bot.cli.replay_options import quiet_bot_logs
from bot.config import config_from_dict

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PAIRS = ["BTC/USDT", "ETH/USDT", "XRP/USDT", "SOL/USDT", "DOGE/USDT"]
TARGET_RATIO = 10.0


def data_files(root: Path, pairs: list[str]) -> list[Path]:
    """Every CSV (plain or gzip) of `pairs` under root/binance/{funding,mark,perp,spot}."""
    names = {p.replace("/", "") for p in pairs}
    files = [
        path
        for path in sorted((root / "binance").glob("*/*.csv*"))
        if path.name.split(".")[0].split("-")[0] in names
    ]
    if not files:
        raise SystemExit(f"no data files for {', '.join(pairs)} under {root}/binance")
    return files


def read_floor(files: list[Path]) -> tuple[float, int, float]:
    """Read every row of `files` with csv + gzip; return (seconds, rows, CPU seconds)."""
    began, cpu = time.perf_counter(), time.process_time()
    rows = 0
    for path in files:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
                rows += sum(1 for _ in csv.reader(f))
        else:
            with path.open(encoding="utf-8", newline="") as f:
                rows += sum(1 for _ in csv.reader(io.StringIO(f.read())))
    return time.perf_counter() - began, rows, time.process_time() - cpu


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def one_backtest(
    root: Path,
    summary: Path | None,
    *,
    strategy: str | None = None,
    save: Path | None = None,
    sql_ledger: bool = False,
    until: datetime | None = None,
) -> tuple[float, float, int, str]:
    """Run the backtest once; return (seconds with loading, replay seconds, events, line)."""
    raw: dict[str, object] = {"universe": {"symbols": PAIRS}}
    if strategy is not None:
        raw["strategy"] = {"name": strategy}
    config = config_from_dict(raw, source="bench")
    began = time.perf_counter()
    history = load_for(config, root)
    loaded = time.perf_counter() - began
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        spec = BacktestSpec(
            config, root, default_database(out), end=until, ledger_in_memory=not sql_ledger
        )
        started = time.perf_counter()
        report = asyncio.run(backtest(spec, out, history=history, charts=False))
        replayed = time.perf_counter() - started
        same = ""
        if save is not None:
            save.write_bytes((out / "summary.json").read_bytes())
        if summary is not None:
            identical = (out / "summary.json").read_bytes() == summary.read_bytes()
            same = f"; summary.json {'IDENTICAL to' if identical else 'DIFFERS from'} {summary}"
    total = time.perf_counter() - began
    run = report.run
    line = (
        f"{run.events} events {run.start:%Y-%m-%d %H:%M} → {run.end:%Y-%m-%d %H:%M}, "
        f"{report.bot.hedges} hedges, net {report.bot.net_pnl:.2f} USDT; "
        f"load {loaded:.2f} s + replay/report/files {replayed:.2f} s{same}"
    )
    return total, replayed, run.events, line


def main(
    root: Path,
    runs: int,
    summary: Path | None,
    strategy: str | None,
    save: Path | None,
    *,
    sql_ledger: bool = False,
    until: datetime | None = None,
) -> None:
    quiet_bot_logs()
    files = data_files(root, PAIRS)
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    results = []
    cpu_ratios = []
    for n in range(1, runs + 1):
        floor, rows, floor_cpu = read_floor(files)
        cpu = time.process_time()
        total, replayed, events, line = one_backtest(
            root, summary, strategy=strategy, save=save, sql_ledger=sql_ledger, until=until
        )
        cpu = time.process_time() - cpu
        floor_after, _, floor_cpu_after = read_floor(files)
        floor = min(floor, floor_after)  # the floor of this run: the faster of two reads
        floor_cpu = min(floor_cpu, floor_cpu_after)
        results.append((total, floor))
        cpu_ratios.append(cpu / floor_cpu)
        print(
            f"run {n}: floor {floor:.3f} s ({len(files)} files, {rows:,} rows, csv + gzip); "
            f"backtest {total:.2f} s = {total / floor:.1f}x floor "
            f"({events / replayed:,.0f} events/s replayed); CPU {cpu:.2f} s = "
            f"{cpu / floor_cpu:.1f}x the floor's {floor_cpu:.3f} s; {line}",
            flush=True,
        )
    ratios = [t / f for t, f in results]
    best = min(ratios)
    print(
        f"backtest / floor over {runs} run(s): best {best:.1f}x, median "
        f"{statistics.median(ratios):.1f}x (target ≤ {TARGET_RATIO:.0f}x: "
        f"{'met' if best <= TARGET_RATIO else 'NOT met'}); wall {min(t for t, _ in results):.2f}"
        f"–{max(t for t, _ in results):.2f} s; CPU / floor CPU best {min(cpu_ratios):.1f}x "
        f"(a steadier measure on a loaded machine); peak RSS {peak_rss_mib():.0f} MiB "
        f"(target < 1024 MiB)"
    )
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("data", nargs="?", type=Path, default=DATA)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--summary", type=Path, default=None)
    parser.add_argument("--save-summary", type=Path, default=None)
    parser.add_argument("--strategy", default=None)
    parser.add_argument("--sql-ledger", action="store_true")
    parser.add_argument("--until", type=date.fromisoformat, default=None)
    args = parser.parse_args()
    until = datetime.combine(args.until, time_of_day.min, UTC) if args.until else None
    main(
        args.data,
        args.runs,
        args.summary,
        args.strategy,
        args.save_summary,
        sql_ledger=args.sql_ledger,
        until=until,
    )
