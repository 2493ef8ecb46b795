"""Synthetic history in the layout of ../shared/data, with answers known in advance.

Flat prices (spot, perp and mark all at `price` every hour) and a constant funding rate every
8h: a hedge held over N settlements earns exactly N x rate x mark x short size.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

T0 = datetime(2024, 3, 1, tzinfo=UTC)
RATE = Decimal("0.0001")
PRICE = Decimal("20000")
VOLUME = Decimal("1000")


def iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def write_flat_history(
    root: Path,
    *,
    symbols: Sequence[str] = ("BTCUSDT",),
    start: datetime = T0 - timedelta(days=10),
    days: int = 45,
    price: Decimal = PRICE,
    rate: Decimal = RATE,
    rate_at: Callable[[int], Decimal] | None = None,
) -> Path:
    """Write `days` of hourly bars and 8-hourly funding from `start` for each symbol.

    `rate_at(k)` gives the k-th settlement's rate instead of the constant `rate`.
    """
    hours = days * 24
    bars = ["date,open,high,low,close,volume"] + [
        f"{iso(start + timedelta(hours=h))},{price},{price},{price},{price},{VOLUME}"
        for h in range(hours)
    ]
    marks = ["date,open,high,low,close"] + [
        f"{iso(start + timedelta(hours=h))},{price},{price},{price},{price}" for h in range(hours)
    ]
    funding = ["funding_time_utc,funding_time_ms,funding_rate"] + [
        f"{iso(t)},{int(t.timestamp()) * 1000},{rate_at(k) if rate_at else rate}"
        for k, h in enumerate(range(0, hours, 8))
        if (t := start + timedelta(hours=h))
    ]
    for name in symbols:
        _gz(root / "binance" / "spot" / f"{name}-1h.csv.gz", bars)
        _gz(root / "binance" / "perp" / f"{name}-1h.csv.gz", bars)
        _gz(root / "binance" / "mark" / f"{name}-1h.csv.gz", marks)
        path = root / "binance" / "funding" / f"{name}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(funding) + "\n")
    return root


def _gz(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode(), compresslevel=1, mtime=0))
