"""A BTC backtest over 2021 on the real history, with default parameters.

Funding and fees are recomputed here from the raw CSV files and the ledger's fills, not from
the rows the engine summed: funding = Σ over settlements of rate x mark x short held then.
"""

from __future__ import annotations

import asyncio
import csv
import gzip
import json
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from pathlib import Path

import pytest

from bot.backtest.report import BacktestReport
from bot.domain import Fill, Side
from bot.persistence.db import create_engine, session_factory
from bot.persistence.repositories import CycleReads, Ledger
from tests.integration.backtest_engine.conftest import config, run

pytestmark = pytest.mark.shared_data

D = Decimal
START = datetime(2021, 1, 1, tzinfo=UTC)
END = datetime(2022, 1, 1, tzinfo=UTC)


Result = tuple[BacktestReport, list[Fill], Path]


@cache
def _backtest(root: Path, out: Path) -> Result:
    """Run the backtest once per test session (the tests below share it)."""

    async def go() -> Result:
        cfg = config({"universe": {"symbols": ["BTC/USDT"]}})
        report = await run(cfg, root, out, START, END)
        engine = create_engine(f"sqlite+aiosqlite:///{out / 'ledger.db'}")
        try:
            fills = await Ledger(session_factory(engine), CycleReads()).fills.all()
        finally:
            await engine.dispose()
        return report, fills, out

    return asyncio.run(go())


@pytest.fixture
def btc_2021(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Result:
    return _backtest(shared_data, tmp_path_factory.getbasetemp() / "btc-2021")


def _funding_rows(root: Path) -> list[tuple[datetime, Decimal]]:
    with (root / "binance" / "funding" / "BTCUSDT.csv").open() as f:
        return [
            (
                datetime.fromisoformat(r["funding_time_utc"].replace("Z", "+00:00")),
                D(r["funding_rate"]),
            )
            for r in csv.DictReader(f)
        ]


def _mark_opens(root: Path) -> dict[datetime, Decimal]:
    text = gzip.decompress((root / "binance" / "mark" / "BTCUSDT-1h.csv.gz").read_bytes()).decode()
    return {
        datetime.fromisoformat(r["date"].replace("Z", "+00:00")): D(r["open"])
        for r in csv.DictReader(text.splitlines())
    }


def _short_at(fills: list[Fill], when: datetime) -> Decimal:
    """Return the perpetual short held at `when`, from the fills made before it."""
    held = D(0)
    for f in fills:
        if f.symbol == "BTC/USDT:USDT" and f.timestamp < when:
            held += f.quantity if f.side is Side.SELL else -f.quantity
    return held


def test_btc_2021_funding_equals_rate_times_mark_times_short_held(
    btc_2021: Result, shared_data: Path
) -> None:
    report, fills, _ = btc_2021
    marks = _mark_opens(shared_data)

    expected = sum(
        (
            rate * marks[t] * _short_at(fills, t)
            for t, rate in _funding_rows(shared_data)
            if START <= t <= END
        ),
        D(0),
    )

    # The default strategy holds through 2021, resizing to constant notional as BTC moves:
    # the short changes size many times, and every settlement is paid on the short held then.
    assert report.bot.hedges >= 1
    assert len({f.timestamp for f in fills if f.symbol.endswith(":USDT")}) >= 6
    assert expected > 100
    assert report.bot.funding == expected


def test_btc_2021_fees_equal_fills_times_fee_rates(
    btc_2021: Result,
) -> None:
    report, fills, _ = btc_2021
    fees = report.run.spec.config.fees

    expected = sum(
        (
            f.price
            * f.quantity
            * (fees.futures_taker if f.symbol.endswith(":USDT") else fees.spot_taker)
            for f in fills
        ),
        D(0),
    )

    assert fills
    assert abs(report.bot.fees - expected) < D("1e-8")


def test_btc_2021_net_is_funding_plus_basis_minus_fees_to_the_cent(
    btc_2021: Result,
) -> None:
    report, _, out = btc_2021
    summary = json.loads((out / "summary.json").read_text())["bot"]

    parts = D(summary["funding"]) + D(summary["basis_pnl"]) - D(summary["fees"])

    assert report.bot.net_pnl == report.bot.funding + report.bot.basis_pnl - report.bot.fees
    assert abs(D(summary["net_pnl"]) - parts) < D("0.01")
    assert summary["hedges"] == report.bot.hedges
