"""Backtests of the COIN-M carry on synthetic COIN-M quarterly history with known convergence.

Spot and the USDⓈ-M perpetual are flat at 20000, funding too low to hold (0.001 % / 8 h); no
USDⓈ-M quarterly. The COIN-M March 2024 quarterly (`BTCUSD_240329`, delivery 2024-03-29
08:00 UTC) starts 2 % over spot and converges linearly to it; its recorded delivery price is
20000.5. The files are where `carrybot data fetch --kinds coinm_current_quarter,
coinm_delivery` writes them. A hedge's P&L is checked in the coin (contracts × 100 USD ×
(1/exit − 1/entry) less the short's fees, to the satoshi) and in USDT (basis captured less
fees, and the equity the account gained, to the cent).
"""

from __future__ import annotations

import gzip
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from bot.backtest.dated_history import load_dated
from bot.backtest.engine import REACTION
from bot.backtest.history import load_history
from bot.backtest.replay import ReplaySource
from bot.clock import SimulatedClock
from bot.domain import Fill, Hedge, MarketKind, OrderRequest, OrderType, Side
from bot.errors import UserError
from bot.exchange.paper import PaperExchange
from bot.persistence.db import create_engine, session_factory
from bot.persistence.repositories import CycleReads, Ledger
from bot.pnl import hedge_pnl
from tests.integration.backtest_engine.conftest import config, run
from tests.unit.backtest_engine.synthetic import PRICE, T0, iso, write_flat_history

D = Decimal
START = T0 - timedelta(days=10)
DELIVERY = datetime.fromisoformat("2024-03-29T08:00:00+00:00")
COINM = "BTC/USD:BTC-240329"
SPOT = "BTC/USDT"
PREMIUM = D("0.02")
SAT = D("0.00000001")
CENT = D("0.01")
COINM_ONLY = {
    "universe": {"symbols": [SPOT]},
    "strategy": {"instruments": ["perpetual", "coinm"]},
}


def future_open(when: datetime) -> Decimal:
    """The COIN-M quarterly's open: 2 % over spot at START, converging linearly to spot."""
    left = D((DELIVERY - when).total_seconds()) / D((DELIVERY - START).total_seconds())
    return (PRICE * (1 + PREMIUM * left)).quantize(D("0.1"))


def write_coinm_history(root: Path) -> Path:
    write_flat_history(root, start=START, days=45, rate=D("0.00001"))
    lines = ["date,open,high,low,close,volume"]
    t = START
    while t < DELIVERY:
        p = future_open(t)
        lines.append(f"{iso(t)},{p},{p},{p},{p},100")
        t += timedelta(hours=1)
    path = root / "binance" / "coinm_current_quarter" / "BTCUSDT-1h.csv.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode(), mtime=0))
    delivery = root / "binance" / "coinm_delivery" / "BTCUSDT.csv"
    delivery.parent.mkdir(parents=True, exist_ok=True)
    ms = int(DELIVERY.timestamp()) * 1000
    delivery.write_text(
        f"delivery_time_utc,delivery_time_ms,delivery_price\n{iso(DELIVERY)},{ms},20000.5\n"
    )
    return root


async def _fills(out: Path) -> list[Fill]:
    engine = create_engine(f"sqlite+aiosqlite:///{out / 'ledger.db'}")
    try:
        return list(await Ledger(session_factory(engine), CycleReads()).fills.all())
    finally:
        await engine.dispose()


def _coin(amount: Decimal) -> Decimal:
    return amount.quantize(SAT)


def _short_coin_pnl(hedge: Hedge, fills: list[Fill], exit_price: Decimal) -> Decimal:
    """Contracts × 100 USD × (1/exit − 1/entry) of each short fill, less every short fee."""
    shorts = [f for f in fills if f.symbol == COINM]
    gross = sum(
        (
            _coin(f.quantity * 100 * (1 / exit_price - 1 / f.price))
            for f in shorts
            if f.side is Side.SELL
        ),
        D(0),
    )
    assert all(f.fee_asset == "BTC" for f in shorts)  # the short's fees are in the coin
    return gross - sum((f.fee for f in shorts), D(0))


def test_coinm_quarterly_files_load_as_their_own_contracts(tmp_path: Path) -> None:
    data = write_coinm_history(tmp_path / "data")

    (contract,) = load_dated(data / "binance", "BTCUSDT", coinm=True)

    assert contract.expiry == DELIVERY and contract.delivery_price == D("20000.5")
    assert contract.bars.opens[0] == D("20400.0")
    assert load_dated(data / "binance", "BTCUSDT") == ()  # no USDⓈ-M quarterly files


