"""`expected_carry`: hold long spot / short perp while the forecast carry pays for the trades.

One expected-value rule instead of APR thresholds (README, "Strategy: expected_carry"). With
the funding forecast of `strategies.forecast` and the costs of `strategies.carry_value`, in
fractions of notional, H = min(`expected_holding_hours`, `max_holding_hours`):

- **enter** a pair when forecast carry over H − round trip (both legs' fees, slippage and
  spreads, to open and to close) > `entry_margin`, and no negative funding is expected
  ahead (while any is, waiting to enter costs nothing and saves it: the round trip is the
  same later);
- **stay** while the expected carry ahead beats closing now: close only when the expected
  negative funding ahead (the lowest cumulative forecast over any horizon up to H) exceeds
  what closing costs — the exit now and the re-entry afterwards (a round trip) — plus
  `exit_margin`, *and* the settled funding confirms it: the current run of negative
  settlements has already cost a round trip. A dip that does not pay for the round trip,
  or a forecast the settlements do not bear out, is sat through;
- **rotate** (when the sizing limits leave no room) when a waiting pair's forecast carry
  over H beats the held one's by more than four legs (closing the held hedge, opening the
  new one) plus `rotation_margin`, and the funding settled over the last H says the same
  (the forecast's error is as large as the differences between pairs);
- **constant notional**: a held hedge whose short is worth more than `rebalance_band` b
  above `notional_per_hedge` N (the price rose) is cut back to N (1 + b/2) — half the band:
  the same tolerance for a third less turnover than returning to N — so the short's losses
  in a rally are realised bit by bit (and its margin stays sufficient) instead of growing
  with the price; one worth more than the band below N is grown back, to N (1 − b/2), only
  when the pair passes the entry test now with its carry valued over the added notional's
  expected life, before a rally cuts it back (`resize_life_hours`, from the settled marks'
  variance), by both witnesses: the forecast and the funding settled over as long a past;
- **hard exits** whatever the forecast: `negative_periods_to_exit` negative settlements in
  a row; age ≥ `max_holding_hours` unless its forecast carry over H is still positive
  (closing and reopening it would pay four legs for nothing); liquidation distance and risk limits
  are the risk gate's. `min_hold_hours` protects a new hedge from the forecast exits and
  rotation.
Hysteresis comes from the costs, not from two thresholds. Closes come first in the result.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from functools import partial
from typing import Annotated, ClassVar, Literal, Self

from pydantic import Field, model_validator

from bot.domain import (
    CloseHedge,
    Hedge,
    HedgeState,
    Intent,
    MarketSnapshot,
    OpenHedge,
    Pair,
    Portfolio,
    ResizeHedge,
    SettledFunding,
)
from bot.domain.frozen import NonNegativeDecimal, PositiveDecimal
from bot.domain.funding import hours_between, trailing_negative
from bot.domain.strategy import StrategyParams
from bot.domain.universe import select_universe
from strategies.allocation import Capacity
from strategies.carry import hedge_age_hours
from strategies.carry_value import (
    CarryValue,
    FundingOutlook,
    PricedOnUse,
    carry_value,
    funding_outlook,
    least_round_trip,
    quotes_usable,
)
from strategies.signals import quantize_metric

Persistence = Annotated[Decimal, Field(ge=0, le=1)]


class ExpectedCarryParams(StrategyParams):
    """Tuning of `expected_carry`. Margins are fractions of notional (0.001 = 0.1%)."""

    name: Literal["expected_carry"] = "expected_carry"
    expected_holding_hours: PositiveDecimal = Decimal("2160")
    entry_margin: NonNegativeDecimal = Decimal("0.002")
    exit_margin: NonNegativeDecimal = Decimal("0")
    rotation_margin: NonNegativeDecimal = Decimal("0")
    ewma_halflife_periods: PositiveDecimal = Decimal("21")
    history_periods: Annotated[int, Field(ge=1, le=1000)] = 500
    default_persistence: Persistence = Decimal("0.99")
    max_entry_basis: NonNegativeDecimal = Decimal("0.0015")
    negative_periods_to_exit: Annotated[int, Field(ge=1)] = 63
    max_holding_hours: PositiveDecimal = Decimal("8760")
    min_hold_hours: NonNegativeDecimal = Decimal("168")
    cooldown_hours: NonNegativeDecimal = Decimal("24")
    assumed_slippage_bps: NonNegativeDecimal = Decimal("2")
    rebalance_band: Annotated[Decimal, Field(gt=0, le=10)] = Decimal("0.2")

    @model_validator(mode="after")
    def _check_holding(self) -> Self:
        if self.min_hold_hours > self.max_holding_hours:
            raise ValueError(
                f"min_hold_hours = {self.min_hold_hours}: must not exceed "
                f"max_holding_hours ({self.max_holding_hours})"
            )
        return self

    @property
    def holding_hours(self) -> Decimal:
        """The holding the decisions value: H = min(expected, max holding)."""
        return min(self.expected_holding_hours, self.max_holding_hours)


class ExpectedCarry:
    """Enter, stay and rotate by expected value net of costs (see the module docstring)."""

    name: ClassVar[str] = "expected_carry"
    params_model: ClassVar[type[StrategyParams]] = ExpectedCarryParams

    def evaluate(
        self, snapshot: MarketSnapshot, portfolio: Portfolio, params: ExpectedCarryParams
    ) -> list[Intent]:
        """Return the closes, then the opens, that this snapshot calls for."""
        now = snapshot.taken_at
        pairs = {p.key: p for p in snapshot.pairs}
        active = portfolio.open_hedges()
        closes: list[Intent] = []
        resizes: list[Intent] = []
        closing: set[int] = set()
        rotatable: list[tuple[Hedge, PricedOnUse]] = []
        for hedge in active:
            if hedge.state is not HedgeState.OPEN:
                continue
            pair = pairs.get(hedge.pair)
            held = held_value(pair, snapshot, params, hedge.target_notional) if pair else None
            close = exit_intent(hedge, held, snapshot, params, now)
            if close is not None:
                closes.append(close)
                closing.add(hedge.id)
                continue
            resize = rebalance_intent(hedge, snapshot, params, held)
            if resize is not None:
                resizes.append(resize)
            elif held is not None and hedge_age_hours(hedge, now) >= params.min_hold_hours:
                rotatable.append((hedge, held))

        capacity = Capacity.of((h for h in active if h.id not in closing), params.sizing)
        waiting: list[tuple[Pair, CarryValue]] = []
        opens: list[Intent] = []
        for pair, value in entry_candidates(snapshot, portfolio, params):
            size = capacity.size_for(pair.key, min_notional(pair))
            if size is None:
                waiting.append((pair, value))
                continue
            capacity.add(pair.key, size)
            opens.append(open_intent(value, size, "entry", params))

        rotatable.sort(key=lambda hv: hv[1].outlook.expected_carry)
        for (pair, candidate), (hedge, priced) in zip(waiting, rotatable, strict=False):
            kept = priced.value()
            gain = rotation_gain(candidate, kept)
            if gain <= params.rotation_margin:
                break  # candidates get worse and held hedges better from here on
            if settled_rotation_gain(candidate, kept) <= params.rotation_margin:
                continue  # the settled funding does not bear the forecast out
            capacity.remove(hedge.pair, hedge.sized_notional)
            size = capacity.size_for(pair.key, min_notional(pair))
            if size is None:
                capacity.add(hedge.pair, hedge.sized_notional)
                continue
            capacity.add(pair.key, size)
            closes.append(rotation_close(hedge, kept, candidate, gain, params, now))
            opens.append(open_intent(candidate, size, f"rotation from {hedge.pair}", params))
        return closes + resizes + opens


def rebalance_intent(
    hedge: Hedge,
    snapshot: MarketSnapshot,
    params: ExpectedCarryParams,
    value: PricedOnUse | None = None,
) -> ResizeHedge | None:
    """Return the resize back to `notional_per_hedge` of a hedge that drifted out of the band.

    A hedge grown past the band is always cut back (its margin, and the notional its APR is
    counted on). Growing a shrunk one is opening more notional: only when the pair passes the
    entry test now (`value`) with the carry valued over the added notional's expected life
    (`resize_life_hours`), not over the whole holding (a grow-back that the next rally undoes
    within days earns days of funding for two legs of fees each way), and by both witnesses:
    the forecast's carry over that life and the funding settled over as long a past must
    each pay the round trip.
    """
    quote = snapshot.perp_quotes.get(hedge.perp_symbol)
    target = params.sizing.notional_per_hedge
    if quote is None or quote.mid <= 0 or hedge.perp_quantity <= 0:
        return None
    held = hedge.perp_quantity * quote.mid
    drift = held / target - 1
    if abs(drift) <= params.rebalance_band:
        return None
    band = params.rebalance_band
    # Back to half the band, not to the target: the same tolerance for a third less turnover.
    resized = (target * (1 + band / 2 if drift > 0 else 1 - band / 2)).quantize(Decimal("0.01"))
    metrics = {
        "held_notional": quantize_metric(held),
        "drift": quantize_metric(drift),
        "resized_notional": quantize_metric(resized),
    }
    reason = (
        f"rebalance: short worth {held:.2f} USDT, {drift:+.2%} off {target} "
        f"(band {band:.0%}), back to {resized:.2f}"
    )
    if drift < 0:
        if value is None or funding_rules_out_grow(value.outlook, params):
            return None  # not worth pricing: the funding alone fails `grow_block`
        priced = value.value()
        life = resize_life_hours(priced, params, -drift)
        net = priced.forecast.carry(life) - priced.round_trip
        history = snapshot.funding_history.get(hedge.perp_symbol, ())[-params.history_periods :]
        settled_net = settled_carry_over(history, life, priced.forecast.interval_hours)
        settled_net -= priced.round_trip
        if grow_block(priced, params, net, settled_net) is not None:
            return None
        metrics |= priced.metrics() | {
            "resize_life_hours": quantize_metric(life),
            "resize_carry": quantize_metric(priced.forecast.carry(life)),
            "resize_net": quantize_metric(net),
            "resize_settled_net": quantize_metric(settled_net),
        }
        metrics["notional"] = resized
        reason += (
            f"; the added notional's carry over its expected life of {life:.0f} h - round "
            f"trip {priced.round_trip:.4%}: forecast {net:.4%}, settled {settled_net:.4%}, "
            f"both > {params.entry_margin:.4%}"
        )
    return ResizeHedge(hedge_id=hedge.id, notional=resized, reason=reason, metrics=metrics)


def resize_life_hours(
    value: CarryValue, params: ExpectedCarryParams, shortfall: Decimal
) -> Decimal:
    """Return how long notional added back to a hedge `shortfall` (a fraction) below target
    is expected to stay: capped by the holding H.

    The log price as a driftless walk of variance σ² per hour (`value.price_variance`); the
    grow-back leaves the hedge half the band b below target. From there a rise by 1.5 b
    (to the band above) cuts the addition back, while a fall by b/2 (to the band below)
    leads to another grow-back instead: each such exit takes (b/2)(1.5 b)/σ² hours on
    average and is the rise with probability 1/4, so the addition lasts 3 b²/σ² hours.
    Without a variance (no marks settled) it is valued over H, as an entry. `shortfall`
    does not change it (the grow-back always ends half the band below target).
    """
    variance = value.price_variance
    horizon = params.holding_hours
    if variance is None or variance <= 0 or shortfall <= 0:
        return horizon
    band = params.rebalance_band
    return min(horizon, 3 * band * band / variance)


def settled_carry_over(
    history: Sequence[SettledFunding], hours: Decimal, interval_hours: int
) -> Decimal:
    """Return the funding settled over the last `hours` (as long a past as the future it
    witnesses for): the sum of the latest rates, scaled up to `hours` when fewer settled."""
    periods = max(int(hours / max(interval_hours, 1)), 1)
    window = history[-periods:]
    if not window:
        return Decimal(0)
    total = sum((r.rate for r in window), Decimal(0))
    return total * periods / len(window) if len(window) < periods else total


def funding_rules_out_grow(outlook: FundingOutlook, params: ExpectedCarryParams) -> bool:
    """Tell whether `grow_block` fails whatever the prices: the run of negative settlements
    (`entry_block`'s first rule, which `grow_block` returns as it is). The entry bound of
    `funding_rules_out_entry` does not apply: a grow-back is judged over the addition's
    expected life, not over H, and a failed net carry over H does not reach the dip rule."""
    return outlook.settled.negative_run >= params.negative_periods_to_exit


def grow_block(
    value: CarryValue, params: ExpectedCarryParams, net: Decimal, settled_net: Decimal
) -> str | None:
    """Return the first entry rule a grow-back fails, None when it passes: the entry's rules,
    with the net carry judged by two witnesses over the addition's expected life — `net`
    (the forecast's carry minus the round trip) and `settled_net` (the same at the rate
    settled over as long a past) must both beat `entry_margin`."""
    block = entry_block(value, params)
    if block not in (None, "net_carry"):
        return block
    return "net_carry" if min(net, settled_net) <= params.entry_margin else None


def value_of(
    pair: Pair,
    snapshot: MarketSnapshot,
    params: ExpectedCarryParams,
    notional: Decimal,
    outlook: FundingOutlook | None = None,
) -> CarryValue | None:
    """Return `carry_value` of `pair` with `params`' costs, forecast and holding (`outlook`:
    its `outlook_of`, when the caller has it already)."""
    return carry_value(
        pair,
        snapshot,
        notional=notional,
        holding_hours=params.holding_hours,
        fees=params.fees,
        slippage_bps=params.assumed_slippage_bps,
        history_periods=params.history_periods,
        halflife=params.ewma_halflife_periods,
        default_persistence=params.default_persistence,
        outlook=outlook,
    )


def held_value(
    pair: Pair, snapshot: MarketSnapshot, params: ExpectedCarryParams, notional: Decimal
) -> PricedOnUse | None:
    """Return a held hedge's value, priced on first use; None where `value_of` is None."""
    outlook = outlook_of(pair, snapshot, params)
    if outlook is None or not quotes_usable(pair, snapshot):
        return None
    return PricedOnUse(outlook, partial(value_of, pair, snapshot, params, notional))


