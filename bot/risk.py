"""The risk gate between strategy and executor, and the trading state (kill switch).

`RiskGate.decide` is pure: it takes the strategy's intents and a `RiskView` of the bot's
exposure and returns one decision per intent, in order (an accepted open counts toward the
limits of the intents after it, and an accepted close no longer does: closes are carried out
first). The limits are the ones the strategy sizes within (`[risk]`, one home for each).
`RiskGate.protect` returns the actions the gate itself requires (shrink a short near
liquidation, rebalance legs that drifted). `review` records every decision, accepted or
denied, as a ledger event with its inputs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from bot.config import ExchangeConfig, RiskConfig
from bot.domain import (
    CloseHedge,
    Event,
    EventSink,
    Hedge,
    HedgeState,
    Intent,
    MarketSnapshot,
    OpenHedge,
    Pair,
    Position,
    ResizeHedge,
    RollHedge,
    Severity,
)
from bot.domain.ledger import TradingState
from bot.execution.sizing import leg_correction

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AddMargin:
    """Move `amount` USDT from the spot to the futures wallet for the hedge's short."""

    hedge_id: int
    amount: Decimal
    reason: str


@dataclass(frozen=True, slots=True)
class Rebalance:
    """Bring the two legs of a hedge back to the same quantity."""

    hedge_id: int
    reason: str


ProtectiveAction = ResizeHedge | AddMargin | Rebalance


@dataclass(frozen=True, slots=True)
class RiskView:
    """What the gate looks at. `prices` maps a pair key (spot symbol) to its price in USDT."""

    now: datetime
    snapshot_at: datetime | None
    trading: TradingState
    hedges: Sequence[Hedge]
    positions: Mapping[str, Position] = field(default_factory=dict)
    prices: Mapping[str, Decimal] = field(default_factory=dict)
    leverage: int = 1
    daily_pnl: Decimal = Decimal(0)
    step_sizes: Mapping[str, Decimal] = field(default_factory=dict)
    # The pairs by key and the spot fee taken in the base asset: a leg difference no order
    # could trade away (below min quantity / min notional) is within tolerance.
    pairs: Mapping[str, Pair] = field(default_factory=dict)
    spot_fee_in_base: Decimal = Decimal(0)
    # Pairs cooling down after a failed entry (key "*": every pair), with the reason.
    entry_blocks: Mapping[str, str] = field(default_factory=dict)
    snapshot: MarketSnapshot | None = None

    @property
    def data_age_seconds(self) -> float | None:
        if self.snapshot_at is None:
            return None
        return (self.now - self.snapshot_at).total_seconds()

    def data_age_for(self, pair: str) -> float | None:
        """Return the age of `pair`'s market data: the snapshot's, or older if the exchange
        stamped the pair's quotes or funding earlier (their timestamps are the older of the
        exchange's clock-corrected time and the local receipt)."""
        snap = self.snapshot
        if self.snapshot_at is None or snap is None:
            return self.data_age_seconds
        oldest = self.snapshot_at
        found = snap.pair(pair)
        if found is not None:
            for data in (
                snap.spot_quotes.get(found.spot.symbol),
                snap.perp_quotes.get(found.perp.symbol),
                snap.funding.get(found.perp.symbol),
            ):
                if data is not None and data.timestamp < oldest:
                    oldest = data.timestamp
        return (self.now - oldest).total_seconds()

    def active_hedges(self) -> list[Hedge]:
        return [h for h in self.hedges if h.state.is_active]


@dataclass(frozen=True, slots=True)
class RiskDecision:
    intent: Intent
    accepted: bool
    reason: str
    inputs: Mapping[str, str]


