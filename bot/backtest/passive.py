"""The passive carry baseline: each pair hedged over the whole period, entered and left once.

Both ways use the same quotes as the paper fills (the replay's synthetic book): enter at the
first event time the pair has quotes (buy spot at the ask, short the perpetual at the bid),
collect every settlement after that, leave at the last event time the pair has quotes (sell
spot at the bid, buy the short back at the ask). Taker fees of one round trip of both legs.

- **Constant notional** (the baseline reported as `passive`): each pair is kept at
  `sizing.notional_per_hedge` N per leg, as if rebalanced at every settlement (rebalancing
  fees not counted). Funding = Σ N × rate; basis P&L = N × (entry basis − exit basis), basis
  = perp / spot − 1 at the executable quotes; fees = N × 2 × (spot taker + futures taker).
  This is what holding the carry earns without betting on the price.
- **Constant notional, paying for it** (`passive_paying_resizes`, with a `rebalance_band` b):
  the same, less the taker fees of the resizes a holder would pay to keep it there: at each
  settlement the short's worth q × mark is compared with N and, when more than b off, the
  difference |q × mark − N| is traded back on both legs at spot taker + futures taker (no
  slippage or spread counted); funding stays N × rate, so the two differ by those fees only.
- **Fixed quantity** (kept as `passive_fixed_quantity`): the quantity N / spot ask (floored
  to the common step) is bought once and held, so funding (rate × mark × quantity) grows
  with the price; over 2020–2024 that counts price gains (SOL ×50) that a 2× short could
  not have carried without margin top-ups.
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
from bot.domain.params import FeeParams
from bot.execution.sizing import common_step

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
    constant_notional: Decimal | None = None
    """N when the leg is kept at constant notional N; None for a fixed quantity."""
    resized_at: tuple[datetime, ...] = ()
    """Settlement times at which the leg paid for a resize back to N, in order."""
    resize_fees: tuple[Decimal, ...] = ()
    """Resize fees paid up to and including each of `resized_at` (cumulative; in `fees`)."""

    def resize_fees_until(self, when: datetime) -> Decimal:
        i = bisect_right(self.resized_at, when)
        return self.resize_fees[i - 1] if i else ZERO

    @property
    def funding(self) -> Decimal:
        return self.paid[-1] if self.paid else ZERO

    def funding_until(self, when: datetime) -> Decimal:
        i = bisect_right(self.paid_at, when)
        return self.paid[i - 1] if i else ZERO

    @property
    def basis_pnl(self) -> Decimal:
        return self.basis_pnl_at(self.exit_spot, self.exit_perp)

    def basis_pnl_at(self, spot_bid: Decimal, perp_ask: Decimal) -> Decimal:
        """Return the basis P&L of leaving at these quotes."""
        n = self.constant_notional
        if n is not None:
            return n * (self.entry_perp / self.entry_spot - perp_ask / spot_bid)
        q = self.quantity
        return q * (spot_bid - self.entry_spot) + q * (self.entry_perp - perp_ask)

    @property
    def net(self) -> Decimal:
        return self.funding + self.basis_pnl - self.fees

    @property
    def notional(self) -> Decimal:
        n = self.constant_notional
        return n if n is not None else self.quantity * self.entry_spot

    def capital(self, leverage: int) -> Decimal:
        n = self.constant_notional
        short = n if n is not None else self.quantity * self.entry_perp
        return self.notional + short / max(leverage, 1)

    def entry_fees(self, fees: FeeParams) -> Decimal:
        """Return the fees paid to enter (half the round trip's)."""
        n = self.constant_notional
        if n is not None:
            return n * (fees.spot_taker + fees.futures_taker)
        return self.quantity * (
            self.entry_spot * fees.spot_taker + self.entry_perp * fees.futures_taker
        )


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
    constant_notional: bool


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
    constant_notional: bool = True,
    rebalance_band: Decimal | None = None,
) -> PassiveResult:
    """Hold each of `pairs` (spot symbols) passively over the event `times` (sorted).

    `constant_notional`: keep each pair at `notional` (the baseline to compare with), else
    hold the quantity bought at entry; with `rebalance_band` (constant notional only), pay
    the taker fees of the resizes that keep it within the band (see the module docstring).
    """
    clock = _Cursor(times[0] + reaction)
    source = ReplaySource(history, clock)
    legs: list[PassiveLeg] = []
    for key in sorted(pairs):
        band = rebalance_band if constant_notional else None
        leg = await _hold(
            source, clock, key, times, notional, fees, reaction, band, constant_notional
        )
        if leg is not None:
            legs.append(leg)
    start, end = times[0] + reaction, times[-1] + reaction
    values = await _daily_values(source, clock, legs, times, fees, reaction)
    # The curve starts at the initial equity, before the entry fees, as the bot's does (its
    # first balance snapshot precedes its first open): both drawdowns count the entry fees.
    curve = [initial_equity, *(initial_equity + v for v in values)]
    figures = _figures(legs, start, end, leverage, curve)
    return PassiveResult(figures, legs, constant_notional)


