"""Write a backtest's files: summary.json, hedges.csv, equity.csv (charts: `plots`)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from bot.backtest.figures import HOURS, fixed, iso, money, ratio
from bot.backtest.report import BacktestReport, DayLine, HedgeLine

SUMMARY = "summary.json"
HEDGES = "hedges.csv"
EQUITY = "equity.csv"

HEDGE_COLUMNS = (
    "id",
    "uid",
    "pair",
    "state",
    "opened_at",
    "closed_at",
    "holding_hours",
    "perp_quantity",
    "notional",
    "entry_spot_price",
    "entry_perp_price",
    "exit_spot_price",
    "exit_perp_price",
    "funding",
    "fees",
    "basis_pnl",
    "net_pnl",
    "apr",
    "open_reason",
    "close_reason",
)
EQUITY_COLUMNS = ("date", "equity", "funding", "fees", "open_hedges", "notional")


def write_outputs(report: BacktestReport, out: Path) -> list[Path]:
    """Write the summary and the tables into `out`; return the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    return [
        write_json(out / SUMMARY, report.summary_json()),
        _write_csv(out / HEDGES, HEDGE_COLUMNS, [_hedge_row(line) for line in report.hedges]),
        _write_csv(out / EQUITY, EQUITY_COLUMNS, [_day_row(d) for d in report.days]),
    ]


def write_json(path: Path, data: Any) -> Path:
    """Write `data` as indented JSON with a final newline (byte-stable for equal data)."""
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def _write_csv(path: Path, columns: tuple[str, ...], rows: list[list[Any]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)
    return path


def _hedge_row(line: HedgeLine) -> list[Any]:
    h, p = line.hedge, line.pnl
    return [
        h.id,
        h.uid,
        h.pair,
        h.state.value,
        iso(h.opened_at) or "",
        iso(h.closed_at) or "",
        fixed(p.holding_hours, HOURS),
        f"{h.perp_quantity.normalize():f}",
        money(h.target_notional),
        _price(h.entry_spot_price),
        _price(h.entry_perp_price),
        _price(h.exit_spot_price),
        _price(h.exit_perp_price),
        money(p.funding),
        money(p.fees),
        money(p.basis_pnl),
        money(p.net),
        ratio(p.apr) or "",
        h.open_reason or "",
        h.close_reason or "",
    ]


def _day_row(day: DayLine) -> list[Any]:
    return [
        day.day,
        money(day.equity),
        money(day.funding),
        money(day.fees),
        day.open_hedges,
        money(day.notional),
    ]


def _price(value: Any) -> str:
    return money(value) or ""