def outlook_of(
    pair: Pair, snapshot: MarketSnapshot, params: ExpectedCarryParams
) -> FundingOutlook | None:
    """Return the funding outlook of `pair` with `params`' forecast and holding."""
    return funding_outlook(
        pair,
        snapshot,
        holding_hours=params.holding_hours,
        history_periods=params.history_periods,
        halflife=params.ewma_halflife_periods,
        default_persistence=params.default_persistence,
    )


def worth_exiting(value: CarryValue, params: ExpectedCarryParams) -> bool:
    """Tell whether the negative funding ahead pays for a round trip (exit now, re-enter)."""
    return value.exit_saving > value.round_trip + params.exit_margin


def funding_rules_out_exit(outlook: FundingOutlook, params: ExpectedCarryParams) -> bool:
    """Tell whether `worth_exiting` fails whatever the prices: the negative funding ahead
    does not beat the least round trip (the taker fees) plus `exit_margin`."""
    return -outlook.worst_carry <= least_round_trip(params.fees) + params.exit_margin


def confirmed_by_settlements(value: CarryValue) -> bool:
    """Tell whether the settled funding bears out an expected loss: the current run of
    negative settlements has already cost at least a round trip."""
    return value.run_loss >= value.round_trip


def worth_holding_on(outlook: FundingOutlook, params: ExpectedCarryParams) -> bool:
    """Tell whether a hedge past `max_holding_hours` is worth renewing: its forecast carry
    over H is positive (its open is paid and its close is due whenever it closes, so keeping
    it beats closing now exactly then) and no run of negative settlements forces an exit.
    Reopening requires the full entry test, so a renewal that lapses is not undone a day
    later."""
    return (
        outlook.settled.negative_run < params.negative_periods_to_exit
        and outlook.expected_carry > 0
    )


