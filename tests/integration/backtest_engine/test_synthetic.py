"""The engine on synthetic history with known answers: exact funding, determinism, no look-ahead."""

from __future__ import annotations

import math
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from bot.backtest.engine import REACTION
from bot.domain import Side
from bot.persistence.db import create_engine, session_factory
from bot.persistence.repositories import CycleReads, Ledger
from tests.integration.backtest_engine.conftest import ALWAYS_IN, THIRTY_DAYS, config, run
from tests.replay_kit import damaged_copy
from tests.unit.backtest_engine.synthetic import PRICE, RATE, T0, write_flat_history

D = Decimal


async def _perp_sold(out: Path) -> Decimal:
    engine = create_engine(f"sqlite+aiosqlite:///{out / 'ledger.db'}")
    try:
        fills = await Ledger(session_factory(engine), CycleReads()).fills.all()
    finally:
        await engine.dispose()
    return sum(
        (f.quantity for f in fills if f.symbol.endswith(":USDT") and f.side is Side.SELL), D(0)
    )


async def test_backtest_constant_funding_for_30_days_earns_90_settlements_exactly(
    tmp_path: Path,
) -> None:
    data = write_flat_history(tmp_path / "data")

    report = await run(config(ALWAYS_IN), data, tmp_path / "out", *THIRTY_DAYS)

    (line,) = report.hedges
    assert line.hedge.opened_at == T0 + REACTION  # just after the T0 settlement: not paid
    assert line.hedge.closed_at == T0 + timedelta(days=30) + REACTION  # after the last one
    # The short is 1000 USDT at the ask (20000 + 1 bp on the tick) floored to the 0.001 step:
    # 0.049 BTC. Funding is paid on the short's notional at the mark: 0.049 x 20000 = 980.
    short = await _perp_sold(tmp_path / "out")
    assert short == D("0.049")
    assert report.bot.funding == 90 * RATE * PRICE * short == D("8.82")
    assert report.passive_fixed_quantity is not None
    assert report.bot.funding == report.passive_fixed_quantity.funding
    assert report.bot.net_pnl == report.bot.funding + report.bot.basis_pnl - report.bot.fees
    # Flat prices, funding always positive: each curve's only fall is its entry (fees and the
    # spread it is marked at), counted from the initial equity for the passive as for the bot.
    passive_entry_fees = D(1000) * (D("0.001") + D("0.0005"))
    assert report.passive.max_drawdown > passive_entry_fees
    assert report.bot.max_drawdown > 0


async def test_backtest_same_inputs_give_byte_identical_summary(tmp_path: Path) -> None:
    data = write_flat_history(tmp_path / "data", symbols=("BTCUSDT", "ETHUSDT"))
    cfg = config({**ALWAYS_IN, "universe": {"symbols": ["BTC/USDT", "ETH/USDT"]}})
    start, end = T0, T0 + timedelta(days=5)

    await run(cfg, data, tmp_path / "a", start, end)
    await run(cfg, data, tmp_path / "b", start, end)

    first = (tmp_path / "a" / "summary.json").read_bytes()
    assert first == (tmp_path / "b" / "summary.json").read_bytes()
    assert (tmp_path / "a" / "hedges.csv").read_bytes() == (
        tmp_path / "b" / "hedges.csv"
    ).read_bytes()


def _swinging_rate(k: int) -> Decimal:
    """Funding that swings between carry-worthy and negative every few days."""
    return D(str(round(0.001 * math.sin(k / 4.0), 6)))


async def test_backtest_damaged_data_after_cutoff_leaves_earlier_decisions_unchanged(
    tmp_path: Path,
) -> None:
    clean = write_flat_history(tmp_path / "clean", rate_at=_swinging_rate, days=60)
    cutoff = T0 + timedelta(days=25)
    damaged = damaged_copy(clean, tmp_path / "damaged", cutoff)
    cfg = config(
        {
            **ALWAYS_IN,
            "strategy": {
                "name": "funding_carry",
                "entry_apr": D("0.05"),
                "exit_apr": D("0.0"),
                "max_breakeven_hours": D(1000),
                "min_hold_hours": D(8),
                "cooldown_hours": D(8),
            },
        }
    )
    end = T0 + timedelta(days=40)

    before = await run(cfg, clean, tmp_path / "out-clean", T0, end)
    after = await run(cfg, damaged, tmp_path / "out-damaged", T0, end)

    def decisions(report: object) -> list[tuple[str, object, object]]:
        lines = report.hedges  # type: ignore[attr-defined]
        return [
            (
                line.hedge.pair,
                line.hedge.opened_at,
                line.hedge.closed_at
                if line.hedge.closed_at and line.hedge.closed_at < cutoff
                else None,
            )
            for line in lines
            if line.hedge.opened_at is not None and line.hedge.opened_at < cutoff
        ]

    assert len(decisions(before)) >= 2  # the swings open and close hedges before the cutoff
    assert any(line.hedge.closed_at and line.hedge.closed_at < cutoff for line in before.hedges)
    assert decisions(before) == decisions(after)
    everything = [(x.hedge.opened_at, x.hedge.closed_at) for x in before.hedges]
    assert everything != [(x.hedge.opened_at, x.hedge.closed_at) for x in after.hedges]


async def test_backtest_explicit_pair_listed_after_the_start_is_traded_once_listed(
    tmp_path: Path,
) -> None:
    data = write_flat_history(tmp_path / "data", symbols=("BTCUSDT",))
    write_flat_history(data, symbols=("ETHUSDT",), start=T0 + timedelta(days=2), days=20)
    cfg = config({**ALWAYS_IN, "universe": {"symbols": ["BTC/USDT", "ETH/USDT"]}})

    report = await run(cfg, data, tmp_path / "out", T0, T0 + timedelta(days=5))

    assert report.run.start == T0  # ETH's later listing does not refuse the start
    opened = {line.hedge.pair: line.hedge.opened_at for line in report.hedges}
    assert opened["BTC/USDT"] == T0 + REACTION
    assert opened["ETH/USDT"] is not None and opened["ETH/USDT"] > T0 + timedelta(days=2)
