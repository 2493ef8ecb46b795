"""The hedge executor: both legs at once, never one leg left naked.

Every order is written to the ledger (with its deterministic client order id) before it is
sent. Opening sends the spot buy and the perpetual sell in one `asyncio.gather`; then:

- both filled: the legs are equalised to within `max_leg_imbalance_steps` and the hedge is
  OPEN;
- one leg failed: the filled leg is unwound at once and the hedge is FAILED with the reason;
- an order whose response was lost is looked up by client order id, never sent again; if
  the exchange cannot say, the hedge stays OPENING with an alert and `recover` finishes it.

Closing sends the spot sell and the perpetual buy-to-close together; a failed leg is retried
alone with backoff (re-detecting the position mode on -4061) and never re-opens anything.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from bot import failpoints
from bot.clock import Clock
from bot.config import RiskConfig
from bot.domain import (
    Event,
    EventSink,
    Hedge,
    HedgeState,
    Leg,
    OrderPurpose,
    OrderStatus,
    OrderType,
    Pair,
    Quote,
    Severity,
    Side,
    client_order_id,
)
from bot.domain.ledger import NewOrder, OrderRecord
from bot.domain.numbers import floor_to_step
from bot.domain.params import FeeParams
from bot.errors import (
    ExchangeError,
    InsufficientFunds,
    OrderNotFound,
    PositionSideMismatch,
    ReduceOnlyRejected,
)
from bot.exchange.port import ExchangePort
from bot.exchange.venues import arrival_delay, spot_fee_in_base
from bot.execution.account_setup import AccountSetup
from bot.execution.legs import LegResult, LegSender
from bot.execution.sizing import (
    SizingError,
    common_step,
    leg_correction,
    size_hedge,
)
from bot.persistence.outage import OutageGuard
from bot.persistence.port import LedgerPort

log = logging.getLogger(__name__)

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class LegProgress:
    """How much of a leg's target got done, and at what average price.

    `gone` is the part the exchange no longer held when it rejected the order (a short
    reduced, or spot moved, outside the bot): not traded, but no longer the hedge's either.
    """

    filled: Decimal
    cost: Decimal
    complete: bool
    gone: Decimal = ZERO

    @property
    def average_price(self) -> Decimal | None:
        return self.cost / self.filled if self.filled else None


class HedgeExecutor:
    """Open, close, resize, rebalance and recover two-leg hedges."""

    def __init__(
        self,
        exchange: ExchangePort,
        ledger: LedgerPort,
        clock: Clock,
        setup: AccountSetup,
        *,
        risk: RiskConfig,
        fees: FeeParams,
        events: EventSink,
        uids: Callable[[], str],
        run_id: int | None = None,
        sender: LegSender | None = None,
        recv_window_ms: int = 5000,
        guard: OutageGuard | None = None,
    ) -> None:
        self._exchange = exchange
        self._ledger = ledger
        self._clock = clock
        self._setup = setup
        self._risk = risk
        self._fees = fees
        # Binance charges a spot buy's fee in the base asset, so the buy is grossed up;
        # Bitstamp charges it in the quote asset.
        self._base_fee = fees.spot_taker if spot_fee_in_base(exchange) else ZERO
        self._events = events
        self._uids = uids
        self._run_id = run_id
        self._sender = sender or LegSender(
            exchange,
            ledger,
            clock,
            final_wait_seconds=risk.order_timeout_seconds,
            recv_window_seconds=recv_window_ms / 1000,
            guard=guard,
        )

    @property
    def spot_fee_in_base(self) -> Decimal:
        """The spot fee rate a buy pays in the base asset (0 where it is paid in quote)."""
        return self._base_fee

    # --- opening --------------------------------------------------------------------------
    async def open(
        self,
        pair: Pair,
        notional: Decimal,
        *,
        reason: str,
        metrics: Mapping[str, Decimal],
        spot_quote: Quote,
        perp_quote: Quote,
    ) -> Hedge | None:
        """Open a hedge of about `notional`; return it, or None when nothing was sent."""
        try:
            await self._setup.prepare(pair.perp.symbol)
            spot_balances = await self._exchange.fetch_spot_balances()
            futures = await self._exchange.fetch_futures_account()
        except ExchangeError as exc:
            await self._emit(
                "hedge.not_opened",
                f"{pair.key}: account set-up failed: {exc}",
                Severity.WARNING,
                {"pair": pair.key, "error": str(exc)},
            )
            return None
        free_quote = spot_balances.get(pair.spot.quote)
        try:
            size = size_hedge(
                pair,
                notional,
                spot_ask=spot_quote.ask,
                perp_bid=perp_quote.bid,
                spot_fee=self._base_fee,
                leverage=self._setup.leverage,
                spot_free_quote=free_quote.free if free_quote else ZERO,
                futures_available=futures.available_balance,
                balance_buffer=self._risk.balance_buffer,
                margin_buffer=self._risk.margin_buffer,
            )
        except SizingError as exc:
            await self._emit(
                "hedge.sizing_denied",
                str(exc),
                Severity.WARNING,
                {"pair": pair.key, "notional": str(notional)},
            )
            return None
        uid = self._uids()
        position_side, _ = self._setup.open_short_flags()
        orders = [
            NewOrder(
                client_order_id(uid, Leg.SPOT, OrderPurpose.OPEN),
                Leg.SPOT,
                OrderPurpose.OPEN,
                pair.spot.symbol,
                Side.BUY,
                OrderType.MARKET,
                size.spot_order_quantity,
            ),
            NewOrder(
                client_order_id(uid, Leg.PERP, OrderPurpose.OPEN),
                Leg.PERP,
                OrderPurpose.OPEN,
                pair.perp.symbol,
                Side.SELL,
                OrderType.MARKET,
                size.quantity,
                position_side=position_side,
            ),
        ]
        hedge, (spot_record, perp_record) = await self._ledger.hedges.create(
            uid=uid,
            pair=pair.key,
            spot_symbol=pair.spot.symbol,
            perp_symbol=pair.perp.symbol,
            target_quantity=size.quantity,
            target_notional=size.notional,
            reason=reason,
            metrics={k: str(v) for k, v in metrics.items()},
            at=self._clock.now(),
            venue=self._exchange.venue,
            orders=orders,
            run_id=self._run_id,
        )
        log.info(
            "Opening hedge %s (%s): %s %s, reason: %s",
            hedge.id,
            uid,
            size.quantity,
            pair.base,
            reason,
        )
        failpoints.hit(failpoints.OPEN_PERSISTED)

        spot, perp = await asyncio.gather(
            self._send_aligned(spot_record), self._send_aligned(perp_record)
        )
        await asyncio.gather(self._sender.settle(spot), self._sender.settle(perp))
        return await self._finish_open(hedge, pair, spot, perp)

    async def _send_aligned(self, record: OrderRecord) -> LegResult:
        """Send one opening leg; across venues the faster venue's leg waits out the latency
        difference, so both orders reach their exchanges together (0 on one venue)."""
        delay = arrival_delay(self._exchange, record.symbol)
        if delay > 0:
            await self._clock.sleep(delay)
        return await self._sender.send(record)

    async def _finish_open(
        self, hedge: Hedge, pair: Pair, spot: LegResult, perp: LegResult
    ) -> Hedge:
        spot_net = spot.filled - spot.base_fee(pair.base)
        perp_qty = perp.filled
        hedge = await self._ledger.hedges.update(
            hedge.id,
            at=self._clock.now(),
            spot_quantity=spot_net,
            perp_quantity=perp_qty,
            entry_spot_price=spot.average_price,
            entry_perp_price=perp.average_price,
        )
        if spot.unresolved or perp.unresolved:
            await self._emit(
                "hedge.unresolved",
                f"hedge {hedge.id}: an order's outcome is unknown; it will not be sent again "
                "and reconciliation resolves it",
                Severity.ALERT,
                {"spot_error": _err(spot), "perp_error": _err(perp)},
                hedge.id,
            )
            return hedge
        if spot_net <= 0 and perp_qty <= 0:
            reason = f"both legs failed: spot {_err(spot)}; perp {_err(perp)}"
            return await self._fail(hedge, reason)
        if spot_net <= 0 or perp_qty <= 0:
            failed = "spot" if spot_net <= 0 else "perp"
            error = _err(spot if failed == "spot" else perp)
            return await self._unwind(hedge, pair, f"{failed} leg failed: {error}")
        spot_net, perp_qty = await self._equalise(hedge, pair, spot_net, perp_qty)
        if spot_net <= 0 or perp_qty <= 0:
            return await self._unwind(hedge, pair, "legs could not be equalised")
        hedge = await self._ledger.hedges.transition(
            hedge.id,
            HedgeState.OPEN,
            reason="both legs filled",
            at=self._clock.now(),
            spot_quantity=spot_net,
            perp_quantity=perp_qty,
            opened_at=self._clock.now(),
            target_quantity=perp_qty,
            target_notional=(perp_qty * (spot.average_price or ZERO)).quantize(Decimal("0.01")),
        )
        await self._emit(
            "hedge.opened",
            f"hedge {hedge.id} OPEN: {spot_net} spot / {perp_qty} short {pair.base}",
            Severity.INFO,
            {
                "spot_quantity": str(spot_net),
                "perp_quantity": str(perp_qty),
                "spot_price": str(spot.average_price),
                "perp_price": str(perp.average_price),
                "leg_gap_ms": _gap_ms(spot, perp),
            },
            hedge.id,
        )
        return hedge

    async def _fail(self, hedge: Hedge, reason: str) -> Hedge:
        hedge = await self._ledger.hedges.transition(
            hedge.id, HedgeState.FAILED, reason=reason, at=self._clock.now(), close_reason=reason
        )
        await self._emit(
            "hedge.failed",
            f"hedge {hedge.id} FAILED: {reason}",
            Severity.WARNING,
            {"reason": reason},
            hedge.id,
        )
        return hedge

    # --- equalising legs ----------------------------------------------------------------
    async def _equalise(
        self, hedge: Hedge, pair: Pair, spot_net: Decimal, perp_qty: Decimal
    ) -> tuple[Decimal, Decimal]:
        """Trim or top up so |spot − short| is within the allowed number of steps."""
        tolerance = common_step(pair) * self._risk.max_leg_imbalance_steps
        price = hedge.entry_spot_price or ZERO
        diff = spot_net - perp_qty
        fix = leg_correction(diff, pair, price, self._base_fee)
        if abs(diff) <= tolerance or fix is None:
            return spot_net, perp_qty  # within tolerance, or smaller than any order can trade
        log.info("Hedge %s legs differ by %s %s: equalising", hedge.id, diff, pair.base)
        done = await self._leg(hedge, pair, fix.leg, fix.side, fix.quantity, fix.purpose)
        change = done.filled
        if fix.leg is Leg.SPOT:
            spot_net += change * (1 - self._base_fee) if fix.side is Side.BUY else -change
        else:
            perp_qty += change if fix.side is Side.SELL else -change
        await self._ledger.hedges.update(
            hedge.id, at=self._clock.now(), spot_quantity=spot_net, perp_quantity=perp_qty
        )
        left = spot_net - perp_qty
        if abs(left) > tolerance and leg_correction(left, pair, price, self._base_fee):
            await self._emit(
                "hedge.imbalanced",
                f"hedge {hedge.id}: legs still differ by {spot_net - perp_qty} "
                f"{pair.base} after equalising",
                Severity.ALERT,
                {"spot": str(spot_net), "perp": str(perp_qty)},
                hedge.id,
            )
        return spot_net, perp_qty

    # --- unwinding ----------------------------------------------------------------------
    async def _unwind(self, hedge: Hedge, pair: Pair, reason: str) -> Hedge:
        """Flatten whatever the hedge holds, then mark it FAILED with `reason`."""
        if hedge.state is not HedgeState.UNWINDING:
            hedge = await self._ledger.hedges.transition(
                hedge.id, HedgeState.UNWINDING, reason=reason, at=self._clock.now()
            )
            await self._emit(
                "hedge.unwinding",
                f"hedge {hedge.id}: {reason}; unwinding",
                Severity.ALERT,
                {"reason": reason},
                hedge.id,
            )
        hedge = await self._flatten(hedge, pair, OrderPurpose.UNWIND)
        if _is_flat(hedge, pair):
            return await self._fail(hedge, f"{reason}; unwound to flat")
        await self._emit(
            "hedge.unwind_incomplete",
            f"hedge {hedge.id} still holds {hedge.spot_quantity} spot / "
            f"{hedge.perp_quantity} short after unwinding; will retry",
            Severity.ALERT,
            {},
            hedge.id,
        )
        return hedge

    async def _flatten(self, hedge: Hedge, pair: Pair, purpose: OrderPurpose) -> Hedge:
        """Sell the spot and buy back the short concurrently; record what remains."""
        spot_target = await self._sellable_spot(hedge, pair)
        spot_done, perp_done = await asyncio.gather(
            self._leg(hedge, pair, Leg.SPOT, Side.SELL, spot_target, purpose, retry=True),
            self._leg(hedge, pair, Leg.PERP, Side.BUY, hedge.perp_quantity, purpose, retry=True),
        )
        fields: dict[str, object] = {
            "spot_quantity": hedge.spot_quantity - spot_done.filled - spot_done.gone,
            "perp_quantity": hedge.perp_quantity - perp_done.filled - perp_done.gone,
        }
        if spot_done.average_price is not None:
            fields["exit_spot_price"] = spot_done.average_price
        if perp_done.average_price is not None:
            fields["exit_perp_price"] = perp_done.average_price
        return await self._ledger.hedges.update(hedge.id, at=self._clock.now(), **fields)

    async def _sellable_spot(self, hedge: Hedge, pair: Pair) -> Decimal:
        wanted = floor_to_step(hedge.spot_quantity, pair.spot.step_size)
        try:
            balances = await self._exchange.fetch_spot_balances()
        except ExchangeError:
            return wanted
        free = balances.get(pair.base)
        available = floor_to_step(free.free, pair.spot.step_size) if free else ZERO
        return min(wanted, available)

    # --- closing ------------------------------------------------------------------------
    async def close(self, hedge: Hedge, pair: Pair, *, reason: str) -> Hedge:
        """Close both legs concurrently; a failing leg is retried alone, never re-opened."""
        if hedge.state is HedgeState.OPEN:
            hedge = await self._ledger.hedges.transition(
                hedge.id,
                HedgeState.CLOSING,
                reason=reason,
                at=self._clock.now(),
                close_reason=reason,
            )
        log.info("Closing hedge %s: %s", hedge.id, reason)
        hedge = await self._flatten(hedge, pair, OrderPurpose.CLOSE)
        if _is_flat(hedge, pair):
            hedge = await self._ledger.hedges.transition(
                hedge.id,
                HedgeState.CLOSED,
                reason=reason,
                at=self._clock.now(),
                closed_at=self._clock.now(),
            )
            await self._emit(
                "hedge.closed",
                f"hedge {hedge.id} CLOSED: {reason}",
                Severity.INFO,
                {"reason": reason},
                hedge.id,
            )
            return hedge
        await self._emit(
            "hedge.close_incomplete",
            f"hedge {hedge.id} close incomplete: {hedge.spot_quantity} spot / "
            f"{hedge.perp_quantity} short left; will retry",
            Severity.ALERT,
            {"spot": str(hedge.spot_quantity), "perp": str(hedge.perp_quantity)},
            hedge.id,
        )
        return hedge

    # --- resizing and rebalancing ----------------------------------------------------------
    async def resize(
        self,
        hedge: Hedge,
        pair: Pair,
        notional: Decimal,
        *,
        reason: str,
        spot_quote: Quote,
        perp_quote: Quote,
    ) -> Hedge:
        """Grow or shrink an OPEN hedge to about `notional`, both legs together."""
        price = spot_quote.ask
        target = floor_to_step(notional / price, common_step(pair)) if price > 0 else ZERO
        delta = target - hedge.perp_quantity
        if abs(delta) < common_step(pair):
            return hedge
        if delta < 0:
            cut = -delta
            spot_cut = min(
                floor_to_step(cut, pair.spot.step_size), await self._sellable_spot(hedge, pair)
            )
            spot_done, perp_done = await asyncio.gather(
                self._leg(
                    hedge, pair, Leg.SPOT, Side.SELL, spot_cut, OrderPurpose.RESIZE, retry=True
                ),
                self._leg(hedge, pair, Leg.PERP, Side.BUY, cut, OrderPurpose.RESIZE, retry=True),
            )
            spot_qty = hedge.spot_quantity - spot_done.filled - spot_done.gone
            perp_qty = hedge.perp_quantity - perp_done.filled - perp_done.gone
        else:
            try:
                futures = await self._exchange.fetch_futures_account()
                balances = await self._exchange.fetch_spot_balances()
                quote_free = balances.get(pair.spot.quote)
                size = size_hedge(
                    pair,
                    delta * price,
                    spot_ask=spot_quote.ask,
                    perp_bid=perp_quote.bid,
                    spot_fee=self._base_fee,
                    leverage=self._setup.leverage,
                    spot_free_quote=quote_free.free if quote_free else ZERO,
                    futures_available=futures.available_balance,
                    balance_buffer=self._risk.balance_buffer,
                    margin_buffer=self._risk.margin_buffer,
                )
            except (SizingError, ExchangeError) as exc:
                await self._emit(
                    "hedge.resize_denied",
                    f"hedge {hedge.id}: {exc}",
                    Severity.WARNING,
                    {},
                    hedge.id,
                )
                return hedge
            spot_done, perp_done = await asyncio.gather(
                self._leg(
                    hedge, pair, Leg.SPOT, Side.BUY, size.spot_order_quantity, OrderPurpose.RESIZE
                ),
                self._leg(hedge, pair, Leg.PERP, Side.SELL, size.quantity, OrderPurpose.RESIZE),
            )
            spot_qty = hedge.spot_quantity + spot_done.filled * (1 - self._base_fee)
            perp_qty = hedge.perp_quantity + perp_done.filled
        hedge = await self._ledger.hedges.update(
            hedge.id,
            at=self._clock.now(),
            spot_quantity=spot_qty,
            perp_quantity=perp_qty,
            target_quantity=perp_qty,
            target_notional=(perp_qty * price).quantize(Decimal("0.01")),
        )
        spot_qty, perp_qty = await self._equalise(hedge, pair, spot_qty, perp_qty)
        await self._emit(
            "hedge.resized",
            f"hedge {hedge.id} resized to {perp_qty} {pair.base}: {reason}",
            Severity.INFO,
            {"spot": str(spot_qty), "perp": str(perp_qty)},
            hedge.id,
        )
        got = await self._ledger.hedges.get(hedge.id)
        assert got is not None
        return got

    async def rebalance(self, hedge: Hedge, pair: Pair) -> Hedge:
        """Equalise the legs of an OPEN hedge that drifted."""
        await self._equalise(hedge, pair, hedge.spot_quantity, hedge.perp_quantity)
        got = await self._ledger.hedges.get(hedge.id)
        assert got is not None
        return got

    # --- recovery after a crash --------------------------------------------------------
    async def recover(self, hedge: Hedge, pair: Pair) -> Hedge:
        """Finish a hedge left OPENING, CLOSING or UNWINDING, asking about every order first.

        No order is sent before the exchange has said whether the earlier ones exist.
        """
        records = await self._ledger.orders.for_hedge(hedge.id)
        results: dict[str, LegResult] = {}
        for record in records:
            if record.status.is_final and record.status is not OrderStatus.REJECTED:
                continue
            result = await self._resolve(record)
            if result is None:
                await self._emit(
                    "hedge.unresolved",
                    f"hedge {hedge.id}: order {record.client_order_id} cannot be "
                    "resolved yet; nothing sent",
                    Severity.ALERT,
                    {"client_order_id": record.client_order_id},
                    hedge.id,
                )
                return hedge
            results[record.client_order_id] = result
        hedge = await self._recompute_quantities(hedge, pair)
        if hedge.state is HedgeState.OPENING:
            opens = {
                r.leg: results.get(r.client_order_id)
                for r in records
                if r.purpose is OrderPurpose.OPEN
            }
            spot = opens.get(Leg.SPOT) or LegResult(_record_of(records, Leg.SPOT))
            perp = opens.get(Leg.PERP) or LegResult(_record_of(records, Leg.PERP))
            return await self._finish_recovered_open(hedge, pair, spot, perp)
        if hedge.state is HedgeState.CLOSING:
            return await self.close(hedge, pair, reason=hedge.close_reason or "resumed close")
        if hedge.state is HedgeState.UNWINDING:
            return await self._unwind(hedge, pair, hedge.close_reason or "resumed unwind")
        return hedge

    async def _finish_recovered_open(
        self, hedge: Hedge, pair: Pair, spot: LegResult, perp: LegResult
    ) -> Hedge:
        if hedge.spot_quantity <= 0 and hedge.perp_quantity <= 0:
            return await self._fail(
                hedge, f"recovered: no leg filled (spot {_err(spot)}; perp {_err(perp)})"
            )
        if hedge.spot_quantity <= 0 or hedge.perp_quantity <= 0:
            return await self._unwind(hedge, pair, "recovered with one leg filled")
        spot_net, perp_qty = await self._equalise(
            hedge, pair, hedge.spot_quantity, hedge.perp_quantity
        )
        return await self._ledger.hedges.transition(
            hedge.id,
            HedgeState.OPEN,
            reason="recovered after restart: both legs filled",
            at=self._clock.now(),
            spot_quantity=spot_net,
            perp_quantity=perp_qty,
            opened_at=hedge.opened_at or self._clock.now(),
            target_quantity=perp_qty,
        )

    async def _resolve(self, record: OrderRecord) -> LegResult | None:
        """Ask the exchange about a ledger order; record what it says. None: still unknown."""
        if record.status is OrderStatus.REJECTED:
            return LegResult(
                record,
                error=ExchangeError(record.error_message or "rejected", code=record.error_code),
            )
        order, absent = await self._sender.lookup(
            record.symbol, record.client_order_id, sent_at=record.sent_at or record.created_at
        )
        result = LegResult(record, order=order, sent_at=record.sent_at, acked_at=self._clock.now())
        if order is None and not absent:
            return None
        if order is None:
            result.error = OrderNotFound("never reached the exchange", code=-2013)
        await self._sender.settle(result)
        return result

    async def _recompute_quantities(self, hedge: Hedge, pair: Pair) -> Hedge:
        """Derive both legs' holdings from the ledger's orders and fills."""
        spot = perp = ZERO
        for record in await self._ledger.orders.for_hedge(hedge.id):
            filled = record.filled
            if record.leg is Leg.SPOT:
                fills = await self._ledger.fills.for_order(record.client_order_id)
                fee_base = sum((f.fee for f in fills if f.fee_asset == pair.base), ZERO)
                spot += filled - fee_base if record.side is Side.BUY else -filled
            else:
                perp += filled if record.side is Side.SELL else -filled
        return await self._ledger.hedges.update(
            hedge.id, at=self._clock.now(), spot_quantity=spot, perp_quantity=perp
        )

    # --- one leg, with retries -----------------------------------------------------------
    async def _leg(
        self,
        hedge: Hedge,
        pair: Pair,
        leg: Leg,
        side: Side,
        quantity: Decimal,
        purpose: OrderPurpose,
        *,
        retry: bool = False,
    ) -> LegProgress:
        """Trade `quantity` on one leg (retrying with backoff when `retry`); never re-send an
        order whose outcome is unknown."""
        instrument = pair.spot if leg is Leg.SPOT else pair.perp
        remaining = floor_to_step(quantity, instrument.step_size)
        price_hint = hedge.entry_spot_price or ZERO
        filled = cost = gone = ZERO
        reducing = side is (Side.SELL if leg is Leg.SPOT else Side.BUY)
        attempts = self._risk.close_retry_attempts if retry else 1
        for attempt in range(attempts):
            if remaining <= 0 or (leg is Leg.SPOT and _is_dust(remaining, price_hint, pair)):
                return LegProgress(filled, cost, True, gone)
            closing_short = leg is Leg.PERP and side is Side.BUY
            if closing_short:
                position_side, reduce_only = self._setup.close_short_flags()
            elif leg is Leg.PERP:
                position_side, reduce_only = self._setup.open_short_flags()
            else:
                position_side, reduce_only = None, False
            cid = await self._next_client_id(hedge, leg, purpose)
            (record,) = await self._ledger.orders.add(
                [
                    NewOrder(
                        cid,
                        leg,
                        purpose,
                        instrument.symbol,
                        side,
                        OrderType.MARKET,
                        remaining,
                        reduce_only=reduce_only,
                        position_side=position_side,
                    )
                ],
                venue=self._exchange.venue,
                at=self._clock.now(),
                hedge_id=hedge.id,
            )
            result = await self._sender.settle(await self._sender.send(record))
            if result.filled > 0:
                filled += result.filled
                cost += result.filled * (result.average_price or ZERO)
                remaining = floor_to_step(remaining - result.filled, instrument.step_size)
            if remaining <= 0:
                return LegProgress(filled, cost, True, gone)
            if result.unresolved:
                return LegProgress(filled, cost, False, gone)
            error = result.error
            if error is not None:
                adapted = await self._adapt_to_error(hedge, pair, leg, error, remaining)
                if reducing:  # the exchange holds less than the ledger: that part is gone
                    gone += max(remaining - adapted, ZERO)
                remaining = adapted
                if attempt == 0:
                    await self._emit(
                        "order.failed",
                        f"hedge {hedge.id} {leg.value} {purpose.value} {side.value} failed: "
                        f"{error}" + ("; retrying" if retry else ""),
                        Severity.ALERT if retry else Severity.WARNING,
                        {
                            "code": error.code,
                            "reason": error.reason,
                            "leg": leg.value,
                            "purpose": purpose.value,
                        },
                        hedge.id,
                    )
            if attempt + 1 < attempts and remaining > 0:
                await self._clock.sleep(self._risk.close_retry_backoff_seconds * (2**attempt))
        return LegProgress(filled, cost, remaining <= 0, gone)

    async def _adapt_to_error(
        self, hedge: Hedge, pair: Pair, leg: Leg, error: ExchangeError, remaining: Decimal
    ) -> Decimal:
        """Learn from a rejection before the retry; return the quantity still to trade."""
        if isinstance(error, PositionSideMismatch):
            await self._setup.detect()
        elif isinstance(error, ReduceOnlyRejected) and leg is Leg.PERP:
            await self._setup.detect()
            held = await self._short_size(pair)
            if held is not None and held < remaining:
                await self._emit(
                    "hedge.drift",
                    f"hedge {hedge.id}: short is {held}, ledger expected "
                    f"{remaining}; closing what is there",
                    Severity.ALERT,
                    {"exchange": str(held), "ledger": str(remaining)},
                    hedge.id,
                )
                return held
        elif isinstance(error, InsufficientFunds) and leg is Leg.SPOT:
            return min(remaining, await self._sellable_spot(hedge, pair))
        return remaining

    async def _short_size(self, pair: Pair) -> Decimal | None:
        try:
            positions = await self._exchange.fetch_positions()
        except ExchangeError:
            return None
        return sum((p.size for p in positions if p.symbol == pair.perp.symbol and p.is_short), ZERO)

    async def _next_client_id(self, hedge: Hedge, leg: Leg, purpose: OrderPurpose) -> str:
        existing = await self._ledger.orders.for_hedge(hedge.id)
        n = sum(1 for o in existing if o.leg is leg and o.purpose is purpose)
        return client_order_id(hedge.uid, leg, purpose, n + 1)

    async def _emit(
        self,
        kind: str,
        message: str,
        severity: Severity,
        data: Mapping[str, object],
        hedge_id: int | None = None,
    ) -> None:
        log.log(
            logging.WARNING if severity in (Severity.ALERT, Severity.ERROR) else logging.INFO,
            "%s",
            message,
        )
        await self._events.emit(
            Event(kind, message, self._clock.now(), severity, dict(data), hedge_id)
        )


def _is_dust(quantity: Decimal, price: Decimal, pair: Pair) -> bool:
    """Spot too small to sell: below one step, min quantity or (at `price`) min notional."""
    return (
        quantity < pair.spot.step_size
        or quantity < pair.spot.min_qty
        or (price > 0 and quantity * price < pair.spot.min_notional)
    )


def _is_flat(hedge: Hedge, pair: Pair) -> bool:
    """No short left, and the spot left is dust."""
    price = hedge.exit_spot_price or hedge.entry_spot_price or ZERO
    return hedge.perp_quantity <= 0 and _is_dust(hedge.spot_quantity, price, pair)


def _err(result: LegResult) -> str:
    if result.error is None:
        return "filled" if result.filled > 0 else "no fill"
    return str(result.error)


def _gap_ms(a: LegResult, b: LegResult) -> str | None:
    if a.sent_at is None or b.sent_at is None:
        return None
    return f"{abs((a.sent_at - b.sent_at).total_seconds()) * 1000:.3f}"


def _record_of(records: list[OrderRecord], leg: Leg) -> OrderRecord:
    return next(r for r in records if r.leg is leg and r.purpose is OrderPurpose.OPEN)
