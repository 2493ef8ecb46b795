"""Reconciliation: the ledger (what the bot did) against the exchange (what happened).

At start-up, before trading: orders are resolved by client order id, hedges left OPENING,
CLOSING or UNWINDING are finished or unwound, fills made while the bot was down are adopted,
positions the bot does not own are flagged (never touched), and a disagreement that cannot
be resolved halts trading with a report. The same check runs periodically; there drift
raises an alert and switches trading to REDUCING (closes only).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from decimal import Decimal

from bot.adopt import APPLIED, commands_for, pending_requests, rebased_quantities
from bot.clock import Clock
from bot.domain import Event, EventSink, Fill, Hedge, HedgeState, Pair, Severity
from bot.domain.hedge import ROLL_HELD, ROLL_TO, is_own_client_order_id
from bot.domain.instruments import pair_of
from bot.domain.ledger import TradingState
from bot.errors import ExchangeError
from bot.exchange.port import ExchangePort
from bot.execution.coinm_margin import margin_of
from bot.execution.delivery import awaiting_delivery, settle_delivered
from bot.execution.executor import HedgeExecutor
from bot.execution.legs import fees_in_usdt
from bot.persistence.port import LedgerPort

log = logging.getLogger(__name__)

ZERO = Decimal(0)


@dataclass(slots=True)
class ReconcileReport:
    """What one reconciliation found and did."""

    recovered_hedges: list[int] = field(default_factory=list)
    adopted_fills: int = 0
    unowned_positions: list[str] = field(default_factory=list)
    drift: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    drifted_hedges: set[int] = field(default_factory=set)
    adopted_hedges: list[int] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.drift and not self.errors

    def summary(self) -> str:
        parts = [
            f"recovered {len(self.recovered_hedges)} hedge(s)",
            f"adopted {self.adopted_fills} fill(s)",
        ]
        if self.unowned_positions:
            parts.append(
                "positions not owned by carrybot (left alone): " + ", ".join(self.unowned_positions)
            )
        if self.drift:
            parts.append("drift: " + "; ".join(self.drift))
        if self.errors:
            parts.append("errors: " + "; ".join(self.errors))
        return "; ".join(parts)


class Reconciler:
    """Compare and repair; the caller holds the execution lock while this runs."""

    def __init__(
        self,
        exchange: ExchangePort,
        ledger: LedgerPort,
        executor: HedgeExecutor,
        clock: Clock,
        events: EventSink,
        pairs: Mapping[str, Pair],
        *,
        tolerance_steps: int = 1,
    ) -> None:
        self._exchange = exchange
        self._ledger = ledger
        self._executor = executor
        self._clock = clock
        self._events = events
        self._pairs = pairs
        self._tolerance_steps = tolerance_steps

    async def run(self, *, startup: bool) -> ReconcileReport:
        """Reconcile once; at start-up halt on unresolved drift, later go REDUCING."""
        report = ReconcileReport()
        try:
            await self._finish_in_flight(report, startup=startup)
            await self._adopt_fills(report)
            if startup:
                await self._apply_adopt_requests(report)
            await self._compare_positions(report)
            await self._compare_spot(report)
        except ExchangeError as exc:
            report.errors.append(f"exchange unavailable: {exc}")
        await self._conclude(report, startup=startup)
        return report

    async def _finish_in_flight(self, report: ReconcileReport, *, startup: bool) -> None:
        in_flight = await self._ledger.hedges.in_states(
            [HedgeState.OPENING, HedgeState.CLOSING, HedgeState.UNWINDING]
        )
        rolling = [h for h in await self._ledger.hedges.active() if ROLL_TO in h.metrics]
        for hedge in [*in_flight, *(h for h in rolling if h.state is HedgeState.OPEN)]:
            if not startup and self._clock.now() - hedge.updated_at < timedelta(minutes=1):
                continue  # the executor may still be working on it
            pair = pair_of(self._pairs, hedge.pair, hedge.perp_symbol)
            if pair is None:
                report.drift.append(f"hedge {hedge.id}: pair {hedge.pair} no longer listed")
                continue
            into = pair_of(self._pairs, hedge.pair, hedge.metrics.get(ROLL_TO, ""))
            after = await self._executor.recover(hedge, pair, roll_into=into)
            report.recovered_hedges.append(hedge.id)
            log.info("Recovered hedge %s: %s -> %s", hedge.id, hedge.state.value, after.state.value)
            if after.state in (HedgeState.OPENING, HedgeState.CLOSING, HedgeState.UNWINDING):
                report.errors.append(f"hedge {hedge.id} still {after.state.value.upper()}")
            elif ROLL_TO in after.metrics:
                report.errors.append(
                    f"hedge {hedge.id} still rolling into {after.metrics[ROLL_TO]}"
                )

    async def _adopt_fills(self, report: ReconcileReport) -> None:
        """Record our fills the ledger does not have yet (made while the bot was down)."""
        active = await self._ledger.hedges.active()
        symbols = {s for h in active for s in (h.spot_symbol, *h.short_symbols)}
        for symbol in sorted(symbols):
            orders = [
                o
                for h in active
                for o in await self._ledger.orders.for_hedge(h.id)
                if o.symbol == symbol
            ]
            if not orders:
                continue
            by_exchange_id = {
                o.exchange_order_id: o.client_order_id for o in orders if o.exchange_order_id
            }
            since = min(o.created_at for o in orders) - timedelta(minutes=1)
            trades = await self._exchange.fetch_my_trades(symbol, since)
            ours = []
            for t in trades:
                cid = t.client_order_id or by_exchange_id.get(t.exchange_order_id)
                if cid and is_own_client_order_id(cid):
                    ours.append(t if t.client_order_id else _with_cid(t, cid))
            if ours:
                report.adopted_fills += await self._ledger.fills.record(
                    self._exchange.venue,
                    ours,
                    fee_usdt=fees_in_usdt(ours, self._executor.fee_prices),
                )

    async def _compare_positions(self, report: ReconcileReport) -> None:
        active = await self._settle_deliveries(await self._ledger.hedges.active())
        expected: dict[str, Decimal] = {}
        for h in active:
            pair = pair_of(self._pairs, h.pair, h.perp_symbol)
            if pair is not None and awaiting_delivery(h, pair, self._clock):
                continue  # settled by the exchange; recorded once its price is published
            expected[h.perp_symbol] = expected.get(h.perp_symbol, ZERO) + h.perp_quantity
            if ROLL_TO in h.metrics:  # an unfinished roll also holds the next contract
                moved = Decimal(h.metrics.get(ROLL_HELD, "0"))
                expected[h.metrics[ROLL_TO]] = expected.get(h.metrics[ROLL_TO], ZERO) + moved
        positions = await self._exchange.fetch_positions()
        shorts: dict[str, Decimal] = {}
        for p in positions:
            if p.is_short:
                shorts[p.symbol] = shorts.get(p.symbol, ZERO) + p.size
            else:
                report.unowned_positions.append(f"{p.symbol} long {p.size}")
        for symbol, size in sorted(shorts.items()):
            if symbol not in expected:
                report.unowned_positions.append(f"{symbol} short {size}")
        for symbol, want in sorted(expected.items()):
            have = shorts.get(symbol, ZERO)
            step = self._step(symbol)
            if have + step * self._tolerance_steps < want:
                report.drift.append(
                    f"{symbol}: ledger holds a {want} short, the exchange only {have} "
                    "(closed outside carrybot?)"
                )
                report.drifted_hedges |= {h.id for h in active if h.perp_symbol == symbol}
            elif have > want + step * self._tolerance_steps and want > 0:
                report.unowned_positions.append(f"{symbol} short {have - want} beyond ours")

    async def _settle_deliveries(self, hedges: list[Hedge]) -> list[Hedge]:
        """Record the dated shorts the exchange delivered (not drift: Binance closed them)."""
        out = []
        for hedge in hedges:
            pair = pair_of(self._pairs, hedge.pair, hedge.perp_symbol)
            if pair is not None and awaiting_delivery(hedge, pair, self._clock):
                hedge = await settle_delivered(
                    hedge, pair, self._exchange, self._ledger, self._clock, self._events
                )
            out.append(hedge)
        return out

    async def _compare_spot(self, report: ReconcileReport) -> None:
        active = await self._ledger.hedges.active()
        expected: dict[str, Decimal] = {}
        for h in active:
            base = h.pair.split("/")[0]
            # A COIN-M hedge's coin in the COIN-M wallet is its short's margin, not spot.
            on_spot = h.spot_quantity - (margin_of(h) if h.is_coinm else ZERO)
            expected[base] = expected.get(base, ZERO) + max(on_spot, ZERO)
        if not expected:
            return
        balances = await self._exchange.fetch_spot_balances()
        for base, want in sorted(expected.items()):
            have = balances[base].total if base in balances else ZERO
            pair = next((p for p in self._pairs.values() if p.base == base), None)
            step = pair.spot.step_size if pair else ZERO
            if have + step * self._tolerance_steps < want:
                report.drift.append(
                    f"{base}: ledger holds {want} on spot, the wallet only {have} "
                    "(sold or withdrawn outside carrybot?)"
                )
                report.drifted_hedges |= {h.id for h in active if h.pair.split("/")[0] == base}

    async def _conclude(self, report: ReconcileReport, *, startup: bool) -> None:
        now = self._clock.now()
        data = {
            "recovered": report.recovered_hedges,
            "adopted_fills": report.adopted_fills,
            "unowned": report.unowned_positions,
            "drift": report.drift,
            "errors": report.errors,
            "drifted_hedges": sorted(report.drifted_hedges),
        }
        if report.unowned_positions:
            await self._events.emit(
                Event(
                    "reconcile.unowned",
                    "positions not owned by carrybot (left alone): "
                    + ", ".join(report.unowned_positions),
                    now,
                    Severity.WARNING,
                    data,
                )
            )
        current = await self._ledger.trading_state.get()
        if report.clean:
            await self._events.emit(
                Event("reconcile.ok", report.summary(), now, Severity.INFO, data)
            )
            if report.adopted_hedges and current and current.changed_by == "reconcile":
                await self._ledger.trading_state.set(
                    TradingState.ACTIVE,
                    reason=f"drift adopted by the operator (hedges {report.adopted_hedges})",
                    changed_by="adopt",
                    at=now,
                )
            return
        if startup and report.drift:
            hint = "; ".join(f"hedge {i}: {commands_for(i)}" for i in sorted(report.drifted_hedges))
            reason = "start-up reconciliation failed: " + report.summary()
            if hint:
                reason += f"; to go on, run {hint}, then start again"
            await self._ledger.trading_state.set(
                TradingState.HALTED, reason=reason, changed_by="reconcile", at=now
            )
            await self._events.emit(Event("reconcile.halt", reason, now, Severity.ALERT, data))
            log.error("Trading HALTED: %s", reason)
            return
        await self._events.emit(
            Event("reconcile.drift", report.summary(), now, Severity.ALERT, data)
        )
        log.warning("Reconciliation: %s", report.summary())
        state = current.state if current else TradingState.ACTIVE
        if report.drift and state is TradingState.ACTIVE:
            await self._ledger.trading_state.set(
                TradingState.REDUCING,
                reason="reconciliation drift: " + "; ".join(report.drift),
                changed_by="reconcile",
                at=now,
            )

    async def _apply_adopt_requests(self, report: ReconcileReport) -> None:
        """Re-base (or close) the hedges the operator asked for with `carrybot adopt`."""
        requests = await pending_requests(self._ledger)
        if not requests:
            return
        probe = ReconcileReport()
        await self._compare_positions(probe)
        await self._compare_spot(probe)
        active = await self._ledger.hedges.active()
        wanted: dict[int, bool] = {}
        for request in requests:
            ids = [request.hedge_id] if request.hedge_id is not None else probe.drifted_hedges
            for hedge_id in ids:
                wanted[hedge_id] = wanted.get(hedge_id, False) or request.close
        shorts: dict[str, Decimal] = {}
        for p in await self._exchange.fetch_positions():
            if p.is_short:
                shorts[p.symbol] = shorts.get(p.symbol, ZERO) + p.size
        spot = {a: b.total for a, b in (await self._exchange.fetch_spot_balances()).items()}
        for hedge in active:
            if hedge.id not in wanted:
                continue
            others = [h for h in active if h.id != hedge.id]
            await self._adopt_one(hedge, others, shorts, spot, close=wanted[hedge.id])
            report.adopted_hedges.append(hedge.id)
        await self._events.emit(
            Event(
                APPLIED,
                f"adopt requests applied to hedges {report.adopted_hedges}",
                self._clock.now(),
                Severity.ALERT,
                {"hedges": report.adopted_hedges},
            )
        )

    async def _adopt_one(
        self,
        hedge: Hedge,
        others: list[Hedge],
        shorts: Mapping[str, Decimal],
        spot: Mapping[str, Decimal],
        *,
        close: bool,
    ) -> None:
        spot_qty, perp_qty = rebased_quantities(hedge, others, shorts, spot)
        pair = pair_of(self._pairs, hedge.pair, hedge.perp_symbol)
        fields: dict[str, object] = {"spot_quantity": spot_qty, "perp_quantity": perp_qty}
        if hedge.perp_quantity > 0:
            fields["target_quantity"] = perp_qty
            fields["target_notional"] = (
                hedge.target_notional * perp_qty / hedge.perp_quantity
            ).quantize(Decimal("0.01"))
        after = await self._ledger.hedges.update(hedge.id, at=self._clock.now(), **fields)
        message = (
            f"hedge {hedge.id} adopted: {hedge.spot_quantity} -> {spot_qty} spot, "
            f"{hedge.perp_quantity} -> {perp_qty} short"
            + ("; closing what is there" if close else "")
        )
        log.warning("%s", message)
        await self._events.emit(
            Event(
                "hedge.adopted",
                message,
                self._clock.now(),
                Severity.ALERT,
                {
                    "close": close,
                    "spot_before": str(hedge.spot_quantity),
                    "spot_after": str(spot_qty),
                    "perp_before": str(hedge.perp_quantity),
                    "perp_after": str(perp_qty),
                },
                hedge.id,
            )
        )
        if (
            pair is not None
            and after.state is HedgeState.OPEN
            and (close or (spot_qty <= 0 and perp_qty <= 0))
        ):
            await self._executor.close(after, pair, reason="operator: adopt --close")

    def _step(self, perp_symbol: str) -> Decimal:
        pair = next((p for p in self._pairs.values() if p.perp.symbol == perp_symbol), None)
        return pair.perp.step_size if pair else ZERO


def _with_cid(fill: Fill, cid: str) -> Fill:
    return replace(fill, client_order_id=cid)
