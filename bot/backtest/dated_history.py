"""Quarterly history for backtests: continuous bars split into contracts, delivery prices.

`carrybot data fetch --kinds current_quarter,next_quarter,delivery` writes the pair's
continuous CURRENT_QUARTER and NEXT_QUARTER bars and its delivery prices. A continuous bar
at t belongs to the contract delivering first after t (current) or second (next); the
delivery times are those of the delivery file, continued after its last row by Binance's
calendar (the last Friday of March, June, September and December, 08:00 UTC).

COIN-M quarterlies (`--kinds coinm_current_quarter,coinm_next_quarter,coinm_delivery`) are
read the same way from `binance/coinm_*/` under the spot symbol's stem (`BTCUSDT` for the
pair `BTCUSD`): `load_dated(..., coinm=True)`.
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from bot.backtest.series import HOUR_MS, BarSeries, from_ms, to_ms
from bot.errors import UserError

_QUARTER_MONTHS = (3, 6, 9, 12)
DELIVERY_HEADER = "delivery_time_utc,delivery_time_ms,delivery_price"


@dataclass(frozen=True, slots=True)
class DatedContract:
    """One quarterly contract of a pair: its delivery time, hourly opens, delivery price."""

    expiry_ms: int
    bars: BarSeries
    delivery_price: Decimal | None

    @property
    def expiry(self) -> datetime:
        return from_ms(self.expiry_ms)


def quarterly_deliveries(start: datetime, end: datetime) -> list[datetime]:
    """Return Binance's quarterly delivery times after `start` up to one after `end`."""
    out: list[datetime] = []
    year = start.year
    while not out or out[-1] <= end:
        for month in _QUARTER_MONTHS:
            last = calendar.monthrange(year, month)[1]
            day = datetime(year, month, last, 8, tzinfo=UTC)
            day -= timedelta(days=(day.weekday() - calendar.FRIDAY) % 7)
            if day > start and (not out or out[-1] <= end):
                out.append(day)
        year += 1
    return out


def load_dated(binance: Path, name: str, *, coinm: bool = False) -> tuple[DatedContract, ...]:
    """Load `name`'s quarterly contracts under `binance/` (COIN-M's with `coinm`); () when
    no quarterly file exists."""
    from bot.backtest.history import read_bars  # history imports this module

    prefix = "coinm_" if coinm else ""
    kinds = (f"{prefix}current_quarter", f"{prefix}next_quarter")
    paths = [binance / kind / f"{name}-1h.csv.gz" for kind in kinds]
    series = [read_bars(p, HOUR_MS, with_volume=True) if p.is_file() else None for p in paths]
    current, nxt = series
    if current is None and nxt is None:
        return ()
    prices = _read_deliveries(binance / f"{prefix}delivery" / f"{name}.csv")
    first = min(s.first_ms for s in series if s is not None)
    last = max(s.end_ms for s in series if s is not None)
    known = sorted(prices)
    after = from_ms(known[-1]) if known else from_ms(first)
    expiries = known + [
        to_ms(d) for d in quarterly_deliveries(after, from_ms(last) + timedelta(days=92))
    ]
    grouped: dict[int, list[tuple[int, Decimal]]] = {}
    for offset, bars in ((0, current), (1, nxt)):
        if bars is None:
            continue
        for t, price in zip(bars.times, bars.opens, strict=True):
            expiry = _nth_after(expiries, t, offset)
            if expiry is not None:
                grouped.setdefault(expiry, []).append((t, price))
    contracts = []
    for expiry in sorted(grouped):
        rows = sorted(grouped[expiry])
        times = [t for t, _ in rows]
        opens = [p for _, p in rows]
        bars = BarSeries(HOUR_MS, times, opens)
        contracts.append(DatedContract(expiry, bars, prices.get(expiry)))
    return tuple(contracts)


def _nth_after(expiries: Sequence[int], ms: int, n: int) -> int | None:
    later = [e for e in expiries if e > ms]
    return later[n] if len(later) > n else None


def _read_deliveries(path: Path) -> dict[int, Decimal]:
    if not path.is_file():
        return {}
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines or lines[0].strip() != DELIVERY_HEADER:
        raise UserError(f"{path}: header is not {DELIVERY_HEADER!r}; fix or re-download the file")
    out: dict[int, Decimal] = {}
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        try:
            _, ms, price = line.split(",")
            out[int(ms)] = Decimal(price)
        except ValueError:
            raise UserError(f"{path}:{number}: not `time,ms,price`; fix or re-download") from None
    return out
