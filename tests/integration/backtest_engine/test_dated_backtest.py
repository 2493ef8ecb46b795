"""Backtests of the dated carry on synthetic quarterly history with a known convergence.

Spot and perpetual are flat at 20000 with funding too low to hold (0.001 % / 8 h). The March
2024 quarterly (delivery 2024-03-29 08:00 UTC) starts 2 % over spot and converges linearly
to it at delivery; its delivery price is 20000.5.
"""

from __future__ import annotations

import gzip
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

from bot.backtest.dated_history import load_dated, quarterly_deliveries
from bot.backtest.engine import REACTION
from bot.domain import Side
from bot.persistence.db import create_engine, session_factory
from bot.persistence.repositories import CycleReads, Ledger
from tests.integration.backtest_engine.conftest import config, run
from tests.unit.backtest_engine.synthetic import PRICE, T0, iso, write_flat_history

D = Decimal
START = T0 - timedelta(days=10)
DELIVERY = datetime.fromisoformat("2024-03-29T08:00:00+00:00")
QUARTER = "BTC/USDT:USDT-240329"
PREMIUM = D("0.02")


def future_open(when: datetime) -> Decimal:
    """The quarterly's open: 2 % over spot at START, converging linearly to spot."""
    left = D((DELIVERY - when).total_seconds()) / D((DELIVERY - START).total_seconds())
    return (PRICE * (1 + PREMIUM * left)).quantize(D("0.1"))


def write_dated_history(root: Path) -> Path:
    write_flat_history(root, start=START, days=45, rate=D("0.00001"))
    lines = ["date,open,high,low,close,volume"]
    t = START
    while t < DELIVERY:
        p = future_open(t)
        lines.append(f"{iso(t)},{p},{p},{p},{p},100")
        t += timedelta(hours=1)
    path = root / "binance" / "current_quarter" / "BTCUSDT-1h.csv.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode(), mtime=0))
    delivery = root / "binance" / "delivery" / "BTCUSDT.csv"
    delivery.parent.mkdir(parents=True, exist_ok=True)
    ms = int(DELIVERY.timestamp()) * 1000
    delivery.write_text(
        f"delivery_time_utc,delivery_time_ms,delivery_price\n{iso(DELIVERY)},{ms},20000.5\n"
    )
    return root


async def _fills(out: Path) -> list:  # type: ignore[type-arg]
    engine = create_engine(f"sqlite+aiosqlite:///{out / 'ledger.db'}")
    try:
        return list(await Ledger(session_factory(engine), CycleReads()).fills.all())
    finally:
        await engine.dispose()


def test_quarterly_bars_become_one_contract_per_delivery(tmp_path: Path) -> None:
    data = write_dated_history(tmp_path / "data")

    (contract,) = load_dated(data / "binance", "BTCUSDT")

    assert contract.expiry == DELIVERY and contract.delivery_price == D("20000.5")
    assert contract.bars.first_ms == int(START.timestamp()) * 1000
    assert contract.bars.opens[0] == D("20400.0")
    assert quarterly_deliveries(START, DELIVERY)[:2] == [DELIVERY, DELIVERY + timedelta(days=91)]


