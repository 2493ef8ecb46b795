"""One leg of a hedge traded to a quantity, with retries, and the legs equalised.

Every order is written to the ledger (with its deterministic client order id) before it is
sent; an order whose outcome is unknown is never sent again. A rejection teaches the retry:
-4061 re-detects the position mode, a reduce-only rejection on the short re-reads the
position and closes what is there, a spot sell short of funds sells what the wallet holds.

Equalising converges or stops: when its correcting order is rejected (the exchange holds
less than the ledger, or lacks the margin), the hedge's equalising is paused with one ALERT
(`hedge.equalise_paused`) and tried again only after `EQUALISE_RETRY_FIRST`, doubling up to
`EQUALISE_RETRY_MAX` while its legs stay as they were, or at once when they change.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from bot.domain import Hedge, Leg, OrderPurpose, OrderType, Pair, Severity, Side, client_order_id
from bot.domain.ledger import NewOrder
from bot.domain.numbers import floor_to_step
from bot.errors import ExchangeError, InsufficientFunds, PositionSideMismatch, ReduceOnlyRejected
from bot.execution.hedge_context import ZERO, HedgeContext
from bot.execution.sizing import LegCorrection, common_step, leg_correction

log = logging.getLogger(__name__)

EQUALISE_RETRY_FIRST = timedelta(hours=1)
"""How long equalising waits after its correcting order was rejected."""
EQUALISE_RETRY_MAX = timedelta(hours=24)
"""The longest wait between two rejected corrections of the same legs."""


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
    error: ExchangeError | None = None
    """The last rejection of the leg's orders (None: none was rejected)."""

    @property
    def average_price(self) -> Decimal | None:
        return self.cost / self.filled if self.filled else None


@dataclass(frozen=True, slots=True)
class EqualisePause:
    """Equalising of one hedge paused: its legs when the correction was rejected, until when."""

    legs: tuple[Decimal, Decimal]
    until: datetime
    wait: timedelta


