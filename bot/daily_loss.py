"""The day's P&L for the daily loss limit: complete balance snapshots plus what was booked since.

Equity comes from balance snapshots, which only count when every held asset had a fresh
price (an asset valued at nothing is not a loss). Between two snapshots, fees and realised
losses count as soon as they are booked: for each hedge traded since the last snapshot,
the fees of its fills since then plus the price P&L of those fills, each leg marked at its
own last fill price (an open or a close alone books only its fees and its spread between
fills; a buy and a sell of the same quantity book the round trip). A new complete snapshot
includes all of it, so the booked part starts again from zero.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from bot.domain import Fill
from bot.pnl import fee_usdt, inverse_leg_pnl, leg_pnl

ZERO = Decimal(0)


def booked_pnl(fills: Sequence[Fill], inverse: Mapping[str, Decimal] | None = None) -> Decimal:
    """Return what `fills` realised: price P&L per symbol at its last fill price, less fees.

    `inverse` gives the contract size of COIN-M symbols: their P&L is in the coin
    (`inverse_leg_pnl`), valued at the last fill's price.
    """
    by_symbol: dict[str, list[Fill]] = {}
    for f in sorted(fills, key=lambda f: f.timestamp):
        by_symbol.setdefault(f.symbol, []).append(f)
    total = ZERO
    for symbol, rows in by_symbol.items():
        size = (inverse or {}).get(symbol)
        if size is not None:
            price = rows[-1].price
            total += inverse_leg_pnl(rows, price, size) * price
            continue
        cash, _ = leg_pnl(rows, rows[-1].price)
        total += cash
    return total - sum((fee_usdt(f) for f in fills), ZERO)


@dataclass
class DailyLoss:
    """Day start equity, the last complete snapshot, and per-hedge P&L booked after it."""

    day: datetime | None = None
    day_start_equity: Decimal | None = None
    equity: Decimal | None = None
    equity_at: datetime | None = None
    booked: dict[int, Decimal] = field(default_factory=dict)

    def snapshot(self, equity: Decimal, at: datetime, day_start: Decimal | None) -> None:
        """Take a complete snapshot's equity; `day_start` is the day's first one, if known."""
        day = at.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        if self.day != day or self.day_start_equity is None:
            self.day = day
            self.day_start_equity = day_start if day_start is not None else equity
        self.equity = equity
        self.equity_at = at
        self.booked.clear()

    def needs_day_start(self, at: datetime) -> bool:
        """Tell whether `at` begins a day whose start equity is not known yet."""
        day = at.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        return self.day != day or self.day_start_equity is None

    def book(
        self, hedge_id: int, fills: Sequence[Fill], inverse: Mapping[str, Decimal] | None = None
    ) -> None:
        """Book the hedge's fills made since the last snapshot (replacing its earlier figure)."""
        since = self.equity_at
        recent = [f for f in fills if since is None or f.timestamp >= since]
        self.booked[hedge_id] = booked_pnl(recent, inverse) if recent else ZERO

    @property
    def booked_total(self) -> Decimal:
        return sum(self.booked.values(), ZERO)

    def pnl(self) -> Decimal:
        """Return the day's P&L so far (zero before the first complete snapshot)."""
        if self.equity is None or self.day_start_equity is None:
            return self.booked_total
        return self.equity - self.day_start_equity + self.booked_total
