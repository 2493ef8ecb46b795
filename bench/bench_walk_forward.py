"""Reproduce the README's strategy figures: full history and walk-forward test periods.

Runs `carrybot` itself (the documented commands), on the five pairs of `--data`, with
`config.example.toml` (its universe widened to the five pairs):

1. the full history, default config: the bot against the constant-notional passive carry;
2. for each split date D of `--splits`: `carrybot sweep --grid GRID --train-until D` from
   `--from` to the end of the split's test year, i.e. the grid ranked on the data before D
   (in-sample) and the winner run on the year from D (out-of-sample);
3. the default config itself on each test year (out-of-sample for the defaults only where
   they were chosen on data before it).

Prints markdown tables: net APR on notional, max drawdown, hedges and per-pair net P&L of
the bot and of the passive baseline. Results stay in `--out`. Slow: one backtest of the
full history takes 15–60 s depending on the machine's load, a sweep a multiple of that.

    .venv/bin/python bench/bench_walk_forward.py --data ../shared/data \
        [--grid bench/walk_forward/grid.toml] [--splits 2023-01-01] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PAIRS = '["BTC/USDT", "ETH/USDT", "XRP/USDT", "SOL/USDT", "DOGE/USDT"]'
CARRYBOT = [str(Path(sys.executable).parent / "carrybot")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--grid", type=Path, default=ROOT / "bench/walk_forward/grid.toml")
    parser.add_argument("--splits", default="2023-01-01", help="comma-separated split dates")
    parser.add_argument("--from", dest="start", default="2020-01-01")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("out/walk-forward"))
    parser.add_argument("--skip-full", action="store_true")
    args = parser.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    config = args.out / "config.toml"
    text = (ROOT / "config.example.toml").read_text()
    config.write_text(text.replace('symbols = ["BTC/USDT", "ETH/USDT"]', f"symbols = {PAIRS}"))

    rows: list[tuple[str, dict[str, Any]]] = []
    if not args.skip_full:
        rows.append(("full history, defaults (in-sample)", _backtest(args, config, "full")))
    for split in [s.strip() for s in args.splits.split(",") if s.strip()]:
        end = f"{date.fromisoformat(split).year}-12-31T23:00"
        sweep = args.out / f"sweep-{split}"
        _run(["sweep", "-c", str(config), "--grid", str(args.grid), "--data", str(args.data),
              "--from", args.start, "--to", end, "--train-until", split, "--workers",
              str(args.workers), "--out", str(sweep), "--metric", "net_apr_notional",
              "--resume"])  # fmt: skip
        walk = json.loads((sweep / "walk_forward.json").read_text())
        chosen = walk["chosen_on_train"]
        rows.append((f"train {args.start}..{split} winner (in-sample): {chosen['label']}", chosen))
        test = json.loads((sweep / "test" / "summary.json").read_text())
        rows.append((f"test {split}..{end[:10]}, winner (out-of-sample)", test))
        defaults = _backtest(args, config, f"test-{split}", "--from", split, "--to", end)
        rows.append((f"test {split}..{end[:10]}, defaults", defaults))
    _print(rows)


def _backtest(args: argparse.Namespace, config: Path, name: str, *period: str) -> dict[str, Any]:
    out = args.out / name
    _run(["backtest", "-c", str(config), "--data", str(args.data), "--out", str(out),
          "--no-charts", *period])  # fmt: skip
    summary: dict[str, Any] = json.loads((out / "summary.json").read_text())
    return summary


def _run(command: list[str]) -> None:
    print("$ carrybot " + " ".join(command), file=sys.stderr, flush=True)
    subprocess.run(
        [*CARRYBOT, *command], check=True, cwd=ROOT, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _pct(value: str | None) -> str:
    return "-" if value is None else f"{float(value) * 100:.2f}%"


def _print(rows: list[tuple[str, dict[str, Any]]]) -> None:
    print(
        "| run | bot net APR on notional | passive (constant notional) | bot max DD | "
        "passive max DD | bot hedges | fees | per pair: bot / passive net P&L |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for label, s in rows:
        bot, passive = s["bot"], s["passive"]
        bot_pairs = {p: v["net_pnl"] for p, v in s.get("by_pair", {}).items()}
        passive_pairs = {p: v["net_pnl"] for p, v in s.get("passive_by_pair", {}).items()}
        pairs = ", ".join(
            f"{p.split('/')[0]} {float(bot_pairs.get(p, 0)):.0f}/{float(passive_pairs[p]):.0f}"
            for p in sorted(passive_pairs)
        )
        print(f"| {label} | {_pct(bot['net_apr_notional'])} | "
              f"{_pct(passive['net_apr_notional'])} | {float(bot['max_drawdown']):.2f} | "
              f"{float(passive['max_drawdown']):.2f} | {bot['hedges']} | "
              f"{float(bot['fees']):.2f} | {pairs} |")  # fmt: skip


if __name__ == "__main__":
    main()