async def test_coinm_backtest_takes_profit_and_its_pnl_is_basis_less_fees(tmp_path: Path) -> None:
    data = write_coinm_history(tmp_path / "data")

    report = await run(config(COINM_ONLY), data, tmp_path / "o", T0, T0 + timedelta(days=27))

    (line,) = report.hedges
    hedge = line.hedge
    assert hedge.perp_symbol == COINM and hedge.opened_at == T0 + REACTION
    assert (hedge.close_reason or "").startswith("take_profit:")
    assert hedge.closed_at is not None
    left = (DELIVERY - hedge.closed_at) / (DELIVERY - T0)
    assert 0.15 < left < 0.25  # linear convergence: 80 % captured ~80 % of the way
    fills = await _fills(tmp_path / "o")
    assert {f.symbol for f in fills} == {SPOT, COINM}  # never the perpetual
    shorted = sum((f.quantity for f in fills if f.symbol == COINM and f.side is Side.SELL), D(0))
    assert shorted == 10  # 1000 USDT of coin, ~1016 USD at the future's bid: whole contracts
    assert hedge.exit_perp_price is not None and hedge.exit_spot_price is not None

    # In the coin, to the satoshi.
    pnl = hedge_pnl(hedge, fills, D(0), now=hedge.closed_at)
    coin_pnl = _short_coin_pnl(hedge, fills, hedge.exit_perp_price)
    assert pnl.coin_pnl == coin_pnl == D(hedge.metrics["coin_pnl"])
    assert coin_pnl > 0
    # In USDT, to the cent: the basis captured (the short's coin P&L before fees sold at
    # the exit spot price, plus the spot leg's own move) less every fee.
    spot_fills = [f for f in fills if f.symbol == SPOT]
    bought = sum((f.quantity for f in spot_fills if f.side is Side.BUY), D(0))
    sold = sum((f.quantity for f in spot_fills if f.side is Side.SELL), D(0))
    cost = sum((f.quantity * f.price for f in spot_fills if f.side is Side.BUY), D(0))
    proceeds = sum((f.quantity * f.price for f in spot_fills if f.side is Side.SELL), D(0))
    usdt_fees = sum((f.fee for f in spot_fills if f.fee_asset == "USDT"), D(0))
    coin_fees = sum((f.fee for f in spot_fills if f.fee_asset == "BTC"), D(0))
    dust = bought - coin_fees + coin_pnl - sold  # below one spot step, kept (not sold)
    assert D(0) <= dust < D("0.00001")
    gained = proceeds - usdt_fees - cost + dust * hedge.exit_spot_price
    assert round(pnl.net, 2) == round(gained, 2)  # the USDT the account gained
    # = the basis captured (the short's coin P&L before its fees, at the exit spot price,
    # plus the spot leg's own move) less every fee in USDT.
    short_fees = sum((f.fee for f in fills if f.symbol == COINM), D(0))
    spot_move = (bought - coin_fees) * hedge.exit_spot_price - cost
    basis = (coin_pnl + short_fees) * hedge.exit_spot_price + spot_move
    fees = short_fees * hedge.exit_spot_price + usdt_fees
    assert round(pnl.net, 2) == round(basis - fees, 2)
    assert round(report.bot.net_pnl, 2) == round(pnl.net, 2)
    assert report.bot.net_pnl == report.bot.funding + report.bot.basis_pnl - report.bot.fees
    assert report.bot.funding == 0
    equity = report.run.equity
    assert round(equity[-1].equity - report.run.initial_equity, 2) == round(pnl.net, 2)


async def test_coinm_backtest_held_to_settlement_is_delivered_at_the_recorded_price(
    tmp_path: Path,
) -> None:
    data = write_coinm_history(tmp_path / "data")
    cfg = config(
        {
            **COINM_ONLY,
            "strategy": {
                **COINM_ONLY["strategy"],
                "dated": {"hold_to_settlement": True, "take_profit_basis": 1},
            },
        }
    )

    report = await run(cfg, data, tmp_path / "o", T0, DELIVERY + timedelta(days=2))

    (line,) = report.hedges
    hedge = line.hedge
    assert hedge.perp_symbol == COINM
    assert (hedge.close_reason or "").startswith("delivered:")
    assert hedge.exit_perp_price == D("20000.5")
    assert hedge.closed_at is not None and hedge.closed_at >= DELIVERY
    fills = await _fills(tmp_path / "o")
    assert [f.side for f in fills if f.symbol == COINM] == [Side.SELL]  # settled, not traded
    pnl = hedge_pnl(hedge, fills, D(0), now=hedge.closed_at)
    assert pnl.coin_pnl == _short_coin_pnl(hedge, fills, D("20000.5"))  # at the delivery price
    assert round(report.bot.net_pnl, 2) == round(pnl.net, 2)
    gained = report.run.equity[-1].equity - report.run.initial_equity
    assert round(gained, 2) == round(pnl.net, 2)