async def _hold(
    source: ReplaySource,
    clock: _Cursor,
    key: str,
    times: Sequence[datetime],
    notional: Decimal,
    fees: FeeParams,
    reaction: timedelta,
    rebalance_band: Decimal | None,
    constant_notional: bool,
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
    resized_at: tuple[datetime, ...] = ()
    resize_fees: tuple[Decimal, ...] = ()
    if constant_notional:
        amounts = [notional * r.rate for r in rows]
        paid_fees = notional * 2 * (fees.spot_taker + fees.futures_taker)
        if rebalance_band is not None:
            marks = [(r.funding_time, r.mark_price) for r in rows if r.mark_price]
            resized_at, resize_fees = resize_costs(
                marks, perp_in.bid, notional, rebalance_band, fees
            )
            paid_fees += resize_fees[-1] if resize_fees else ZERO
    else:
        amounts = [quantity * (r.mark_price or perp_in.bid) * r.rate for r in rows]
        costs = (spot_in.ask + spot_out.bid) * fees.spot_taker + (
            perp_in.bid + perp_out.ask
        ) * fees.futures_taker
        paid_fees = quantity * costs
    return PassiveLeg(
        pair=key,
        entered_at=entered_at,
        left_at=left_at,
        quantity=quantity,
        entry_spot=spot_in.ask,
        entry_perp=perp_in.bid,
        exit_spot=spot_out.bid,
        exit_perp=perp_out.ask,
        fees=paid_fees,
        paid_at=tuple(r.funding_time for r in rows),
        paid=tuple(accumulate(amounts)),
        constant_notional=notional if constant_notional else None,
        resized_at=resized_at,
        resize_fees=resize_fees,
    )


def resize_costs(
    marks: Sequence[tuple[datetime, Decimal]],
    entry_price: Decimal,
    notional: Decimal,
    band: Decimal,
    fees: FeeParams,
) -> tuple[tuple[datetime, ...], tuple[Decimal, ...]]:
    """Return when a hedge of `notional` entered at `entry_price` is resized back to it (its
    short's worth at the settlement's mark more than `band` off) and the taker fees paid up
    to each resize (cumulative): |worth − notional| on both legs."""
    quantity = notional / entry_price
    rate = fees.spot_taker + fees.futures_taker
    at: list[datetime] = []
    paid: list[Decimal] = []
    total = ZERO
    for when, mark in marks:
        worth = quantity * mark
        if abs(worth / notional - 1) > band:
            total += abs(worth - notional) * rate
            at.append(when)
            paid.append(total)
            quantity = notional / mark
    return tuple(at), tuple(paid)


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
            total += (
                leg.funding_until(at)
                + leg.basis_pnl_at(bid, ask)
                - leg.entry_fees(fees)
                - leg.resize_fees_until(at)
            )
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
