"""The passive carry baseline: each pair hedged over the whole period, entered and left once.

With the same notional per pair as the bot's hedges (`sizing.notional_per_hedge`), the same
step rounding, fees and quotes (the replay's synthetic book, as the paper fills see it):
buy spot at the ask and short the perpetual at the bid at the first event time the pair has
quotes, collect every settlement after that (rate × mark × quantity), and at the last event
time sell spot at the bid and buy the short back at the ask. Taker fees on all four trades.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import accumulate

from bot.backtest.figures import ZERO, Figures, Interval, WorstHedge, figures_of
from bot.backtest.history import History
from bot.backtest.replay import ReplaySource
from bot.domain import MarketKind, Pair, Quote
from bot.domain.numbers import floor_to_step
from bot.execution.sizing import common_step
from strategies.base import FeeParams

_SEARCH_HOURS = 72  # how far to look for quotes around a data gap at entry or exit


@dataclass(frozen=True, slots=True)
class PassiveLeg:
    """One pair held passively."""

    pair: str
    entered_at: datetime
    left_at: datetime
    quantity: Decimal
    entry_spot: Decimal
    entry_perp: Decimal
    exit_spot: Decimal
    exit_perp: Decimal
    fees: Decimal
    paid_at: tuple[datetime, ...]
    """Settlement times collected, in order."""
    paid: tuple[Decimal, ...]
    """Funding collected up to and including each settlement (cumulative)."""

    @property
    def funding(self) -> Decimal:
        return self.paid[-1] if self.paid else ZERO

    def funding_until(self, when: datetime) -> Decimal:
        i = bisect_right(self.paid_at, when)
        return self.paid[i - 1] if i else ZERO

    @property
    def basis_pnl(self) -> Decimal:
        q = self.quantity
        return q * (self.exit_spot - self.entry_spot) + q * (self.entry_perp - self.exit_perp)

    @property
    def net(self) -> Decimal:
        return self.funding + self.basis_pnl - self.fees

    @property
    def notional(self) -> Decimal:
        return self.quantity * self.entry_spot

    def capital(self, leverage: int) -> Decimal:
        return self.notional + self.quantity * self.entry_perp / max(leverage, 1)


class _Cursor:
    """A clock the baseline sets anywhere: it reads history, it does not trade."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at

    def monotonic(self) -> float:
        return 0.0

    async def sleep(self, seconds: float) -> None:
        """Never needed: the baseline does not wait."""


@dataclass(frozen=True)
class PassiveResult:
    figures: Figures
    legs: list[PassiveLeg]


async def passive_carry(
    history: History,
    pairs: Sequence[str],
    times: Sequence[datetime],
    *,
    notional: Decimal,
    fees: FeeParams,
    leverage: int,
    initial_equity: Decimal,
    reaction: timedelta,
) -> PassiveResult:
    """Hold each of `pairs` (spot symbols) passively over the event `times` (sorted)."""
    clock = _Cursor(times[0] + reaction)
    source = ReplaySource(history, clock)
    legs: list[PassiveLeg] = []
    for key in sorted(pairs):
        leg = await _hold(source, clock, key, times, notional, fees, reaction)
        if leg is not None:
            legs.append(leg)
    start, end = times[0] + reaction, times[-1] + reaction
    values = await _daily_values(source, clock, legs, times, fees, reaction)
    figures = _figures(legs, start, end, leverage, [initial_equity + v for v in values])
    return PassiveResult(figures, legs)


async def _hold(
    source: ReplaySource,
    clock: _Cursor,
    key: str,
    times: Sequence[datetime],
    notional: Decimal,
    fees: FeeParams,
    reaction: timedelta,
) -> PassiveLeg | None:
    span = source.data_ranges().get(key)
    if span is None:
        return None
    inside = [t for t in times if span.start <= t < span.end]
    entry = await _first_quotes(source, clock, key, inside[:_SEARCH_HOURS], reaction)
    leave = await _first_quotes(source, clock, key, inside[::-1][:_SEARCH_HOURS], reaction)
    if entry is None or leave is None or leave[0] <= entry[0]:
        return None
    entered_at, pair, spot_in, perp_in = entry
    left_at, _, spot_out, perp_out = leave
    quantity = floor_to_step(notional / spot_in.ask, common_step(pair))
    if quantity * spot_in.ask < max(pair.spot.min_notional, pair.perp.min_notional):
        return None
    clock.at = left_at
    rows = [
        r
        for r in await source.fetch_funding_history(pair.perp.symbol, entered_at, left_at)
        if r.funding_time > entered_at  # the short opens just after a settlement at entry
    ]
    amounts = [quantity * (r.mark_price or perp_in.bid) * r.rate for r in rows]
    costs = (spot_in.ask + spot_out.bid) * fees.spot_taker + (perp_in.bid + perp_out.ask) * (
        fees.futures_taker
    )
    return PassiveLeg(
        pair=key,
        entered_at=entered_at,
        left_at=left_at,
        quantity=quantity,
        entry_spot=spot_in.ask,
        entry_perp=perp_in.bid,
        exit_spot=spot_out.bid,
        exit_perp=perp_out.ask,
        fees=quantity * costs,
        paid_at=tuple(r.funding_time for r in rows),
        paid=tuple(accumulate(amounts)),
    )


