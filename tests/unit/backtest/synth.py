"""Small synthetic Binance history in the layout of ../shared/data, with known values.

BTCUSDT (1h marks): spot hours 0..71 without hour 30 (a gap); perp hours 0..71 where hours
0..7 are placeholders (before the first funding at 08:00), hour 8 is too thin and hour 9 is
the first liquid bar, so the perp is listed at hour 10; marks hours 0..71 without hour 40;
funding every 8h from hour 8 to hour 64, rate 0.0001 x k (the 16:00 row carries 8 ms of
exchange jitter).

SOLUSDT (8h marks): spot hours 0..71; perp hours 24..71, listed at hour 25; funding every
8h from hour 0 (so it settles before the perp is listed); marks at hours 0, 8, ..., 64.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

D = Decimal
T0 = datetime(2024, 1, 1, tzinfo=UTC)
HOURS = 72
BTC_SPOT_GAP = 30
BTC_MARK_GAP = 40
BTC_FIRST_LIQUID_HOUR = 9
BTC_LISTED_HOUR = 10
SOL_PERP_FROM_HOUR = 24
SOL_LISTED_HOUR = 25


def at(hour: float) -> datetime:
    return T0 + timedelta(hours=hour)


def iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def ms(when: datetime) -> int:
    return int(when.timestamp()) * 1000


def btc_spot_open(h: int) -> Decimal:
    return D(1000 + h) + D("0.37")


def btc_spot_close(h: int) -> Decimal:
    return btc_spot_open(h) + D("0.5")


def btc_spot_volume(h: int) -> Decimal:
    return D(h + 1) / 4


def btc_perp_open(h: int) -> Decimal:
    if h < 8:
        return D("5000")
    return D(1000 + h) + D("0.3")


def btc_perp_volume(h: int) -> Decimal:
    return D("0.01") if h < BTC_FIRST_LIQUID_HOUR else D(500)


def btc_mark_open(h: int) -> Decimal:
    return D(1000 + h) + D("0.1234")


def btc_rate(k: int) -> Decimal:
    """Rate settled at hour 8 x k (k = 1..8)."""
    return D("0.0001") * k


def sol_spot_open(h: int) -> Decimal:
    return D(50 + h) + D("0.25")


def sol_perp_open(h: int) -> Decimal:
    return D(50 + h) + D("0.05")


def sol_mark_open(h: int) -> Decimal:
    return D(50 + h) + D("0.02")


def sol_rate(k: int) -> Decimal:
    """Rate settled at hour 8 x k (k = 0..8)."""
    return D("-0.0002") * (k + 1)


def write_bars(path: Path, rows: Iterable[tuple[int, Decimal, Decimal, Decimal | None]]) -> None:
    """Write klines (hour, open, close, volume or None) at `path` (.gz compresses)."""
    with_volume = path.parent.name != "mark"
    header = "date,open,high,low,close" + (",volume" if with_volume else "")
    lines = [header]
    for hour, open_, close, volume in rows:
        high, low = max(open_, close) + 1, min(open_, close) - D("0.5")
        cells = [iso(at(hour)), str(open_), str(high), str(low), str(close)]
        if with_volume:
            cells.append(str(volume))
        lines.append(",".join(cells))
    write_text(path, "\n".join(lines) + "\n")


def write_funding(path: Path, rows: Iterable[tuple[int, Decimal, int]]) -> None:
    """Write funding rows (hour, rate, jitter ms)."""
    lines = ["funding_time_utc,funding_time_ms,funding_rate"]
    lines += [f"{iso(at(h))},{ms(at(h)) + jitter},{rate}" for h, rate, jitter in rows]
    write_text(path, "\n".join(lines) + "\n")


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode(), compresslevel=1))
    else:
        path.write_text(text)


def make_history_dir(root: Path) -> Path:
    """Write the synthetic BTCUSDT and SOLUSDT history under `root` and return `root`."""
    b = root / "binance"
    write_bars(
        b / "spot" / "BTCUSDT-1h.csv.gz",
        (
            (h, btc_spot_open(h), btc_spot_close(h), btc_spot_volume(h))
            for h in range(HOURS)
            if h != BTC_SPOT_GAP
        ),
    )
    write_bars(
        b / "perp" / "BTCUSDT-1h.csv.gz",
        ((h, btc_perp_open(h), btc_perp_open(h), btc_perp_volume(h)) for h in range(HOURS)),
    )
    write_bars(
        b / "mark" / "BTCUSDT-1h.csv.gz",
        ((h, btc_mark_open(h), btc_mark_open(h), None) for h in range(HOURS) if h != BTC_MARK_GAP),
    )
    write_funding(
        b / "funding" / "BTCUSDT.csv",
        ((8 * k, btc_rate(k), 8 if k == 2 else 0) for k in range(1, 9)),
    )
    write_bars(
        b / "spot" / "SOLUSDT-1h.csv.gz",
        ((h, sol_spot_open(h), sol_spot_open(h), D(1000)) for h in range(HOURS)),
    )
    write_bars(
        b / "perp" / "SOLUSDT-1h.csv.gz",
        (
            (h, sol_perp_open(h), sol_perp_open(h), D(10000))
            for h in range(SOL_PERP_FROM_HOUR, HOURS)
        ),
    )
    write_bars(
        b / "mark" / "SOLUSDT-8h.csv",
        ((8 * k, sol_mark_open(8 * k), sol_mark_open(8 * k), None) for k in range(9)),
    )
    write_funding(b / "funding" / "SOLUSDT.csv", ((8 * k, sol_rate(k), 0) for k in range(9)))
    return root