class RiskGate:
    """Hard limits from `[risk]`, enforced whatever the strategy asks for."""

    def __init__(
        self,
        limits: RiskConfig,
        exchange: ExchangeConfig,
        *,
        entry_gate: Callable[[str], str | None] | None = None,
    ) -> None:
        self.limits = limits
        self.leverage = exchange.leverage
        # Reason no new exposure may be taken on a pair now (streams, maintenance), or None.
        self.entry_gate = entry_gate

    # --- decisions ----------------------------------------------------------------------
    def decide(self, intents: Sequence[Intent], view: RiskView) -> list[RiskDecision]:
        """Return one decision per intent, applying accepted opens and closes to later checks."""
        notional_by_pair = _notional_by_pair(view.active_hedges())
        open_count = len(view.active_hedges())
        closing: set[int] = set()
        decisions: list[RiskDecision] = []
        for intent in intents:
            decision = self._decide_one(intent, view, notional_by_pair, open_count, closing)
            decisions.append(decision)
            if decision.accepted and isinstance(intent, OpenHedge):
                notional_by_pair[intent.pair] = notional_by_pair.get(intent.pair, Decimal(0)) + (
                    intent.notional
                )
                open_count += 1
            elif decision.accepted and isinstance(intent, CloseHedge):
                closing.add(intent.hedge_id)
                # Closes run before opens: what a close frees counts for the opens after it,
                # as the strategy sized them (a rotation).
                closed = _find(view, intent.hedge_id)
                if closed is not None:
                    notional_by_pair[closed.pair] -= closed.sized_notional
                    open_count -= 1
            elif decision.accepted and isinstance(intent, ResizeHedge):
                hedge = _find(view, intent.hedge_id)
                if hedge is not None:
                    # Only growth past what the hedge was opened for counts against the
                    # limits (a resize within the strategy's band moves the short around it).
                    notional_by_pair[hedge.pair] += max(
                        intent.notional - hedge.sized_notional, Decimal(0)
                    )
        return decisions

    def _decide_one(
        self,
        intent: Intent,
        view: RiskView,
        notional_by_pair: dict[str, Decimal],
        open_count: int,
        closing: set[int],
    ) -> RiskDecision:
        inputs: dict[str, str] = {"trading_state": view.trading.value}
        if view.trading is TradingState.HALTED:
            return RiskDecision(intent, False, "trading is HALTED: no new orders", inputs)
        if isinstance(intent, CloseHedge):
            return self._decide_close(intent, view, inputs, closing)
        if isinstance(intent, ResizeHedge):
            hedge = _find(view, intent.hedge_id)
            if hedge is None or hedge.state is not HedgeState.OPEN:
                return RiskDecision(intent, False, "hedge is not OPEN", inputs)
            held = _held_notional(hedge, view)
            inputs |= {
                "current_notional": str(hedge.target_notional),
                "new_notional": str(intent.notional),
                "held_notional": "none" if held is None else f"{held:.2f}",
            }
            if intent.notional <= hedge.target_notional:
                return RiskDecision(intent, True, "reduces exposure", inputs)
            if held is not None and intent.notional <= held:
                # The short grew with the price: cutting it back part of the way reduces
                # what is held, though it stays above the notional recorded at the last trade.
                return RiskDecision(intent, True, "reduces the short held", inputs)
            # Growing back within what the hedge was opened for adds nothing to the limits
            # (they count it at that notional already); the other checks still apply.
            delta = max(
                intent.notional - max(hedge.target_notional, hedge.sized_notional), Decimal(0)
            )
            return self._decide_increase(
                intent,
                hedge.pair,
                delta,
                intent.notional,
                view,
                notional_by_pair,
                open_count,
                inputs,
                new_hedge=False,
            )
        if isinstance(intent, RollHedge):
            return self._decide_roll(intent, view, inputs, closing)
        return self._decide_increase(
            intent,
            intent.pair,
            intent.notional,
            intent.notional,
            view,
            notional_by_pair,
            open_count,
            inputs,
            new_hedge=True,
        )

    def _decide_roll(
        self, intent: RollHedge, view: RiskView, inputs: dict[str, str], closing: set[int]
    ) -> RiskDecision:
        """A roll keeps the hedge's spot and exposure; it trades two futures orders, so it
        needs ACTIVE trading and fresh data, like an entry, but no exposure limit applies."""
        hedge = _find(view, intent.hedge_id)
        if hedge is None or hedge.state is not HedgeState.OPEN or intent.hedge_id in closing:
            return RiskDecision(intent, False, f"hedge {intent.hedge_id} is not OPEN", inputs)
        age = view.data_age_for(hedge.pair)
        inputs |= {
            "pair": hedge.pair,
            "from": hedge.perp_symbol,
            "to": intent.future_symbol,
            "data_age_seconds": "none" if age is None else f"{age:.3f}",
        }
        if view.trading is not TradingState.ACTIVE:
            reason = f"trading is {view.trading.value.upper()}: only closes allowed"
            return RiskDecision(intent, False, reason, inputs)
        if age is None or age > self.limits.max_data_age_seconds:
            reason = (
                f"market data is stale ({inputs['data_age_seconds']}s > "
                f"max_data_age_seconds {self.limits.max_data_age_seconds:g})"
            )
            return RiskDecision(intent, False, reason, inputs)
        blocked = self.entry_gate(hedge.pair) if self.entry_gate is not None else None
        if blocked is not None:
            return RiskDecision(intent, False, blocked, inputs)
        return RiskDecision(intent, True, "a roll keeps the hedge's exposure", inputs)

    def _decide_close(
        self, intent: CloseHedge, view: RiskView, inputs: dict[str, str], closing: set[int]
    ) -> RiskDecision:
        hedge = _find(view, intent.hedge_id)
        if hedge is None:
            return RiskDecision(intent, False, f"hedge {intent.hedge_id} is not active", inputs)
        if hedge.state is not HedgeState.OPEN:
            return RiskDecision(
                intent, False, f"hedge is {hedge.state.value.upper()}, not OPEN", inputs
            )
        if intent.hedge_id in closing:
            return RiskDecision(intent, False, "close already accepted this cycle", inputs)
        return RiskDecision(intent, True, "closing reduces exposure", inputs)

    def _decide_increase(
        self,
        intent: Intent,
        pair: str,
        added: Decimal,
        hedge_notional: Decimal,
        view: RiskView,
        notional_by_pair: Mapping[str, Decimal],
        open_count: int,
        inputs: dict[str, str],
        *,
        new_hedge: bool,
    ) -> RiskDecision:
        lim = self.limits
        total = sum(notional_by_pair.values(), Decimal(0))
        pair_total = notional_by_pair.get(pair, Decimal(0))
        age = view.data_age_for(pair)
        inputs |= {
            "pair": pair,
            "notional": str(hedge_notional),
            "pair_notional": str(pair_total),
            "total_notional": str(total),
            "open_hedges": str(open_count),
            "data_age_seconds": "none" if age is None else f"{age:.3f}",
            "leverage": str(self.leverage),
            "daily_pnl": str(view.daily_pnl),
        }
        checks: list[tuple[bool, str]] = [
            (
                view.trading is TradingState.ACTIVE,
                f"trading is {view.trading.value.upper()}: only closes allowed",
            ),
            (
                age is not None and age <= lim.max_data_age_seconds,
                f"market data is stale ({inputs['data_age_seconds']}s > "
                f"max_data_age_seconds {lim.max_data_age_seconds:g})",
            ),
            (
                view.daily_pnl > -lim.daily_loss_limit,
                f"daily loss {-view.daily_pnl} reached daily_loss_limit {lim.daily_loss_limit}",
            ),
            (
                self.leverage <= lim.max_leverage,
                f"leverage {self.leverage} exceeds max_leverage {lim.max_leverage}",
            ),
            (
                hedge_notional <= lim.max_notional_per_hedge,
                f"notional {hedge_notional} exceeds max_notional_per_hedge "
                f"{lim.max_notional_per_hedge}",
            ),
            (
                pair_total + added <= lim.max_notional_per_symbol,
                f"{pair} notional {pair_total + added} would exceed max_notional_per_symbol "
                f"{lim.max_notional_per_symbol}",
            ),
            (
                total + added <= lim.max_total_notional,
                f"total notional {total + added} would exceed max_total_notional "
                f"{lim.max_total_notional}",
            ),
            (
                not new_hedge or open_count < lim.max_open_hedges,
                f"{open_count} open hedges: max_open_hedges {lim.max_open_hedges} reached",
            ),
            (
                not new_hedge or not _in_flight(view, pair),
                f"a hedge on {pair} is still opening, closing or unwinding",
            ),
            _entry_block(pair, view, new_hedge=new_hedge),
        ]
        delta_ok, delta_reason = self._delta_ok(pair, view)
        checks.append((delta_ok, delta_reason))
        blocked = self.entry_gate(pair) if self.entry_gate is not None else None
        if blocked is not None:
            inputs["entry_gate"] = blocked
        checks.append((blocked is None, blocked or ""))
        for ok, reason in checks:
            if not ok:
                return RiskDecision(intent, False, reason, inputs)
        return RiskDecision(intent, True, "within limits", inputs)

    def _delta_ok(self, pair: str, view: RiskView) -> tuple[bool, str]:
        base = pair.split("/")[0]
        delta = net_delta_by_base(view.active_hedges()).get(base, Decimal(0))
        price = view.prices.get(pair)
        cap_base = self.limits.max_net_delta_base.get(base)
        if cap_base is not None and abs(delta) > cap_base:
            return False, f"{base} net delta {delta} exceeds max_net_delta_base {cap_base}"
        if price is not None and abs(delta) * price > self.limits.max_net_delta_usdt:
            return False, (
                f"{base} net delta {delta} ({abs(delta) * price:.2f} USDT) exceeds "
                f"max_net_delta_usdt {self.limits.max_net_delta_usdt}"
            )
        return True, "net delta within limits"

    # --- protection ---------------------------------------------------------------------
    def protect(self, view: RiskView) -> list[ProtectiveAction]:
        """Return the actions the limits themselves require (never in HALTED)."""
        if view.trading is TradingState.HALTED:
            return []
        actions: list[ProtectiveAction] = []
        for hedge in view.active_hedges():
            if hedge.state is not HedgeState.OPEN:
                continue
            position = view.positions.get(hedge.perp_symbol)
            distance = position.liquidation_distance() if position else None
            if distance is not None and distance < self.limits.min_liquidation_distance:
                actions.append(self._liquidation_action(hedge, position, distance))
                continue
            if hedge.is_coinm:
                continue  # its unhedged rest is bounded by max_unhedged_usd when it opens
            step = view.step_sizes.get(hedge.pair, Decimal(0))
            allowed = step * self.limits.max_leg_imbalance_steps
            if step > 0 and abs(hedge.imbalance) > allowed and _correctable(hedge, view):
                actions.append(
                    Rebalance(
                        hedge.id,
                        f"legs differ by {hedge.imbalance} {hedge.pair.split('/')[0]} "
                        f"(> {allowed})",
                    )
                )
        return actions

    def _liquidation_action(
        self, hedge: Hedge, position: Position | None, distance: Decimal
    ) -> ProtectiveAction:
        minimum = self.limits.min_liquidation_distance
        reason = (
            f"short liquidation distance {distance:.4f} below min_liquidation_distance {minimum}"
        )
        # A COIN-M short is margined by its own coin: USDT added to USDⓈ-M would not help.
        add = self.limits.liquidation_action == "add_margin" and not hedge.is_coinm
        if add and position is not None:
            # Margin that moves the liquidation price out to `minimum` above the mark.
            needed = position.size * position.mark_price * (minimum - distance)
            return AddMargin(hedge.id, needed.quantize(Decimal("0.01")), reason)
        factor = max(Decimal("0.25"), min(Decimal("0.75"), distance / minimum))
        return ResizeHedge(
            hedge.id, (hedge.target_notional * factor).quantize(Decimal("0.01")), reason
        )

    def trading_state_after(self, view: RiskView) -> tuple[TradingState, str] | None:
        """Return the state the gate switches to by itself (daily loss → REDUCING), if any."""
        if view.trading is TradingState.ACTIVE and view.daily_pnl <= -self.limits.daily_loss_limit:
            return TradingState.REDUCING, (
                f"daily loss {-view.daily_pnl} USDT reached daily_loss_limit "
                f"{self.limits.daily_loss_limit}"
            )
        return None

    async def review(
        self, intents: Sequence[Intent], view: RiskView, sink: EventSink
    ) -> list[Intent]:
        """Decide, record every decision as an event with its inputs, return the accepted."""
        accepted: list[Intent] = []
        for decision in self.decide(intents, view):
            kind = "risk.accepted" if decision.accepted else "risk.denied"
            data = {
                "intent": type(decision.intent).__name__,
                "reason": decision.reason,
                "intent_reason": decision.intent.reason,
                "inputs": dict(decision.inputs),
                "metrics": {k: str(v) for k, v in decision.intent.metrics.items()},
            }
            hedge_id = getattr(decision.intent, "hedge_id", None)
            await sink.emit(
                Event(
                    kind,
                    f"{type(decision.intent).__name__}: {decision.reason}",
                    view.now,
                    Severity.INFO if decision.accepted else Severity.WARNING,
                    data,
                    hedge_id,
                )
            )
            log.info(
                "Risk %s %s: %s",
                "accepted" if decision.accepted else "denied",
                _describe(decision.intent),
                decision.reason,
            )
            if decision.accepted:
                accepted.append(decision.intent)
        return accepted


