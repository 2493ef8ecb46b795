"""The day's P&L: complete snapshots plus fees and realised losses booked since the last one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from bot.daily_loss import DailyLoss, booked_pnl
from bot.domain import Fill, Side

D = Decimal
T0 = datetime(2026, 12, 6, 1, 0, tzinfo=UTC)


def fill(
    n: int, symbol: str, side: Side, price: str, qty: str, fee: str, asset: str, at: datetime
) -> Fill:
    return Fill(str(n), symbol, str(n), side, D(price), D(qty), D(fee), asset, at)


def test_spot_round_trip_books_its_spread_and_both_fees() -> None:
    buy = fill(1, "BTC/USDT", Side.BUY, "50000", "0.02", "0.00002", "BTC", T0)
    sell = fill(2, "BTC/USDT", Side.SELL, "49990", "0.01998", "0.9988002", "USDT", T0)

    # bought 0.02 at 50000 (fee 0.00002 BTC = 1 USDT), sold 0.01998 at 49990 (fee ~1 USDT)
    assert booked_pnl([buy, sell]) == D("-0.2") - D("1") - D("0.9988002")


def test_an_open_alone_books_only_its_fees() -> None:
    buy = fill(1, "BTC/USDT", Side.BUY, "50000", "0.02", "0.00002", "BTC", T0)
    short = fill(2, "BTC/USDT:USDT", Side.SELL, "50010", "0.02", "0.5001", "USDT", T0)
    assert booked_pnl([buy, short]) == -(D("1") + D("0.5001"))


def test_booked_losses_count_until_the_next_complete_snapshot_includes_them() -> None:
    daily = DailyLoss()
    daily.snapshot(D("200000"), T0, None)
    assert daily.pnl() == 0
    later = T0 + timedelta(seconds=10)
    before = fill(9, "BTC/USDT", Side.BUY, "1", "1", "5", "USDT", T0 - timedelta(seconds=1))
    daily.book(7, [before, fill(1, "BTC/USDT", Side.BUY, "50000", "0.02", "1", "USDT", later)])
    assert daily.pnl() == D("-1")  # the fill before the snapshot is in its equity already
    daily.book(7, [fill(1, "BTC/USDT", Side.BUY, "50000", "0.02", "2", "USDT", later)])
    assert daily.pnl() == D("-2")  # re-booking a hedge replaces its figure

    daily.snapshot(D("199997"), later + timedelta(seconds=5), None)
    assert daily.pnl() == D("-3") and daily.booked == {}


def test_a_new_day_starts_from_its_first_snapshot() -> None:
    daily = DailyLoss()
    daily.snapshot(D("1000"), T0, D("1010"))
    assert daily.pnl() == D("-10")
    tomorrow = T0 + timedelta(days=1)
    assert daily.needs_day_start(tomorrow)
    daily.snapshot(D("990"), tomorrow, None)
    assert daily.pnl() == 0
