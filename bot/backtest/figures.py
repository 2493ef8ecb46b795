"""The figures a backtest reports for one way of trading (the bot's, or the passive baseline).

Definitions (USDT, over the replayed period of `period_seconds`):
- net P&L = funding + basis P&L − fees (`bot.pnl`);
- capital used = the most capital held at once: spot cost plus the short's initial margin at
  the configured leverage, summed over the hedges open together; notional = the most
  notional per leg held at once;
- net APR = net P&L / capital used (or / notional) × (365 days / period);
- max drawdown = largest fall of equity from a previous peak (and as a fraction of it);
- time in market = share of the period with at least one hedge open.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

ZERO = Decimal(0)
YEAR_SECONDS = Decimal(365 * 24 * 3600)
MONEY = Decimal("1e-8")
RATIO = Decimal("1e-6")
HOURS = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class Interval:
    """One hedge's time in the market and what it tied up."""

    start: datetime
    end: datetime
    capital: Decimal
    notional: Decimal


@dataclass(frozen=True, slots=True)
class WorstHedge:
    id: str
    pair: str
    net: Decimal
    opened_at: datetime | None
    closed_at: datetime | None
    reason: str | None


@dataclass(frozen=True, slots=True)
class Figures:
    """The summary figures of one way of trading over the period."""

    net_pnl: Decimal
    funding: Decimal
    fees: Decimal
    basis_pnl: Decimal
    capital_used: Decimal
    notional: Decimal
    net_apr: Decimal | None
    net_apr_notional: Decimal | None
    max_drawdown: Decimal
    max_drawdown_pct: Decimal
    time_in_market: Decimal
    hedges: int
    avg_holding_hours: Decimal | None
    worst_hedge: WorstHedge | None

    def to_json(self) -> dict[str, Any]:
        """Return JSON-ready values: decimals as fixed-point strings, rounded for reading."""
        worst = self.worst_hedge
        return {
            "net_pnl": money(self.net_pnl),
            "net_apr": ratio(self.net_apr),
            "net_apr_notional": ratio(self.net_apr_notional),
            "funding": money(self.funding),
            "fees": money(self.fees),
            "basis_pnl": money(self.basis_pnl),
            "capital_used": money(self.capital_used),
            "notional": money(self.notional),
            "max_drawdown": money(self.max_drawdown),
            "max_drawdown_pct": ratio(self.max_drawdown_pct),
            "time_in_market": ratio(self.time_in_market),
            "hedges": self.hedges,
            "avg_holding_hours": fixed(self.avg_holding_hours, HOURS),
            "worst_hedge": None
            if worst is None
            else {
                "id": worst.id,
                "pair": worst.pair,
                "net": money(worst.net),
                "opened_at": iso(worst.opened_at),
                "closed_at": iso(worst.closed_at),
                "reason": worst.reason,
            },
        }

    def metric(self, name: str) -> Decimal | None:
        """Return one numeric figure by name (for ranking sweeps)."""
        value = getattr(self, name)
        if value is None or isinstance(value, Decimal):
            return value
        if isinstance(value, int):
            return Decimal(value)
        raise KeyError(name)


def figures_of(
    intervals: Sequence[Interval],
    *,
    net: Decimal,
    funding: Decimal,
    fees: Decimal,
    basis_pnl: Decimal,
    start: datetime,
    end: datetime,
    equity: Sequence[Decimal],
    hedges: int,
    avg_holding_hours: Decimal | None,
    worst_hedge: WorstHedge | None,
) -> Figures:
    """Return the figures of a run: the sums as given; exposure, APRs, drawdown derived."""
    capital, notional = peak_exposure(intervals)
    period = Decimal(str((end - start).total_seconds()))
    drawdown, drawdown_pct = max_drawdown(equity)
    return Figures(
        net_pnl=net,
        funding=funding,
        fees=fees,
        basis_pnl=basis_pnl,
        capital_used=capital,
        notional=notional,
        net_apr=apr(net, capital, period),
        net_apr_notional=apr(net, notional, period),
        max_drawdown=drawdown,
        max_drawdown_pct=drawdown_pct,
        time_in_market=time_in_market(intervals, start, end),
        hedges=hedges,
        avg_holding_hours=avg_holding_hours,
        worst_hedge=worst_hedge,
    )


def apr(net: Decimal, base: Decimal, period_seconds: Decimal) -> Decimal | None:
    """Annualise `net` earned on `base` over `period_seconds` (None without a base)."""
    if base <= 0 or period_seconds <= 0:
        return None
    return net / base * YEAR_SECONDS / period_seconds


def peak_exposure(intervals: Iterable[Interval]) -> tuple[Decimal, Decimal]:
    """Return the most (capital, notional) held at once; a close at t frees before an open."""
    moves: list[tuple[datetime, int, Decimal, Decimal]] = []
    for iv in intervals:
        moves.append((iv.start, 1, iv.capital, iv.notional))
        moves.append((iv.end, 0, -iv.capital, -iv.notional))
    capital = notional = best_capital = best_notional = ZERO
    for _, _, dc, dn in sorted(moves, key=lambda m: (m[0], m[1])):
        capital += dc
        notional += dn
        best_capital = max(best_capital, capital)
        best_notional = max(best_notional, notional)
    return best_capital, best_notional


def time_in_market(intervals: Iterable[Interval], start: datetime, end: datetime) -> Decimal:
    """Return the share of [start, end] covered by at least one interval."""
    total = (end - start).total_seconds()
    if total <= 0:
        return ZERO
    covered = 0.0
    reach = start
    for iv in sorted(intervals, key=lambda i: i.start):
        lo, hi = max(iv.start, reach), min(iv.end, end)
        if hi > lo:
            covered += (hi - lo).total_seconds()
            reach = hi
    return Decimal(str(covered)) / Decimal(str(total))


def max_drawdown(values: Sequence[Decimal]) -> tuple[Decimal, Decimal]:
    """Return the largest peak-to-trough fall of `values` and that fall / the peak."""
    peak: Decimal | None = None
    worst = worst_pct = ZERO
    for v in values:
        peak = v if peak is None or v > peak else peak
        fall = peak - v
        if fall > worst:
            worst = fall
            worst_pct = fall / peak if peak > 0 else ZERO
    return worst, worst_pct


def money(value: Decimal | None) -> str | None:
    return fixed(value, MONEY)


def ratio(value: Decimal | None) -> str | None:
    return fixed(value, RATIO)


def fixed(value: Decimal | None, quantum: Decimal) -> str | None:
    """Round to `quantum` and print without exponent (and without a negative zero)."""
    if value is None:
        return None
    return f"{value.quantize(quantum) + 0:f}"


def iso(when: datetime | None) -> str | None:
    return when.isoformat() if when is not None else None