class LegTrader:
    """Trades single legs of hedges for the executor's open, close, unwind and resize."""

    def __init__(self, ctx: HedgeContext) -> None:
        self._ctx = ctx
        self._paused: dict[int, EqualisePause] = {}  # hedge id -> its pause

    def equalise_paused(self, hedge: Hedge) -> EqualisePause | None:
        """The pause of `hedge`'s equalising, while its legs are the ones it was paused at."""
        pause = self._paused.get(hedge.id)
        legs = (hedge.spot_quantity, hedge.perp_quantity)
        if pause is None or pause.legs != legs or self._ctx.clock.now() >= pause.until:
            return None
        return pause

    async def trade(
        self,
        hedge: Hedge,
        pair: Pair,
        leg: Leg,
        side: Side,
        quantity: Decimal,
        purpose: OrderPurpose,
        *,
        retry: bool = False,
        first_report: Callable[[str], bool] | None = None,
    ) -> LegProgress:
        """Trade `quantity` on one leg (retrying with backoff when `retry`); never re-send an
        order whose outcome is unknown. With `first_report`, a failure is an event only when
        it says its condition (purpose, side, error code) is new; otherwise it is logged."""
        instrument = pair.spot if leg is Leg.SPOT else pair.perp
        remaining = floor_to_step(quantity, instrument.step_size)
        price_hint = hedge.entry_spot_price or ZERO
        filled = cost = gone = ZERO
        rejected: ExchangeError | None = None
        reducing = side is (Side.SELL if leg is Leg.SPOT else Side.BUY)
        attempts = self._ctx.risk.close_retry_attempts if retry else 1
        for attempt in range(attempts):
            if remaining <= 0 or (leg is Leg.SPOT and is_dust(remaining, price_hint, pair)):
                return LegProgress(filled, cost, True, gone, rejected)
            closing_short = leg is Leg.PERP and side is Side.BUY
            coinm = pair.perp.is_inverse  # COIN-M keeps its own position mode
            if closing_short:
                position_side, reduce_only = self._ctx.setup.close_short_flags(coinm=coinm)
            elif leg is Leg.PERP:
                position_side, reduce_only = self._ctx.setup.open_short_flags(coinm=coinm)
            else:
                position_side, reduce_only = None, False
            cid = await self.next_client_id(hedge, leg, purpose)
            (record,) = await self._ctx.ledger.orders.add(
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
                venue=self._ctx.exchange.venue,
                at=self._ctx.clock.now(),
                hedge_id=hedge.id,
            )
            result = await self._ctx.sender.settle(await self._ctx.sender.send(record))
            if result.filled > 0:
                filled += result.filled
                cost += result.filled * (result.average_price or ZERO)
                remaining = floor_to_step(remaining - result.filled, instrument.step_size)
            if remaining <= 0:
                return LegProgress(filled, cost, True, gone, rejected)
            if result.unresolved:
                return LegProgress(filled, cost, False, gone, result.error)
            error = result.error
            if error is not None:
                rejected = error
                adapted = await self._adapt_to_error(hedge, pair, leg, error, remaining)
                if reducing:  # the exchange holds less than the ledger: that part is gone
                    gone += max(remaining - adapted, ZERO)
                remaining = adapted
                condition = f"{purpose.value}:{side.value}:{error.code}"
                if attempt == 0 and first_report is not None and not first_report(condition):
                    log.warning(
                        "Hedge %s %s %s %s failed again: %s (reported once)",
                        hedge.id,
                        leg.value,
                        purpose.value,
                        side.value,
                        error,
                    )
                elif attempt == 0:
                    await self._ctx.emit(
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
                await self._ctx.clock.sleep(
                    self._ctx.risk.close_retry_backoff_seconds * (2**attempt)
                )
        return LegProgress(filled, cost, remaining <= 0, gone, rejected)

    async def _adapt_to_error(
        self, hedge: Hedge, pair: Pair, leg: Leg, error: ExchangeError, remaining: Decimal
    ) -> Decimal:
        """Learn from a rejection before the retry; return the quantity still to trade."""
        match error:
            case PositionSideMismatch():
                await self._ctx.setup.detect(coinm=pair.perp.is_inverse)
            case ReduceOnlyRejected() if leg is Leg.PERP:
                await self._ctx.setup.detect(coinm=pair.perp.is_inverse)
                held = await self._short_size(pair)
                if held is not None and held < remaining:
                    await self._ctx.emit(
                        "hedge.drift",
                        f"hedge {hedge.id}: short is {held}, the order was for "
                        f"{remaining}; closing what is there",
                        Severity.ALERT,
                        {"exchange": str(held), "ledger": str(remaining)},
                        hedge.id,
                    )
                    return held
            case InsufficientFunds() if leg is Leg.SPOT:
                return min(remaining, await self.sellable_spot(hedge, pair))
        return remaining

    async def _short_size(self, pair: Pair) -> Decimal | None:
        try:
            positions = await self._ctx.exchange.fetch_positions()
        except ExchangeError:
            return None
        return sum((p.size for p in positions if p.symbol == pair.perp.symbol and p.is_short), ZERO)

    async def next_client_id(self, hedge: Hedge, leg: Leg, purpose: OrderPurpose) -> str:
        existing = await self._ctx.ledger.orders.for_hedge(hedge.id)
        n = sum(1 for o in existing if o.leg is leg and o.purpose is purpose)
        return client_order_id(hedge.uid, leg, purpose, n + 1)

    async def equalise(
        self, hedge: Hedge, pair: Pair, spot_net: Decimal, perp_qty: Decimal
    ) -> tuple[Decimal, Decimal]:
        """Trim or top up so |spot − short| is within the allowed number of steps."""
        tolerance = common_step(pair) * self._ctx.risk.max_leg_imbalance_steps
        price = hedge.entry_spot_price or ZERO
        diff = spot_net - perp_qty
        fix = leg_correction(diff, pair, price, self._ctx.base_fee)
        if abs(diff) <= tolerance or fix is None:
            self._paused.pop(hedge.id, None)
            return spot_net, perp_qty  # within tolerance, or smaller than any order can trade
        legs = (spot_net, perp_qty)
        pause = self._paused.get(hedge.id)
        if pause is not None and pause.legs != legs:
            del self._paused[hedge.id]  # the legs moved since: try at once
            pause = None
        if pause is not None and self._ctx.clock.now() < pause.until:
            log.debug("Hedge %s: equalising paused until %s", hedge.id, pause.until)
            return spot_net, perp_qty
        log.info("Hedge %s legs differ by %s %s: equalising", hedge.id, diff, pair.base)
        done = await self.trade(hedge, pair, fix.leg, fix.side, fix.quantity, fix.purpose)
        change = done.filled
        if fix.leg is Leg.SPOT:
            spot_net += change * (1 - self._ctx.base_fee) if fix.side is Side.BUY else -change
        else:
            perp_qty += change if fix.side is Side.SELL else -change
        await self._ctx.ledger.hedges.update(
            hedge.id, at=self._ctx.clock.now(), spot_quantity=spot_net, perp_quantity=perp_qty
        )
        left = spot_net - perp_qty
        if abs(left) > tolerance and leg_correction(left, pair, price, self._ctx.base_fee):
            await self._ctx.emit(
                "hedge.imbalanced",
                f"hedge {hedge.id}: legs still differ by {spot_net - perp_qty} "
                f"{pair.base} after equalising",
                Severity.ALERT,
                {"spot": str(spot_net), "perp": str(perp_qty)},
                hedge.id,
            )
            if done.error is not None and done.filled == 0:
                await self._pause(hedge, pair, legs, fix, done.error, pause)
                return spot_net, perp_qty
        self._paused.pop(hedge.id, None)
        return spot_net, perp_qty

    async def _pause(
        self,
        hedge: Hedge,
        pair: Pair,
        legs: tuple[Decimal, Decimal],
        fix: LegCorrection,
        error: ExchangeError,
        before: EqualisePause | None,
    ) -> None:
        """Stop retrying a rejected correction every cycle: wait, longer each time."""
        wait = min(before.wait * 2, EQUALISE_RETRY_MAX) if before else EQUALISE_RETRY_FIRST
        now = self._ctx.clock.now()
        self._paused[hedge.id] = EqualisePause(legs, now + wait, wait)
        leg, purpose = fix.leg, fix.purpose
        await self._ctx.emit(
            "hedge.equalise_paused",
            f"hedge {hedge.id}: equalising paused for {wait.total_seconds() / 3600:g} h: the "
            f"{leg.value} {purpose.value} was rejected ({error}); ledger legs spot "
            f"{legs[0]} / short {legs[1]} {pair.base}. If the exchange holds less than "
            "that, `carrybot adopt` or close the hedge",
            Severity.ALERT,
            {
                "code": error.code,
                "leg": leg.value,
                "spot": str(legs[0]),
                "perp": str(legs[1]),
                "retry_at": (now + wait).isoformat(),
            },
            hedge.id,
        )

    async def sellable_spot(self, hedge: Hedge, pair: Pair) -> Decimal:
        """Return the hedge's spot rounded to the step, capped by what the wallet holds."""
        wanted = floor_to_step(hedge.spot_quantity, pair.spot.step_size)
        try:
            balances = await self._ctx.exchange.fetch_spot_balances()
        except ExchangeError:
            return wanted
        free = balances.get(pair.base)
        available = floor_to_step(free.free, pair.spot.step_size) if free else ZERO
        return min(wanted, available)


def is_dust(quantity: Decimal, price: Decimal, pair: Pair) -> bool:
    """Spot too small to sell: below one step, min quantity or (at `price`) min notional."""
    return (
        quantity < pair.spot.step_size
        or quantity < pair.spot.min_qty
        or (price > 0 and quantity * price < pair.spot.min_notional)
    )