async def _first_quotes(
    source: ReplaySource,
    clock: _Cursor,
    key: str,
    candidates: Sequence[datetime],
    reaction: timedelta,
) -> tuple[datetime, Pair, Quote, Quote] | None:
    """Return the first candidate time with both quotes (clock moved there), or None."""
    for t in candidates:
        clock.at = t + reaction
        pair = next((p for p in await source.pairs() if p.key == key), None)
        if pair is None:
            continue
        spot = (await source.fetch_best_quotes(MarketKind.SPOT)).get(pair.spot.symbol)
        perp = (await source.fetch_best_quotes(MarketKind.PERPETUAL)).get(pair.perp.symbol)
        if spot is not None and perp is not None:
            return t + reaction, pair, spot, perp
    return None


async def _daily_values(
    source: ReplaySource,
    clock: _Cursor,
    legs: Sequence[PassiveLeg],
    times: Sequence[datetime],
    fees: FeeParams,
    reaction: timedelta,
) -> list[Decimal]:
    """Return the baseline's P&L marked at every day start (and at the end)."""
    days = sorted({t.replace(hour=0, minute=0, second=0, microsecond=0) for t in times})
    stamps = [d + reaction for d in days if d >= times[0]] + [times[-1] + reaction]
    marks: dict[str, tuple[Decimal, Decimal]] = {}
    out: list[Decimal] = []
    for at in stamps:
        clock.at = at
        spot = await source.fetch_best_quotes(MarketKind.SPOT)
        perp = await source.fetch_best_quotes(MarketKind.PERPETUAL)
        total = ZERO
        for leg in legs:
            if at < leg.entered_at:
                continue
            if at >= leg.left_at:
                total += leg.net
                continue
            symbol_spot, symbol_perp = leg.pair, f"{leg.pair}:{leg.pair.split('/')[1]}"
            sq, pq = spot.get(symbol_spot), perp.get(symbol_perp)
            if sq is not None and pq is not None:
                marks[leg.pair] = (sq.bid, pq.ask)
            bid, ask = marks.get(leg.pair, (leg.entry_spot, leg.entry_perp))
            funding = leg.funding_until(at)
            entry_fees = leg.quantity * (
                leg.entry_spot * fees.spot_taker + leg.entry_perp * fees.futures_taker
            )
            basis = leg.quantity * (bid - leg.entry_spot) + leg.quantity * (leg.entry_perp - ask)
            total += funding + basis - entry_fees
        out.append(total)
    return out


def _figures(
    legs: Sequence[PassiveLeg],
    start: datetime,
    end: datetime,
    leverage: int,
    equity: Sequence[Decimal],
) -> Figures:
    intervals = [
        Interval(leg.entered_at, leg.left_at, leg.capital(leverage), leg.notional) for leg in legs
    ]
    worst = min(legs, key=lambda leg: (leg.net, leg.pair), default=None)
    hours = [Decimal(str((leg.left_at - leg.entered_at).total_seconds())) / 3600 for leg in legs]
    return figures_of(
        intervals,
        net=sum((leg.net for leg in legs), ZERO),
        funding=sum((leg.funding for leg in legs), ZERO),
        fees=sum((leg.fees for leg in legs), ZERO),
        basis_pnl=sum((leg.basis_pnl for leg in legs), ZERO),
        start=start,
        end=end,
        equity=equity,
        hedges=len(legs),
        avg_holding_hours=sum(hours, ZERO) / len(hours) if hours else None,
        worst_hedge=None
        if worst is None
        else WorstHedge(worst.pair, worst.pair, worst.net, worst.entered_at, worst.left_at, None),
    )
