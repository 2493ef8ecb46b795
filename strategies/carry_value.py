"""What holding one pair is expected to earn and what trading it costs, in fractions of notional.

`carry_value` combines the funding forecast (`strategies.forecast`) with the costs of the
legs as they can be executed now: taker fees of both legs, slippage walked from the books
(else `assumed_slippage_bps` per leg and trade) and the spreads paid (the executable basis at entry,
perp bid vs spot ask, against the one at exit, perp ask vs spot bid). The mid basis is
assumed to stay where it is (no convergence is counted on).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from operator import attrgetter

from bot.domain import MarketSnapshot, Pair, SettledFunding, funding
from bot.domain.funding import HOURS_PER_YEAR
from bot.domain.params import FeeParams
from strategies import carry
from strategies.forecast import FundingForecast, anchor_rate, forecast
from strategies.signals import open_close_slippage, quantize_metric

ZERO = Decimal(0)
_RATE = attrgetter("rate")


@dataclass(frozen=True, slots=True)
class CarryValue:
    """One pair's expected funding and costs for a hedge of `notional` per leg."""

    pair: str
    notional: Decimal
    forecast: FundingForecast
    holding_hours: Decimal
    expected_carry: Decimal  # forecast funding over `holding_hours`
    open_cost: Decimal  # both legs' fees and slippage to open, plus half the spreads
    close_cost: Decimal  # the same to close
    entry_basis: Decimal  # (perp bid − spot ask) / spot ask
    exit_basis: Decimal  # (perp ask − spot bid) / spot bid
    worst_carry: Decimal  # lowest expected cumulative funding ahead (≤ 0)
    worst_hours: Decimal  # the horizon of `worst_carry`
    negative_run: int  # latest settled rates negative in a row
    run_loss: Decimal = Decimal(0)  # what that run of negative settlements cost (≥ 0)
    settled_carry: Decimal = Decimal(0)  # funding settled over the last `holding_hours`
    price_variance: Decimal | None = None  # per hour, of the log mark at settlements

    @property
    def round_trip(self) -> Decimal:
        return self.open_cost + self.close_cost

    @property
    def net_entry(self) -> Decimal:
        """Expected carry over the holding minus the round trip: what opening now is worth."""
        return self.expected_carry - self.round_trip

    @property
    def exit_saving(self) -> Decimal:
        """What closing now could save at best: the expected negative funding ahead (≥ 0)."""
        return -self.worst_carry

    def metrics(self) -> dict[str, Decimal]:
        """Return the numbers behind a decision, rounded to 1e-10, for the ledger."""
        f = self.forecast
        values = {
            "notional": self.notional,
            "interval_hours": Decimal(f.interval_hours),
            "forecast_anchor": f.anchor,
            "forecast_level": f.level,
            "forecast_persistence": f.persistence,
            "forecast_fitted": Decimal(int(f.fitted)),
            "forecast_next_rate": f.next_rate(),
            "holding_hours": self.holding_hours,
            "forecast_apr": f.mean_apr(self.holding_hours),
            "expected_carry": self.expected_carry,
            "open_cost": self.open_cost,
            "close_cost": self.close_cost,
            "round_trip": self.round_trip,
            "net_entry": self.net_entry,
            "net_apr": self.net_entry * HOURS_PER_YEAR / self.holding_hours,
            "worst_carry": self.worst_carry,
            "worst_hours": self.worst_hours,
            "entry_basis": self.entry_basis,
            "exit_basis": self.exit_basis,
            "negative_run": Decimal(self.negative_run),
            "run_loss": self.run_loss,
            "settled_carry": self.settled_carry,
        }
        if self.price_variance is not None:
            values["price_variance_per_hour"] = self.price_variance
        return {k: quantize_metric(v) for k, v in values.items()}


@dataclass(frozen=True, slots=True)
class FundingOutlook:
    """What the funding alone says about a pair over a holding: the forecast, its carry and
    its worst dip ahead, and the settled history. Prices play no part, so it changes once a
    settlement (computed once per history, see `_outlook`), not once a poll."""

    forecast: FundingForecast
    expected_carry: Decimal  # forecast funding over the holding
    worst_carry: Decimal
    worst_hours: Decimal
    settled: Settled


