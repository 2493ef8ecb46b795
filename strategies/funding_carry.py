"""`funding_carry`: hold long spot / short perp where smoothed funding beats costs."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
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
    SettledFunding,
)
from bot.domain.frozen import Fraction, NonNegativeDecimal, PositiveDecimal
from bot.domain.funding import hours_between, trailing_negative
from bot.domain.strategy import StrategyParams
from bot.domain.universe import select_universe
from strategies.allocation import Capacity
from strategies.carry import annualised_basis, hedge_age_hours, perp_basis
from strategies.signals import CarrySignal, carry_signal, quantize_metric

Apr = Annotated[Decimal, Field(ge=-10, le=100)]


class FundingCarryParams(StrategyParams):
    """Tuning of `funding_carry`. APRs and bases are fractions (0.10 = 10% a year)."""

    name: Literal["funding_carry"] = "funding_carry"
    entry_apr: Apr = Decimal("0.10")
    exit_apr: Apr = Decimal("0.03")
    horizon_hours: Annotated[int, Field(ge=1, le=24 * 365)] = 720
    max_entry_basis: NonNegativeDecimal = Decimal("0.0015")
    max_breakeven_hours: PositiveDecimal = Decimal("240")
    negative_periods_to_exit: Annotated[int, Field(ge=1)] = 3
    take_profit_basis: PositiveDecimal = Decimal("0.005")
    max_holding_hours: PositiveDecimal = Decimal("2160")
    rotation_margin_apr: NonNegativeDecimal = Decimal("0.05")
    min_hold_hours: NonNegativeDecimal = Decimal("24")
    cooldown_hours: NonNegativeDecimal = Decimal("24")
    predicted_weight: Fraction = Decimal("0.5")
    ewma_halflife_periods: PositiveDecimal = Decimal("9")
    history_periods: Annotated[int, Field(ge=1, le=1000)] = 21
    assumed_slippage_bps: NonNegativeDecimal = Decimal("2")

    @model_validator(mode="after")
    def _check_hysteresis(self) -> Self:
        if self.exit_apr >= self.entry_apr:
            raise ValueError(
                f"exit_apr = {self.exit_apr}: must be below entry_apr ({self.entry_apr}) "
                "so positions are not opened and closed on the same signal"
            )
        if self.min_hold_hours > self.max_holding_hours:
            raise ValueError(
                f"min_hold_hours = {self.min_hold_hours}: must not exceed "
                f"max_holding_hours ({self.max_holding_hours})"
            )
        return self


class FundingCarry:
    """Hold long spot / short perpetual where smoothed funding beats costs.

    Rules (README, "Strategy: funding_carry"):
    - exits, OPEN hedges only: negative funding for `negative_periods_to_exit` settlements
      (even before `min_hold_hours`); age ≥ `max_holding_hours`; after `min_hold_hours`: the
      basis captured since entry ≥ `take_profit_basis`, smoothed APR < `exit_apr`;
    - entries, universe pairs without an active hedge and out of `cooldown_hours`: net APR >
      `entry_apr`, entry basis ≥ −`max_entry_basis`, break-even ≤ `max_breakeven_hours`, and
      fewer than `negative_periods_to_exit` negative settlements in a row; best net APR
      first, within the sizing limits (hedges in every active state count);
    - rotation, when the limits leave no room: close the OPEN hedge (past `min_hold_hours`)
      with the lowest smoothed APR net of its exit cost and open the best waiting pair when
      the pair's net APR beats it by more than `rotation_margin_apr`.
    Closes come first in the result; capacity they free is used in the same evaluation.
    """

    name: ClassVar[str] = "funding_carry"
    params_model: ClassVar[type[StrategyParams]] = FundingCarryParams

    def evaluate(
        self, snapshot: MarketSnapshot, portfolio: Portfolio, params: FundingCarryParams
    ) -> list[Intent]:
        """Return the closes, then the opens, that this snapshot calls for."""
        now = snapshot.taken_at
        pairs = {p.key: p for p in snapshot.pairs}
        active = portfolio.open_hedges()
        closes: list[Intent] = []
        closing: set[int] = set()
        rotatable: list[tuple[Hedge, CarrySignal]] = []
        for hedge in active:
            if hedge.state is not HedgeState.OPEN:
                continue
            pair = pairs.get(hedge.pair)
            signal = carry_signal(pair, snapshot, params, hedge.target_notional) if pair else None
            history = snapshot.funding_history.get(hedge.perp_symbol, ())
            close = exit_intent(hedge, signal, history, params, now)
            if close is not None:
                closes.append(close)
                closing.add(hedge.id)
            elif signal is not None and hedge_age_hours(hedge, now) >= params.min_hold_hours:
                rotatable.append((hedge, signal))

        capacity = Capacity.of((h for h in active if h.id not in closing), params.sizing)
        waiting: list[tuple[Pair, CarrySignal]] = []
        opens: list[Intent] = []
        for pair, signal in entry_candidates(snapshot, portfolio, params):
            size = capacity.size_for(pair.key, min_notional(pair))
            if size is None:
                waiting.append((pair, signal))
                continue
            capacity.add(pair.key, size)
            opens.append(open_intent(signal, size, "entry", params))

        rotatable.sort(key=lambda hs: forward_apr(hs[1], params))
        for (pair, candidate), (hedge, held) in zip(waiting, rotatable, strict=False):
            gain = candidate.net_apr - forward_apr(held, params)
            if gain <= params.rotation_margin_apr:
                break  # candidates get worse and held hedges better from here on
            capacity.remove(hedge.pair, hedge.sized_notional)
            size = capacity.size_for(pair.key, min_notional(pair))
            if size is None:
                capacity.add(hedge.pair, hedge.sized_notional)
                continue
            capacity.add(pair.key, size)
            closes.append(rotation_close(hedge, held, candidate, gain, params, now))
            opens.append(open_intent(candidate, size, f"rotation from {hedge.pair}", params))
        return closes + opens


def entry_candidates(
    snapshot: MarketSnapshot, portfolio: Portfolio, params: FundingCarryParams
) -> list[tuple[Pair, CarrySignal]]:
    """Return the universe pairs that pass the entry rules, best net APR first.

    Pairs with an active hedge (any state) or closed less than `cooldown_hours` ago are
    skipped. Signals are sized at `sizing.notional_per_hedge`.
    """
    now = snapshot.taken_at
    taken = {h.pair for h in portfolio.open_hedges()}
    size = params.sizing.notional_per_hedge
    found: list[tuple[Pair, CarrySignal]] = []
    for pair in select_universe(snapshot, params.universe):
        if pair.key in taken or cooling_down(pair.key, portfolio, params, now):
            continue
        signal = carry_signal(pair, snapshot, params, size)
        if signal is not None and entry_block(signal, params) is None:
            found.append((pair, signal))
    found.sort(key=lambda ps: ps[1].net_apr, reverse=True)
    return found


def entry_block(signal: CarrySignal, params: FundingCarryParams) -> str | None:
    """Return the first entry rule `signal` fails (a short code), or None when it passes."""
    if signal.negative_run >= params.negative_periods_to_exit:
        return "negative_funding"
    if signal.net_apr <= params.entry_apr:
        return "net_apr"
    if signal.entry_basis < -params.max_entry_basis:
        return "basis"
    if signal.breakeven_hours is None or signal.breakeven_hours > params.max_breakeven_hours:
        return "breakeven"
    return None


def exit_intent(
    hedge: Hedge,
    signal: CarrySignal | None,
    history: Sequence[SettledFunding],
    params: FundingCarryParams,
    now: datetime,
) -> CloseHedge | None:
    """Return the close an OPEN hedge calls for, or None to keep it.

    In order: negative funding for `negative_periods_to_exit` settlements in a row (at any
    age); age ≥ `max_holding_hours`; then, past `min_hold_hours` and with market data:
    captured basis (entry basis − today's exit basis) ≥ `take_profit_basis`; smoothed APR
    < `exit_apr`.
    """
    age = hedge_age_hours(hedge, now)
    negative = trailing_negative(history[-params.history_periods :])
    reason: str | None = None
    take_profit: Decimal | None = None
    if negative >= params.negative_periods_to_exit:
        reason = f"negative_funding: {negative} negative settlements in a row"
    elif age >= params.max_holding_hours:
        reason = f"max_holding: held {age:.1f} h >= {params.max_holding_hours} h"
    elif age < params.min_hold_hours or signal is None:
        return None
    elif (captured := captured_since_entry(hedge, signal)) is not None and (
        captured >= params.take_profit_basis
    ):
        take_profit = captured
        reason = f"take_profit: basis captured {captured:.4%} >= {params.take_profit_basis:.4%}"
    elif signal.smoothed_apr < params.exit_apr:
        reason = f"exit_apr: smoothed APR {signal.smoothed_apr:.2%} < {params.exit_apr:.2%}"
    if reason is None:
        return None
    # The metrics are built only for a close: most evaluations keep the hedge.
    metrics = dict(signal.metrics()) if signal is not None else {}
    metrics["age_hours"] = quantize_metric(age)
    metrics["negative_run"] = Decimal(negative)
    if take_profit is not None:
        metrics["captured_since_entry"] = quantize_metric(take_profit)
    return CloseHedge(hedge_id=hedge.id, reason=reason, metrics=metrics)


def captured_since_entry(hedge: Hedge, signal: CarrySignal) -> Decimal | None:
    """Return entry basis − today's executable exit basis, None without entry prices."""
    if not hedge.entry_spot_price or not hedge.entry_perp_price:
        return None
    entry = perp_basis(hedge.entry_perp_price, hedge.entry_spot_price)
    return entry - signal.exit_basis


def forward_apr(held: CarrySignal, params: FundingCarryParams) -> Decimal:
    """Return what keeping a hedge is worth against switching: smoothed APR − exit cost APR.

    The exit cost (fees and slippage of closing now) is annualised over `horizon_hours`; the
    candidate's own round trip is already inside its net APR.
    """
    return held.smoothed_apr - annualised_basis(held.exit_cost, params.horizon_hours)


def rotation_close(
    hedge: Hedge,
    held: CarrySignal,
    candidate: CarrySignal,
    gain: Decimal,
    params: FundingCarryParams,
    now: datetime,
) -> CloseHedge:
    """Return the close of `hedge` in favour of `candidate`, with both sides' numbers."""
    metrics = dict(held.metrics())
    metrics.update(
        age_hours=quantize_metric(hedge_age_hours(hedge, now)),
        held_forward_apr=quantize_metric(forward_apr(held, params)),
        candidate_net_apr=quantize_metric(candidate.net_apr),
        rotation_gain_apr=quantize_metric(gain),
    )
    return CloseHedge(
        hedge_id=hedge.id,
        reason=(
            f"rotation: {candidate.pair} net APR {candidate.net_apr:.2%} beats "
            f"{hedge.pair} by {gain:.2%} > {params.rotation_margin_apr:.2%}"
        ),
        metrics=metrics,
    )


def open_intent(
    signal: CarrySignal, notional: Decimal, why: str, params: FundingCarryParams
) -> OpenHedge:
    """Return the OpenHedge for `signal` at `notional`, its reason naming the deciding numbers."""
    metrics = signal.metrics()
    metrics["notional"] = notional
    breakeven = signal.breakeven_hours or Decimal(0)
    reason = (
        f"{why}: net APR {signal.net_apr:.2%} > {params.entry_apr:.2%} "
        f"(smoothed {signal.smoothed_apr:.2%}, basis {signal.entry_basis * 10000:.1f} bps, "
        f"break-even {breakeven:.0f} h)"
    )
    return OpenHedge(pair=signal.pair, notional=notional, reason=reason, metrics=metrics)


def cooling_down(
    pair: str, portfolio: Portfolio, params: FundingCarryParams, now: datetime
) -> bool:
    """Tell whether `pair` was closed less than `cooldown_hours` ago."""
    closed = portfolio.last_closed_at.get(pair)
    return closed is not None and hours_between(closed, now) < params.cooldown_hours


def min_notional(pair: Pair) -> Decimal:
    """Return the smallest notional both legs accept."""
    return max(pair.spot.min_notional, pair.perp.min_notional)