def net_delta_by_base(hedges: Sequence[Hedge]) -> dict[str, Decimal]:
    """Return spot minus short per base asset over the given hedges."""
    out: dict[str, Decimal] = {}
    for h in hedges:
        base = h.pair.split("/")[0]
        out[base] = out.get(base, Decimal(0)) + h.imbalance
    return out


def _notional_by_pair(hedges: Sequence[Hedge]) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for h in hedges:
        out[h.pair] = out.get(h.pair, Decimal(0)) + h.sized_notional
    return out


def _held_notional(hedge: Hedge, view: RiskView) -> Decimal | None:
    """Return what the hedge's short is worth at the view's price of its pair, if known."""
    price = view.prices.get(hedge.pair)
    if price is None or price <= 0 or hedge.is_coinm:
        return None
    return hedge.perp_quantity * price


def _find(view: RiskView, hedge_id: int) -> Hedge | None:
    return next((h for h in view.active_hedges() if h.id == hedge_id), None)


def _entry_block(pair: str, view: RiskView, *, new_hedge: bool) -> tuple[bool, str]:
    blocked = view.entry_blocks.get(pair) or view.entry_blocks.get("*")
    return (not new_hedge or blocked is None, blocked or "")


def _in_flight(view: RiskView, pair: str) -> bool:
    return any(h.pair == pair and h.state is not HedgeState.OPEN for h in view.active_hedges())


def _describe(intent: Intent) -> str:
    if isinstance(intent, OpenHedge):
        return f"open {intent.pair} {intent.notional} USDT"
    if isinstance(intent, CloseHedge):
        return f"close hedge {intent.hedge_id}"
    if isinstance(intent, RollHedge):
        return f"roll hedge {intent.hedge_id} into {intent.future_symbol}"
    return f"resize hedge {intent.hedge_id} to {intent.notional} USDT"


def _correctable(hedge: Hedge, view: RiskView) -> bool:
    """Tell whether an order could narrow the hedge's leg difference (unknown pair: yes)."""
    pair = view.pairs.get(hedge.pair)
    if pair is None:
        return True
    price = hedge.entry_spot_price or Decimal(0)
    return leg_correction(hedge.imbalance, pair, price, view.spot_fee_in_base) is not None