def entry_block(value: CarryValue, params: ExpectedCarryParams) -> str | None:
    """Return the first entry rule `value` fails (a short code), or None when it passes."""
    if value.negative_run >= params.negative_periods_to_exit:
        return "negative_funding"
    if value.net_entry <= params.entry_margin:
        return "net_carry"
    if value.worst_carry < 0:
        return "dip_ahead"
    if value.entry_basis < -params.max_entry_basis:
        return "basis"
    return None


def funding_rules_out_entry(outlook: FundingOutlook, params: ExpectedCarryParams) -> bool:
    """Tell whether the funding alone fails `entry_block` whatever the prices: the run of
    negative settlements, a dip ahead, or a forecast carry that does not beat the least
    round trip (the taker fees; slippage and spreads only add) by `entry_margin`. Such a
    pair is not priced at all (`entry_candidates`)."""
    return (
        outlook.settled.negative_run >= params.negative_periods_to_exit
        or outlook.worst_carry < 0
        or outlook.expected_carry - least_round_trip(params.fees) <= params.entry_margin
    )


def entry_candidates(
    snapshot: MarketSnapshot, portfolio: Portfolio, params: ExpectedCarryParams
) -> list[tuple[Pair, CarryValue]]:
    """Return the universe pairs that pass the entry rules, best net carry first."""
    now = snapshot.taken_at
    taken = {h.pair for h in portfolio.open_hedges()}
    size = params.sizing.notional_per_hedge
    found: list[tuple[Pair, CarryValue]] = []
    for pair in select_universe(snapshot, params.universe):
        closed = portfolio.last_closed_at.get(pair.key)
        if pair.key in taken or (
            closed is not None and hours_between(closed, now) < params.cooldown_hours
        ):
            continue
        outlook = outlook_of(pair, snapshot, params)
        if outlook is None or funding_rules_out_entry(outlook, params):
            continue
        value = value_of(pair, snapshot, params, size, outlook)
        if value is not None and entry_block(value, params) is None:
            found.append((pair, value))
    found.sort(key=lambda pv: pv[1].net_entry, reverse=True)
    return found


