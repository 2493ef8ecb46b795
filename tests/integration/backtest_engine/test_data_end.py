"""A pair whose data ends before the run's end: closed while both markets have prices, never
half closed, and not reopened; the passive baseline at constant notional."""

from __future__ import annotations

import gzip
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from bot.backtest.engine import DATA_END_REASON, END_REASON, REACTION
from bot.domain import HedgeState
from tests.integration.backtest_engine.conftest import ALWAYS_IN, config, run
from tests.unit.backtest_engine.synthetic import PRICE, RATE, T0, write_flat_history

D = Decimal
BOTH = {**ALWAYS_IN, "universe": {"symbols": ["BTC/USDT", "ETH/USDT"]}}


def _cut(path: Path, keep_hours: int) -> None:
    """Keep the header and the first `keep_hours` bars of a gzipped kline file."""
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    path.write_bytes(gzip.compress(("\n".join(lines[: keep_hours + 1]) + "\n").encode()))


async def test_pair_whose_perp_data_ends_early_is_closed_on_its_last_bar_with_both_legs(
    tmp_path: Path,
) -> None:
    data = write_flat_history(tmp_path / "data", symbols=("BTCUSDT", "ETHUSDT"))
    # ETH's perpetual is "delisted" 20 days after T0: its file is shorter than its spot's.
    _cut(data / "binance" / "perp" / "ETHUSDT-1h.csv.gz", (10 + 20) * 24)
    last_bar = T0 + timedelta(days=20) - timedelta(hours=1)

    report = await run(config(BOTH), data, tmp_path / "out", T0, T0 + timedelta(days=30))

    eth = [line.hedge for line in report.hedges if line.hedge.pair == "ETH/USDT"]
    btc = [line.hedge for line in report.hedges if line.hedge.pair == "BTC/USDT"]
    assert len(eth) == 1  # closed once at its data end, never reopened after it
    (hedge,) = eth
    assert hedge.state is HedgeState.CLOSED
    assert hedge.close_reason == DATA_END_REASON
    assert hedge.closed_at == last_bar + REACTION
    assert hedge.perp_quantity == 0  # the short is bought back, not left open
    assert hedge.spot_quantity < D("0.0001")  # only the spot fee's dust, below one step
    assert hedge.exit_spot_price is not None and hedge.exit_perp_price is not None
    assert [h.close_reason for h in btc] == [END_REASON]
    # The ledger pays ETH's short every settlement up to its last bar, none after.
    eth_funding = next(line.pnl.funding for line in report.hedges if line.hedge.pair == "ETH/USDT")
    settlements = 20 * 3 - 1  # T0's own settlement is not collected (opened just after it)
    assert eth_funding == settlements * RATE * PRICE * D("0.049")


async def test_passive_baseline_earns_funding_on_constant_notional_and_labels_the_old_one(
    tmp_path: Path,
) -> None:
    data = write_flat_history(tmp_path / "data")

    report = await run(config(ALWAYS_IN), data, tmp_path / "out", T0, T0 + timedelta(days=30))

    notional = D(1000)
    assert report.passive.funding == 90 * RATE * notional == D("9.0")
    assert report.passive.fees == notional * 2 * (D("0.001") + D("0.0005"))
    assert report.passive.notional == notional
    fixed = report.passive_fixed_quantity
    assert fixed is not None
    assert fixed.funding == 90 * RATE * PRICE * D("0.049")  # 0.049 BTC bought at entry
    summary = report.summary_json()
    assert "constant notional" in summary["passive_method"]
    assert "fixed quantity" in summary["passive_fixed_quantity_method"]
    assert summary["passive"]["funding"] == "9.00000000"


def _drop_bar(path: Path, hour: int) -> None:
    """Remove the bar `hour` hours after the file's first one (a gap in the data)."""
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    del lines[hour + 1]
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))


async def test_close_is_not_sent_when_one_leg_has_no_price_so_no_hedge_is_half_closed(
    tmp_path: Path,
) -> None:
    data = write_flat_history(tmp_path / "data", symbols=("BTCUSDT", "ETHUSDT"))
    _cut(data / "binance" / "perp" / "ETHUSDT-1h.csv.gz", (10 + 20) * 24)
    _drop_bar(data / "binance" / "spot" / "ETHUSDT-1h.csv.gz", (10 + 20) * 24 - 1)

    report = await run(config(BOTH), data, tmp_path / "out", T0, T0 + timedelta(days=30))

    (eth,) = [line.hedge for line in report.hedges if line.hedge.pair == "ETH/USDT"]
    # No spot price on the pair's last bar and no perp price afterwards: nothing is sent, so
    # both legs are still held (an honest open hedge), never the spot sold alone.
    assert eth.state is HedgeState.OPEN
    assert eth.spot_quantity > 0 and eth.perp_quantity == D("0.049")


async def test_a_pair_listed_after_the_start_is_not_refused_and_trades_once_listed(
    tmp_path: Path,
) -> None:
    data = write_flat_history(tmp_path / "data", symbols=("BTCUSDT",))
    write_flat_history(data, symbols=("ETHUSDT",), start=T0 + timedelta(days=5), days=30)

    report = await run(config(BOTH), data, tmp_path / "out", T0, T0 + timedelta(days=20))

    (eth,) = [line.hedge for line in report.hedges if line.hedge.pair == "ETH/USDT"]
    assert eth.opened_at is not None and eth.opened_at > T0 + timedelta(days=5)
