"""A few days of deterministic history on the fake Binance, spelled as Binance spells it.

Prices and volumes carry Binance's trailing zeros (`"42000.10"`, `"12.34500000"`), funding
rates include tiny and negative ones, and settlement times carry a few ms of jitter, so the
tests see every formatting rule of the writer.
"""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from bot.domain import SettledFunding
from tests.fakes.binance_server import FakeBinance
from tests.fakes.market import Kline

D = Decimal
HOUR = timedelta(hours=1)
SEED_FROM = datetime(2023, 12, 31, tzinfo=UTC)
SEED_TO = datetime(2024, 1, 6, tzinfo=UTC)
NOW = datetime(2024, 6, 1, tzinfo=UTC)
BASES = {"BTC": D("42000"), "ETH": D("2300")}
RATES = ("0.00010000", "-0.00003125", "0.00000123", "0.00250000")
JITTER_MS = (0, 5, 17)


def funding_rows(base: str) -> list[SettledFunding]:
    """Every 8h settlement of `base`'s perpetual, a few ms late as on Binance."""
    symbol = f"{base}/USDT:USDT"
    rows = []
    t, i = SEED_FROM, 0
    while t < SEED_TO:
        at = t + timedelta(milliseconds=JITTER_MS[i % len(JITTER_MS)])
        rows.append(SettledFunding(symbol, at, D(RATES[i % len(RATES)]), BASES[base]))
        t, i = t + 8 * HOUR, i + 1
    return rows


def bars(base: str, kind: str) -> list[Kline]:
    """Hourly bars of `kind` (perp, mark, spot) with exchange-style decimals."""
    places = {"perp": 2, "mark": 8, "spot": 8}[kind]
    q = D(1).scaleb(-places)
    out = []
    t, i = SEED_FROM, 0
    while t < SEED_TO:
        open_ = (BASES[base] + D(i) / 10 + (D("0.00012345") if kind == "mark" else 0)).quantize(q)
        volume = D(0) if kind == "mark" else (D("12.345") + D(i) / 1000).quantize(D("0.00000001"))
        out.append(
            Kline(
                t,
                open_,
                (open_ + 50).quantize(q),
                (open_ - D("49.5")).quantize(q),
                (open_ + D("0.25")).quantize(q),
                volume,
                (volume * open_).quantize(D("0.00000001")),
            )
        )
        t, i = t + HOUR, i + 1
    return out


def seed_history(fake: FakeBinance) -> None:
    """Serve the history above for BTC and ETH."""
    for base in BASES:
        perp, spot = f"{base}/USDT:USDT", f"{base}/USDT"
        fake.add_funding_history(perp, funding_rows(base))
        fake.add_klines(perp, bars(base, "perp"))
        fake.add_klines(perp, bars(base, "mark"), price="mark")
        fake.add_klines(spot, bars(base, "spot"))


def read_lines(path: Path) -> list[str]:
    """Return the lines of a CSV file, gzip-compressed or not."""
    raw = path.read_bytes()
    return (gzip.decompress(raw) if path.name.endswith(".gz") else raw).decode().splitlines()


def drop_last_rows(path: Path, n: int) -> None:
    """Rewrite `path` without its last `n` data rows (as an interrupted run could leave it)."""
    lines = read_lines(path)[:-n]
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