def exit_intent(
    hedge: Hedge,
    value: PricedOnUse | None,
    snapshot: MarketSnapshot,
    params: ExpectedCarryParams,
    now: datetime,
) -> CloseHedge | None:
    """Return the close an OPEN hedge calls for, or None to keep it.

    In order: `negative_periods_to_exit` negative settlements in a row (at any age); age ≥
    `max_holding_hours` unless its forecast carry over H is still positive; past `min_hold_hours`
    and with a value: the negative funding ahead pays for a round trip plus `exit_margin`
    and the current run of negative settlements has already cost a round trip. The hedge is
    priced only when the funding leaves an exit possible, or to record a close's numbers.
    """
    age = hedge_age_hours(hedge, now)
    history = snapshot.funding_history.get(hedge.perp_symbol, ())
    negative = trailing_negative(history[-params.negative_periods_to_exit :])
    if negative >= params.negative_periods_to_exit:
        reason = f"negative_funding: {negative} negative settlements in a row"
    elif age >= params.max_holding_hours and (
        value is None or not worth_holding_on(value.outlook, params)
    ):
        reason = f"max_holding: held {age:.1f} h >= {params.max_holding_hours} h"
    elif (
        age < params.min_hold_hours
        or value is None
        or funding_rules_out_exit(value.outlook, params)
    ):
        return None
    elif worth_exiting(full := value.value(), params) and confirmed_by_settlements(full):
        reason = (
            f"expected_loss: forecast funding {full.worst_carry:.4%} over the next "
            f"{full.worst_hours:.0f} h costs more than a round trip "
            f"({full.round_trip:.4%}) + margin {params.exit_margin:.4%}, and the last "
            f"{full.negative_run} negative settlements cost {full.run_loss:.4%}"
        )
    else:
        return None
    metrics = value.value().metrics() if value is not None else {}
    metrics["age_hours"] = quantize_metric(age)
    metrics["negative_run"] = Decimal(negative)
    return CloseHedge(hedge_id=hedge.id, reason=reason, metrics=metrics)