def funding_outlook(
    pair: Pair,
    snapshot: MarketSnapshot,
    *,
    holding_hours: Decimal,
    history_periods: int,
    halflife: Decimal,
    default_persistence: Decimal,
) -> FundingOutlook | None:
    """Return the funding outlook of `pair` now, None without funding information.

    Without settled history the exchange's current funding rate is the forecast's level.
    """
    info = snapshot.funding.get(pair.perp.symbol)
    if info is None or info.interval_hours <= 0:
        return None
    history = snapshot.funding_history.get(pair.perp.symbol, ())
    outlook = _outlook(
        history,
        history_periods,
        info.interest_rate,
        info.interval_hours,
        halflife,
        default_persistence,
        holding_hours,
    )
    if outlook is not None:
        return outlook
    # nothing settled yet (a new listing): the exchange's current rate stands in
    fc = FundingForecast(
        anchor=anchor_rate(info.interest_rate, info.interval_hours),
        level=info.funding_rate,
        persistence=default_persistence,
        interval_hours=info.interval_hours,
        fitted=False,
    )
    settled = settled_stats(history, history_periods, info.interval_hours, holding_hours)
    return _outlook_of(fc, settled, holding_hours)


def carry_value(
    pair: Pair,
    snapshot: MarketSnapshot,
    *,
    notional: Decimal,
    holding_hours: Decimal,
    fees: FeeParams,
    slippage_bps: Decimal,
    history_periods: int,
    halflife: Decimal,
    default_persistence: Decimal,
    outlook: FundingOutlook | None = None,
) -> CarryValue | None:
    """Return the value of holding `pair` now, None without quotes or funding.

    `outlook`, when given, is `funding_outlook` of the same pair, snapshot and parameters
    (worked out already by the caller).
    """
    if not quotes_usable(pair, snapshot):
        return None
    spot_q = snapshot.spot_quotes[pair.spot.symbol]
    perp_q = snapshot.perp_quotes[pair.perp.symbol]
    if outlook is None:
        outlook = funding_outlook(
            pair,
            snapshot,
            holding_hours=holding_hours,
            history_periods=history_periods,
            halflife=halflife,
            default_persistence=default_persistence,
        )
        if outlook is None:
            return None
    entry_basis = carry.perp_basis(perp_q.bid, spot_q.ask)
    exit_basis = carry.perp_basis(perp_q.ask, spot_q.bid)
    mid_basis = carry.perp_basis(perp_q.mid, spot_q.mid)
    leg_fees = leg_taker_fees(fees)
    slip_open, slip_close = open_close_slippage(pair, snapshot, notional, slippage_bps)
    settled = outlook.settled
    return CarryValue(
        pair=pair.key,
        notional=notional,
        forecast=outlook.forecast,
        holding_hours=holding_hours,
        expected_carry=outlook.expected_carry,
        open_cost=leg_fees + slip_open + max(mid_basis - entry_basis, ZERO),
        close_cost=leg_fees + slip_close + max(exit_basis - mid_basis, ZERO),
        entry_basis=entry_basis,
        exit_basis=exit_basis,
        worst_carry=outlook.worst_carry,
        worst_hours=outlook.worst_hours,
        negative_run=settled.negative_run,
        run_loss=settled.run_loss,
        settled_carry=settled.carry,
        price_variance=settled.price_variance,
    )


def quotes_usable(pair: Pair, snapshot: MarketSnapshot) -> bool:
    """Tell whether both legs of `pair` have a quote with positive bid and ask."""
    spot_q = snapshot.spot_quotes.get(pair.spot.symbol)
    perp_q = snapshot.perp_quotes.get(pair.perp.symbol)
    if spot_q is None or perp_q is None:
        return False
    return min(spot_q.bid, spot_q.ask, perp_q.bid, perp_q.ask) > 0


class PricedOnUse:
    """A pair's funding outlook now, and its `CarryValue` (prices, books, costs) worked out
    on the first `value()` call: most evaluations of a held hedge decide on the funding
    alone. Built only where `carry_value` would not be None (`outlook` known, quotes
    usable), so `value()` is never None."""

    __slots__ = ("_price", "_value", "outlook")

    def __init__(
        self, outlook: FundingOutlook, price: Callable[[FundingOutlook], CarryValue | None]
    ) -> None:
        self.outlook = outlook
        self._price = price
        self._value: CarryValue | None = None

    def value(self) -> CarryValue:
        """Return the full `CarryValue` (computed once)."""
        if self._value is None:
            value = self._price(self.outlook)
            if value is None:  # pragma: no cover - excluded by construction
                raise ValueError("PricedOnUse built for a pair carry_value cannot value")
            self._value = value
        return self._value