async def test_backtest_opens_the_quarterly_and_takes_profit_as_it_converges(
    tmp_path: Path,
) -> None:
    data = write_dated_history(tmp_path / "data")
    end = T0 + timedelta(days=27)

    report = await run(
        config({"universe": {"symbols": ["BTC/USDT"]}}), data, tmp_path / "o", T0, end
    )

    (line,) = report.hedges
    hedge = line.hedge
    assert hedge.perp_symbol == QUARTER and hedge.opened_at == T0 + REACTION
    assert (hedge.close_reason or "").startswith("take_profit:")
    entry_basis = hedge.entry_perp_price / hedge.entry_spot_price - 1  # type: ignore[operator]
    exit_basis = hedge.exit_perp_price / hedge.exit_spot_price - 1  # type: ignore[operator]
    assert entry_basis - exit_basis >= D("0.8") * entry_basis  # most of the basis captured
    # Linear convergence: 80 % of the basis is gone about 80 % of the way to delivery.
    assert hedge.closed_at is not None
    left = (DELIVERY - hedge.closed_at) / (DELIVERY - T0)
    assert 0.15 < left < 0.25
    fills = await _fills(tmp_path / "o")
    assert {f.symbol for f in fills} == {"BTC/USDT", QUARTER}  # never the perpetual
    short = sum((f.quantity for f in fills if f.symbol == QUARTER and f.side is Side.SELL), D(0))
    assert report.bot.basis_pnl > short * (hedge.entry_perp_price - hedge.exit_perp_price) - 1  # type: ignore[operator]
    assert report.bot.net_pnl == report.bot.funding + report.bot.basis_pnl - report.bot.fees
    assert report.bot.funding == 0


async def test_backtest_held_to_settlement_is_delivered_at_the_recorded_price(
    tmp_path: Path,
) -> None:
    data = write_dated_history(tmp_path / "data")
    cfg = config(
        {
            "universe": {"symbols": ["BTC/USDT"]},
            "strategy": {"dated": {"hold_to_settlement": True, "take_profit_basis": 1}},
        }
    )

    report = await run(cfg, data, tmp_path / "o", T0, DELIVERY + timedelta(days=2))

    (line,) = report.hedges
    hedge = line.hedge
    assert hedge.perp_symbol == QUARTER
    assert (hedge.close_reason or "").startswith("delivered:")
    assert hedge.exit_perp_price == D("20000.5")
    assert hedge.closed_at is not None and hedge.closed_at >= DELIVERY
    fills = await _fills(tmp_path / "o")
    assert [f.side for f in fills if f.symbol == QUARTER] == [Side.SELL]  # settled, not traded


async def test_backtest_rolls_the_short_into_the_next_quarter_and_keeps_the_spot(
    tmp_path: Path,
) -> None:
    """The June quarterly stays 3 % over spot: two days before March's delivery the short
    moves there (the same code path as live: the simulator fills both futures orders)."""
    data = write_dated_history(tmp_path / "data")
    lines = ["date,open,high,low,close,volume"]
    t = START
    while t < DELIVERY:
        p = (PRICE * D("1.03")).quantize(D("0.1"))
        lines.append(f"{iso(t)},{p},{p},{p},{p},100")
        t += timedelta(hours=1)
    path = data / "binance" / "next_quarter" / "BTCUSDT-1h.csv.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode(), mtime=0))
    cfg = config(
        {"universe": {"symbols": ["BTC/USDT"]}, "strategy": {"dated": {"take_profit_basis": 1}}}
    )

    report = await run(cfg, data, tmp_path / "o", T0, DELIVERY - timedelta(hours=30))

    (line,) = report.hedges  # one hedge: rolled, not closed and reopened
    hedge = line.hedge
    assert hedge.perp_symbol == "BTC/USDT:USDT-240628"
    assert hedge.metrics["rolled_from"] == QUARTER
    fills = await _fills(tmp_path / "o")
    assert hedge.close_reason == "backtest end"  # closed on the contract it holds
    # The spot bought once and sold at the end: no round trip at the roll.
    assert [f.side for f in fills if f.symbol == "BTC/USDT"] == [Side.BUY, Side.SELL]
    assert [f.side for f in fills if f.symbol == QUARTER] == [Side.SELL, Side.BUY]
    assert [f.side for f in fills if f.symbol == hedge.perp_symbol] == [Side.SELL, Side.BUY]
    rolled_at = next(f.timestamp for f in fills if f.symbol == hedge.perp_symbol)
    assert DELIVERY - timedelta(hours=73) < rolled_at <= DELIVERY - timedelta(hours=71)
