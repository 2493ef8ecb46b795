"""Helpers: synthetic data directories and one-call backtests into a temporary directory."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from bot.backtest.engine import BacktestSpec
from bot.backtest.report import BacktestReport
from bot.backtest.session import backtest, default_database
from bot.config import Config, config_from_dict
from tests.unit.backtest_engine.synthetic import T0

D = Decimal
THIRTY_DAYS = (T0, T0 + timedelta(days=30))

# The hedge must open at the first event and stay: a low entry bar, costs repaid slowly.
ALWAYS_IN: dict[str, Any] = {
    "universe": {"symbols": ["BTC/USDT"]},
    "strategy": {
        "name": "funding_carry",
        "entry_apr": D("0.02"),
        "exit_apr": D("0.01"),
        "max_breakeven_hours": D(1000),
    },
}


def config(overrides: dict[str, Any]) -> Config:
    return config_from_dict(overrides, source="test")


async def run(
    cfg: Config,
    data: Path,
    out: Path,
    start: datetime | None,
    end: datetime | None,
    **spec: Any,
) -> BacktestReport:
    """Backtest `cfg` on `data` into `out` (fresh SQLite ledger there), without charts."""
    return await backtest(
        BacktestSpec(cfg, data, default_database(out), start, end, **spec), out, charts=False
    )