def write_coinm_perpetual(root: Path) -> None:
    """BTCUSD_PERP at 20010 with its funding 0.00005 every 8 h, as `data fetch --kinds
    coinm_perp,coinm_funding` writes them."""
    lines = ["date,open,high,low,close,volume"]
    rates = ["funding_time_utc,funding_time_ms,funding_rate"]
    t = START
    while t < START + timedelta(days=45):
        lines.append(f"{iso(t)},20010.0,20010.0,20010.0,20010.0,100")
        if t.hour % 8 == 0:
            rates.append(f"{iso(t)},{int(t.timestamp()) * 1000},0.00005")
        t += timedelta(hours=1)
    bars = root / "binance" / "coinm_perp" / "BTCUSDT-1h.csv.gz"
    bars.parent.mkdir(parents=True, exist_ok=True)
    bars.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode(), mtime=0))
    funding = root / "binance" / "coinm_funding" / "BTCUSDT.csv"
    funding.parent.mkdir(parents=True, exist_ok=True)
    funding.write_text("\n".join(rates) + "\n")


async def test_a_coinm_perpetual_is_replayed_with_its_funding(tmp_path: Path) -> None:
    data = write_coinm_history(tmp_path / "data")
    write_coinm_perpetual(data)
    clock = SimulatedClock(T0 + timedelta(hours=9))
    source = ReplaySource(load_history(data), clock)

    inst = (await source.load_instruments())["BTC/USD:BTC"]
    assert (inst.kind, inst.is_inverse, inst.contract_size) == (MarketKind.PERPETUAL, True, D(100))
    assert inst.exchange_symbol == "BTCUSD_PERP" and inst.settle == "BTC"
    info = (await source.fetch_funding_snapshot())["BTC/USD:BTC"]
    assert (info.funding_rate, info.mark_price) == (D("0.00005"), D("20010.0"))
    assert info.next_funding_time == T0 + timedelta(hours=16)
    settled = await source.fetch_funding_history("BTC/USD:BTC", T0)
    assert [r.funding_time for r in settled] == [T0, T0 + timedelta(hours=8)]  # never after t
    quote = (await source.fetch_best_quotes(MarketKind.PERPETUAL))["BTC/USD:BTC"]
    assert quote.bid_qty == 500  # 50 000 USD of 100 USD contracts
    assert [p.perp.symbol for p in await source.pairs()] == ["BTC/USDT:USDT"]


def test_a_coinm_perpetual_without_its_funding_file_is_refused(tmp_path: Path) -> None:
    data = write_coinm_history(tmp_path / "data")
    write_coinm_perpetual(data)
    (data / "binance" / "coinm_funding" / "BTCUSDT.csv").unlink()

    with pytest.raises(UserError, match=r"coinm_funding/BTCUSDT\.csv: file not found"):
        load_history(data)


async def test_with_coinm_perpetual_files_the_backtest_trades_the_perpetual_too(
    tmp_path: Path,
) -> None:
    """The COIN-M perpetual is one of the strategy's carries: with its files the quarterly
    is held and closed as before, then the perpetual's funding (0.005 % / 8 h, paid in the
    coin) is the best carry left and is held."""
    without = write_coinm_history(tmp_path / "a")
    with_perp = write_coinm_history(tmp_path / "b")
    write_coinm_perpetual(with_perp)
    end = T0 + timedelta(days=27)

    first = await run(config(COINM_ONLY), without, tmp_path / "oa", T0, end)
    second = await run(config(COINM_ONLY), with_perp, tmp_path / "ob", T0, end)

    assert [h.hedge.perp_symbol for h in first.hedges] == [COINM]
    assert [h.hedge.perp_symbol for h in second.hedges] == [COINM, "BTC/USD:BTC"]
    quarterly, perpetual = (line.hedge for line in second.hedges)
    alone = first.hedges[0].hedge
    assert (quarterly.opened_at, quarterly.closed_at) == (alone.opened_at, alone.closed_at)
    assert quarterly.closed_at is not None and perpetual.opened_at is not None
    assert perpetual.opened_at >= quarterly.closed_at  # one hedge per asset at a time
    assert second.bot.funding > 0  # paid in BTC, valued in USDT at its mark


async def test_a_coinm_perpetual_short_in_the_replay_is_paid_funding_in_the_coin(
    tmp_path: Path,
) -> None:
    data = write_coinm_history(tmp_path / "data")
    write_coinm_perpetual(data)
    clock = SimulatedClock(T0 + timedelta(hours=9))
    source = ReplaySource(load_history(data), clock)
    exchange = await PaperExchange.open(source, clock=clock)
    exchange.simulator.set_instruments(source.all_instruments())
    exchange.simulator.deposit("spot", "BTC", D("0.1"))
    await exchange.transfer("BTC", D("0.1"), from_wallet="spot", to_wallet="coinm")
    short = OrderRequest("BTC/USD:BTC", Side.SELL, OrderType.MARKET, D(10), "cb-cm-perp")
    assert (await exchange.create_order(short)).filled == 10

    clock.advance(timedelta(hours=7, seconds=1))  # past the 16:00 settlement
    (payment,) = await exchange.settle_funding()

    # 10 contracts × 100 USD / 20010 (the bar open at 16:00) × 0.00005, received by a short
    assert (payment.funding_time, payment.asset) == (T0 + timedelta(hours=16), "BTC")
    assert payment.amount == (D(1000) / D("20010.0") * D("0.00005")).quantize(SAT)
