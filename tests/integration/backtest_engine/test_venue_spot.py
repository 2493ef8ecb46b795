"""A backtest whose spot leg is Bitstamp's series (`[venues] spot = "bitstamp"`), on data the
test writes: Bitstamp BTC/USD klines in USD, converted at the USDT/USD klines of each hour."""

from __future__ import annotations

import gzip
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from bot.backtest.engine import load_for
from bot.errors import UserError
from bot.persistence.db import create_engine, session_factory
from bot.persistence.repositories import CycleReads, Ledger
from tests.integration.backtest_engine.conftest import config, run
from tests.unit.backtest_engine.synthetic import T0, VOLUME, iso, write_flat_history

D = Decimal
USD_PER_USDT = D("0.999")
CROSS = {
    "venues": {"spot": "bitstamp"},
    "universe": {"symbols": ["BTC/USD"]},
    "strategy": {"name": "funding_carry", "entry_apr": D("0.02"), "exit_apr": D("0.01"),
                 "max_breakeven_hours": D(5000)},
}  # fmt: skip


def _klines(
    path: Path, start: datetime, hours: int, price: Decimal, skip: int | None = None
) -> None:
    rows = ["date,open,high,low,close,volume"] + [
        f"{iso(start + timedelta(hours=h))},{price},{price},{price},{price},{VOLUME}"
        for h in range(hours)
        if h != skip
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(("\n".join(rows) + "\n").encode(), mtime=0))


def _data(root: Path, *, rate_gap: int | None = None) -> Path:
    # Binance's spot is far off (25 000): a run that read it would show a 25 % basis.
    # Funding of 0.1 % a settlement is worth Bitstamp's 0.4 % taker fee.
    write_flat_history(root, rate=D("0.001"))
    start, hours = T0 - timedelta(days=10), 45 * 24
    _klines(root / "binance" / "spot" / "BTCUSDT-1h.csv.gz", start, hours, D("25000"))
    spot = root / "bitstamp" / "spot"
    _klines(spot / "BTCUSD-1h.csv.gz", start, hours, D("19980"))  # 20 000 USDT at 0.999
    _klines(spot / "USDTUSD-1h.csv.gz", start, hours, USD_PER_USDT, skip=rate_gap)
    return root


def test_the_spot_bars_are_bitstamps_in_usdt_terms_and_an_hour_without_a_rate_is_dropped(
    tmp_path: Path,
) -> None:
    data = _data(tmp_path / "data", rate_gap=5)
    history = load_for(config(CROSS), data)
    (btc,) = history.symbols.values()
    assert btc.spot_symbol == "BTC/USDT" and btc.perp_symbol == "BTC/USDT:USDT"
    assert set(btc.spot.opens) == {D("20000")}
    assert len(btc.spot) == len(btc.perp.times) + btc.placeholder_bars - 1


def test_missing_bitstamp_klines_name_the_file_and_the_fetch(tmp_path: Path) -> None:
    data = write_flat_history(tmp_path / "data")
    with pytest.raises(
        UserError, match=r"bitstamp/spot: no bitstamp spot klines.*--venue bitstamp"
    ):
        load_for(config(CROSS), data)
    _klines(data / "bitstamp" / "spot" / "BTCUSD-1h.csv.gz", T0, 24, D("19980"))
    with pytest.raises(UserError, match=r"USDTUSD-1h.csv.gz: file not found"):
        load_for(config(CROSS), data)


async def test_a_cross_venue_backtest_trades_the_bitstamp_spot_series(tmp_path: Path) -> None:
    data = _data(tmp_path / "data")

    report = await run(config(CROSS), data, tmp_path / "out", T0, T0 + timedelta(days=5))

    (line,) = report.hedges
    assert line.hedge.pair == "BTC/USDT"
    entry = line.hedge.entry_spot_price
    assert entry is not None and abs(entry - D("20000")) < D("10")  # not Binance's 25 000
    assert abs(line.pnl.basis_pnl) < D("5")  # both legs near 20 000 USDT
    assert report.bot.funding > 0
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'out' / 'ledger.db'}")
    try:
        fills = await Ledger(session_factory(engine), CycleReads()).fills.all()
    finally:
        await engine.dispose()
    buy = next(f for f in fills if f.symbol == "BTC/USDT")
    assert buy.fee_asset == "USDT"  # Bitstamp charges a buy's fee in the quote currency
    assert buy.fee == buy.price * buy.quantity * D("0.004")  # its taker fee, by default
