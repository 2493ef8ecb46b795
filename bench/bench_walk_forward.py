"""Reproduce the README's strategy figures: full history, rolling walk-forward test periods.

Runs `carrybot` itself (the documented commands) on the five pairs of `--data`, with
`config.example.toml` (its universe widened to the five pairs):

1. the full history, default config: the bot against the constant-notional passive carry;
2. each test period of `--tests` (a year `2022`, or years `2023-2024`) with the defaults:
   bot against passive, in total and per pair;
3. with `--sweep`, for each test period: `carrybot sweep --grid GRID --train-until START`
   over the `--train-years` years before it (a split whose test spans several years trains
   from `--from`): the grid ranked on the training years (in-sample) and the winner run on
   the test period (out-of-sample).

Prints markdown tables: net APR on notional (the passive's also on the notional-years it
really held: its peak notional is reached only once every pair is listed), max drawdown
(USDT and per unit of peak notional), hedges, hedges per pair per year, fees (of which the
constant-notional resizes', read from the run's ledger: the passive pays none), and per
pair the net P&L of the bot and of the passive baseline as an APR on one hedge's notional
over the period. Results stay in `--out`
(a rerun reuses finished runs: delete `--out` to start over). Slow: a backtest of one year
takes 10–40 s depending on the machine's load, a sweep about ten times that.

    .venv/bin/python bench/bench_walk_forward.py --data ../shared/data \
        [--tests 2022,2023,2024,2023-2024] [--sweep] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PAIRS = ["BTC/USDT", "ETH/USDT", "XRP/USDT", "SOL/USDT", "DOGE/USDT"]
CARRYBOT = [str(Path(sys.executable).parent / "carrybot")]
NOTIONAL = Decimal(1000)  # config.example.toml's notional_per_hedge


@dataclass(frozen=True)
class Period:
    """A test period: whole calendar years `first`..`last`."""

    first: int
    last: int

    @classmethod
    def parse(cls, text: str) -> Period:
        first, _, last = text.strip().partition("-")
        return cls(int(first), int(last or first))

    @property
    def label(self) -> str:
        return str(self.first) if self.first == self.last else f"{self.first}–{self.last}"

    @property
    def start(self) -> str:
        return f"{self.first}-01-01"

    @property
    def end(self) -> str:
        return f"{self.last}-12-31T23:00"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--grid", type=Path, default=ROOT / "bench/walk_forward/grid.toml")
    parser.add_argument("--tests", default="2022,2023,2024,2023-2024", help="test periods")
    parser.add_argument("--from", dest="start", default="2020-01-01", help="earliest training")
    parser.add_argument("--train-years", type=int, default=2)
    parser.add_argument("--sweep", action="store_true", help="also sweep the grid per period")
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
    for period in [Period.parse(t) for t in args.tests.split(",") if t.strip()]:
        rows.append((f"test {period.label}, defaults", _backtest(
            args, config, f"test-{period.label}", "--from", period.start, "--to", period.end
        )))  # fmt: skip
        if args.sweep:
            rows.extend(_sweep(args, config, period))
    _print_totals(rows)
    _print_pairs(rows)


def _sweep(
    args: argparse.Namespace, config: Path, period: Period
) -> list[tuple[str, dict[str, Any]]]:
    """Rank the grid on the training years before `period`; run the winner on `period`."""
    first = max(date.fromisoformat(args.start).year, period.first - args.train_years)
    if period.last > period.first:
        first = date.fromisoformat(args.start).year
    train = Period(first, period.first - 1)
    out = args.out / f"sweep-{period.label}"
    _run(["sweep", "-c", str(config), "--grid", str(args.grid), "--data", str(args.data),
          "--from", train.start, "--to", period.end, "--train-until", period.start,
          "--workers", str(args.workers), "--out", str(out), "--metric", "net_apr_notional",
          "--resume"])  # fmt: skip
    walk = json.loads((out / "walk_forward.json").read_text())
    chosen = walk["chosen_on_train"]
    test = json.loads((out / "test" / "summary.json").read_text())
    test["resize_fees"] = _resize_fees(out / "test" / "ledger.db")
    test["held"] = _held_notional(out / "test" / "ledger.db")
    return [
        (f"train {train.label} winner (in-sample): {chosen['label']}", chosen),
        (f"test {period.label}, that winner (out-of-sample)", test),
    ]


def _backtest(args: argparse.Namespace, config: Path, name: str, *period: str) -> dict[str, Any]:
    out = args.out / name
    if not (out / "summary.json").exists():
        _run(["backtest", "-c", str(config), "--data", str(args.data), "--out", str(out),
              "--no-charts", *period])  # fmt: skip
    summary: dict[str, Any] = json.loads((out / "summary.json").read_text())
    summary["resize_fees"] = _resize_fees(out / "ledger.db")
    summary["held"] = _held_notional(out / "ledger.db")
    return summary


def _resize_fees(ledger: Path) -> Decimal | None:
    """Return the fees the run's constant-notional resizes paid (the passive's are free)."""
    if not ledger.exists():
        return None
    with sqlite3.connect(ledger) as db:
        rows = db.execute(
            "SELECT f.fee_usdt FROM fills f JOIN orders o ON o.id = f.order_id"
            " WHERE o.purpose = 'resize'"
        ).fetchall()
    return sum((Decimal(r[0] or 0) for r in rows), Decimal(0))


def _held_notional(ledger: Path) -> tuple[Decimal, Decimal] | None:
    """Return the bot's short notional really held: the most at any settlement (Σ over
    symbols of |size| x mark) and the notional-years (each settlement's held notional x the
    hours to that symbol's next settlement, at most 8)."""
    if not ledger.exists():
        return None
    with sqlite3.connect(ledger) as db:
        rows = db.execute(
            "SELECT symbol, funding_time, position_size, mark_price FROM funding_payments"
            " WHERE position_size IS NOT NULL AND mark_price IS NOT NULL"
            " ORDER BY symbol, funding_time"
        ).fetchall()
    by_time: dict[str, Decimal] = {}
    years = Decimal(0)
    for i, (symbol, at, size, mark) in enumerate(rows):
        held = abs(Decimal(size) * Decimal(mark))
        by_time[at] = by_time.get(at, Decimal(0)) + held
        hours = Decimal(8)
        if i + 1 < len(rows) and rows[i + 1][0] == symbol:
            step = datetime.fromisoformat(rows[i + 1][1]) - datetime.fromisoformat(at)
            hours = min(hours, Decimal(step.total_seconds()) / 3600)
        years += held * hours / Decimal(24 * 365.25)
    return max(by_time.values(), default=Decimal(0)), years


def _run(command: list[str]) -> None:
    print("$ carrybot " + " ".join(command), file=sys.stderr, flush=True)
    subprocess.run(
        [*CARRYBOT, *command], check=True, cwd=ROOT, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _years(s: dict[str, Any]) -> Decimal:
    return Decimal(s["days"]) / Decimal("365.25") if "days" in s else Decimal(0)


def _pct(value: str | Decimal | None) -> str:
    return "-" if value is None else f"{float(value) * 100:.2f}%"


def _apr(net: Decimal, years: Decimal) -> str:
    return _pct(net / NOTIONAL / years) if years > 0 else "-"


def _drawdown(figures: dict[str, Any]) -> str:
    dd, notional = Decimal(figures["max_drawdown"]), Decimal(figures["notional"])
    share = f" ({_pct(dd / notional)})" if notional > 0 else ""
    return f"{dd:.2f}{share}"


def _passive_on_time(s: dict[str, Any]) -> str:
    """The passive's net over the notional-years it really held (each pair from its data's
    start): its `net_apr_notional` divides by the peak notional over the whole period."""
    legs = s.get("passive_by_pair", {}).values()
    held = sum(
        (
            NOTIONAL
            * Decimal(
                (
                    datetime.fromisoformat(leg["left_at"])
                    - datetime.fromisoformat(leg["entered_at"])
                ).total_seconds()
            )
            / Decimal(86400 * 365.25)
            for leg in legs
        ),
        Decimal(0),
    )
    net = sum((Decimal(leg["net_pnl"]) for leg in legs), Decimal(0))
    return _pct(net / held) if held > 0 else "-"


def _print_totals(rows: list[tuple[str, dict[str, Any]]]) -> None:
    print(
        "| run | bot net APR on notional | passive (constant notional, resized for free) | "
        "passive paying its resizes | bot / passive on the notional-years each held | bot "
        "short held: peak (USDT) | bot max DD, USDT (of peak notional) | passive max DD | bot "
        "hedges | hedges / pair / year (busiest pair) | bot fees (of which resizes) | passive "
        "fees (paying its resizes) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for label, s in rows:
        bot, passive = s["bot"], s["passive"]
        years = _years(s)
        per_pair = [v["hedges"] for v in s.get("by_pair", {}).values()] or [0]
        rate = "-"
        if years > 0:
            mean = Decimal(bot["hedges"]) / len(s.get("pairs") or PAIRS) / years
            rate = f"{mean:.1f} ({Decimal(max(per_pair)) / years:.1f})"
        paying = s.get("passive_paying_resizes") or {}
        held = s.get("held")
        peak, on_held = "-", "-"
        if held is not None:
            peak = f"{held[0]:.0f}"
            on_held = _pct(Decimal(bot["net_pnl"]) / held[1]) if held[1] > 0 else "-"
        paid = f" ({float(paying['fees']):.2f}, {paying['resizes']} resizes)" if paying else ""
        print(f"| {label} | {_pct(bot['net_apr_notional'])} | "
              f"{_pct(passive['net_apr_notional'])} | {_pct(paying.get('net_apr_notional'))} | "
              f"{on_held} / {_passive_on_time(s)} | {peak} | {_drawdown(bot)} | "
              f"{_drawdown(passive)} | {bot['hedges']} | {rate} | "
              f"{float(bot['fees']):.2f}{_of_which(s.get('resize_fees'))} | "
              f"{float(passive['fees']):.2f}{paid} |")  # fmt: skip


def _of_which(value: Decimal | None) -> str:
    return "" if value is None else f" ({float(value):.2f})"


def _print_pairs(rows: list[tuple[str, dict[str, Any]]]) -> None:
    print()
    print(
        "Per pair: net P&L in USDT, bot / passive, and as APR on one hedge's notional "
        f"({NOTIONAL} USDT) over the whole period; bot hedges in brackets."
    )
    print()
    print("| run | " + " | ".join(p.split("/")[0] for p in PAIRS) + " |")
    print("|---|" + "---|" * len(PAIRS))
    for label, s in rows:
        if "by_pair" not in s:
            continue
        years = _years(s)
        cells = []
        for pair in PAIRS:
            bot = s["by_pair"].get(pair, {})
            passive = s.get("passive_by_pair", {}).get(pair)
            mine = Decimal(bot.get("net_pnl", "0"))
            theirs = Decimal(passive["net_pnl"]) if passive else None
            held = "-" if theirs is None else f"{theirs:.0f} ({_apr(theirs, years)})"
            cells.append(f"{mine:.0f} ({_apr(mine, years)}) [{bot.get('hedges', 0)}] / {held}")
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