def leg_taker_fees(fees: FeeParams) -> Decimal:
    """Return the taker fees of one trade of both legs (spot + perpetual), as paid: VIP tier
    and BNB discount applied."""
    paid = fees.effective()
    return paid.spot_taker + paid.futures_taker


def least_round_trip(fees: FeeParams) -> Decimal:
    """Return the least a round trip of both legs can cost: the taker fees to open and to
    close. Slippage and the spreads paid only add to it (each is ≥ 0), so `CarryValue.
    round_trip` is never below this (Decimal rounding is monotonic)."""
    leg_fees = leg_taker_fees(fees)
    return leg_fees + leg_fees


@dataclass(frozen=True, slots=True)
class Settled:
    """What the settled history says, independent of the forecast."""

    negative_run: int  # latest rates negative in a row
    run_loss: Decimal  # −Σ of that run's rates (≥ 0)
    carry: Decimal  # Σ of the rates settled over the last holding (at most `periods`)
    price_variance: Decimal | None = None  # per hour (`log_price_variance`)


MIN_VARIANCE_SAMPLES = 30
"""Fewer settlement-to-settlement mark returns than this: no price variance is estimated."""


def settled_stats(
    history: Sequence[SettledFunding], periods: int, interval: int, holding_hours: Decimal
) -> Settled:
    """Return the negative run, its cost, the carry settled over the last holding and the
    price variance of the marks the window settled at."""
    window = history[-periods:]
    run = funding.trailing_negative(window)
    loss = -sum(map(_RATE, window[len(window) - run :]), ZERO) if run else ZERO
    n = min(len(window), max(int(holding_hours / interval), 1))
    carried = sum(map(_RATE, window[len(window) - n :]), ZERO)
    return Settled(run, loss, carried, log_price_variance(window))


def log_price_variance(history: Sequence[SettledFunding]) -> Decimal | None:
    """Return the variance per hour of the log mark price, Σ ln²(mₖ/mₖ₋₁) / Σ hours, over
    consecutive settlements that both carry a mark; None with fewer than
    `MIN_VARIANCE_SAMPLES` such returns (the mean return is taken as 0: a driftless walk)."""
    squares = 0.0
    hours = 0.0
    samples = 0
    for before, after in itertools.pairwise(history):
        if not before.mark_price or not after.mark_price:
            continue
        step = math.log(float(after.mark_price) / float(before.mark_price))
        squares += step * step
        hours += (after.funding_time - before.funding_time).total_seconds() / 3600
        samples += 1
    if samples < MIN_VARIANCE_SAMPLES or hours <= 0:
        return None
    return Decimal(repr(squares / hours)).quantize(Decimal("1e-12"))


_KEPT: dict[int, tuple[Sequence[SettledFunding], tuple[object, ...], FundingOutlook | None]] = {}
_KEPT_MAX = 512


def _outlook(
    history: Sequence[SettledFunding],
    periods: int,
    interest: Decimal,
    interval: int,
    halflife: Decimal,
    persistence: Decimal,
    holding_hours: Decimal,
) -> FundingOutlook | None:
    """The outlook from `forecast.forecast` and `settled_stats`, None without settled history;
    computed again only when the history changed (once a settlement).

    The market data hands the same history object until a new settlement arrives; the
    object is held with its answer, so its id is never mistaken for another's.
    """
    key = (periods, interest, interval, halflife, persistence, holding_hours)
    kept = _KEPT.get(id(history))
    if kept is not None and kept[0] is history and kept[1] == key:
        return kept[2]
    fc = forecast(
        history[-periods:],
        interest_rate=interest,
        interval_hours=interval,
        halflife=halflife,
        default_persistence=persistence,
    )
    value = None
    if fc is not None:
        settled = settled_stats(history, periods, interval, holding_hours)
        value = _outlook_of(fc, settled, holding_hours)
    if len(_KEPT) >= _KEPT_MAX:
        _KEPT.clear()
    _KEPT[id(history)] = (history, key, value)
    return value


def _outlook_of(fc: FundingForecast, settled: Settled, holding_hours: Decimal) -> FundingOutlook:
    worst, worst_hours = fc.worst_carry(holding_hours)
    return FundingOutlook(fc, fc.carry(holding_hours), worst, worst_hours, settled)