def rotation_gain(candidate: CarryValue, held: CarryValue) -> Decimal:
    """Return what switching is worth: the candidate's carry over H minus the held one's,
    minus four legs (the held hedge's close now and the candidate's open)."""
    return candidate.expected_carry - held.expected_carry - held.close_cost - candidate.open_cost


def settled_rotation_gain(candidate: CarryValue, held: CarryValue) -> Decimal:
    """Return the same on the funding settled over the last H instead of the forecast."""
    return candidate.settled_carry - held.settled_carry - held.close_cost - candidate.open_cost


def rotation_close(
    hedge: Hedge,
    held: CarryValue,
    candidate: CarryValue,
    gain: Decimal,
    params: ExpectedCarryParams,
    now: datetime,
) -> CloseHedge:
    """Return the close of `hedge` in favour of `candidate`, with both sides' numbers."""
    metrics = held.metrics()
    metrics.update(
        age_hours=quantize_metric(hedge_age_hours(hedge, now)),
        candidate_expected_carry=quantize_metric(candidate.expected_carry),
        candidate_open_cost=quantize_metric(candidate.open_cost),
        rotation_gain=quantize_metric(gain),
        candidate_settled_carry=quantize_metric(candidate.settled_carry),
        settled_rotation_gain=quantize_metric(settled_rotation_gain(candidate, held)),
    )
    return CloseHedge(
        hedge_id=hedge.id,
        reason=(
            f"rotation: {candidate.pair} forecast carry {candidate.expected_carry:.4%} over "
            f"{params.holding_hours:.0f} h beats {hedge.pair}'s {held.expected_carry:.4%} by "
            f"{gain:.4%} after four legs > {params.rotation_margin:.4%} (settled over the "
            f"last {params.holding_hours:.0f} h: {settled_rotation_gain(candidate, held):.4%})"
        ),
        metrics=metrics,
    )


def open_intent(
    value: CarryValue, notional: Decimal, why: str, params: ExpectedCarryParams
) -> OpenHedge:
    """Return the OpenHedge for `value` at `notional`, its reason naming the deciding numbers."""
    metrics = value.metrics()
    metrics["notional"] = notional
    reason = (
        f"{why}: forecast carry {value.expected_carry:.4%} over {value.holding_hours:.0f} h "
        f"({value.forecast.mean_apr(value.holding_hours):.2%} APR) - round trip "
        f"{value.round_trip:.4%} = {value.net_entry:.4%} > {params.entry_margin:.4%}"
    )
    return OpenHedge(pair=value.pair, notional=notional, reason=reason, metrics=metrics)


def min_notional(pair: Pair) -> Decimal:
    """Return the smallest notional both legs accept."""
    return max(pair.spot.min_notional, pair.perp.min_notional)
