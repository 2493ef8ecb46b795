"""Rolling a dated hedge: its short moves to a later contract, its spot stays.

Both futures orders go out at once (one `asyncio.gather`, as an open's two legs): the buy
back of the short on the contract held (reduceOnly in one-way mode, positionSide=SHORT in
hedge mode) and the sell of the same exposure on the later contract (positionSide=SHORT in
hedge mode). Both are written to the ledger before they are sent, and the roll on the hedge
(`roll_to`, the contract it moves to). Then:

- both filled: the hedge keeps its id and its spot; its short is now the later contract
  (`perp_symbol`, entry price, `rolled_from`), event `hedge.rolled`;
- partial fills: the missing part of each order is traded again (retried with backoff);
- the new short failed after the old one was bought back (the spot naked): the new short is
  retried within `close_retry_attempts`; failing that, the spot is sold and the hedge CLOSED
  (`hedge.roll_failed`, alert);
- the buy-back failed after the new short filled (a double short): the buy-back is retried;
  failing that, the new short is bought back (TRIM), so the hedge is as before the roll;
- both failed: nothing changed, the hedge stays on its contract (`hedge.roll_failed`);
- a lost response: looked up by client order id, never sent again; an outcome nobody can
  tell leaves the roll pending (`roll_to`, alert) and recovery finishes it.

Margin: both shorts are open for a moment, so the new short's initial margin (at the
leverage, plus `margin_buffer`) must fit what the futures wallet has free beside the old
one (USDⓈ-M: USDT; COIN-M: the coin). When it does not (leverage 2, the default, with the
hedge's own coin as COIN-M margin), the roll goes **sequentially**: the buy-back first,
then the new short once the buy-back has freed its margin; the spot is unhedged for that
one round trip (its length is recorded: `naked_ms` of `hedge.rolled`), and a new short that
still fails is handled as above (retried, else the spot sold).

Not rolled into: a contract not TRADING or given a delisting date (denied). A denied or
failed roll cools the hedge's roll down (`roll_backoff`), each condition reported once.

COIN-M: the later quarter's contracts are recomputed from the USD value of the hedge's coin
(its margin plus the short's coin P&L so far) at that contract's bid, to the nearest whole
contract; the coin stays in the COIN-M wallet as the margin of both shorts (no transfer); a
roll whose remainder would exceed `max_unhedged_usd` is not sent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from functools import partial
from typing import TYPE_CHECKING

from bot.domain import (
    Hedge,
    HedgeState,
    Leg,
    OrderPurpose,
    OrderType,
    Pair,
    Quote,
    Severity,
    Side,
)
from bot.domain.hedge import BASIS_SPOT, ROLL_HELD, ROLL_TO, ROLLED_FROM
from bot.domain.ledger import NewOrder
from bot.domain.numbers import floor_to_step
from bot.errors import ExchangeError
from bot.execution.hedge_context import ZERO, HedgeContext, outcome
from bot.execution.leg_trader import LegTrader
from bot.execution.legs import LegResult
from bot.execution.roll_backoff import RollBackoff
from bot.execution.roll_sizing import margin_short, roll_quantity
from bot.execution.sizing import SizingError
from bot.execution.unwind import HedgeUnwinder

if TYPE_CHECKING:
    from bot.execution.coinm import CoinmHedger

log = logging.getLogger(__name__)

ROLL_START = "roll_start"  # hedge metric: the short on the contract left when the roll began
ROLL_TARGET = "roll_target"  # hedge metric: the short the roll sells on the later contract
_ROLL_KEYS = (ROLL_TO, ROLL_HELD, ROLL_START, ROLL_TARGET)


class HedgeRoller:
    """Moves an OPEN dated hedge's short to a later contract of its asset."""

    def __init__(
        self,
        ctx: HedgeContext,
        legs: LegTrader,
        unwinder: HedgeUnwinder,
        coinm: CoinmHedger | None,
    ) -> None:
        self._ctx = ctx
        self._legs = legs
        self._unwinder = unwinder
        self._coinm = coinm
        self.backoff = RollBackoff(
            ctx.clock.monotonic,
            first_seconds=ctx.risk.roll_failure_backoff_seconds,
            max_seconds=ctx.risk.roll_failure_backoff_max_seconds,
        )

    async def roll(
        self,
        hedge: Hedge,
        held: Pair,
        into: Pair,
        *,
        reason: str,
        spot_quote: Quote,
        held_quote: Quote,
        into_quote: Quote,
    ) -> Hedge:
        """Roll `hedge` from `held` to `into`; return it as the roll left it."""
        ctx = self._ctx
        if ROLL_TO in hedge.metrics:
            return await self.finish(hedge, held, into, reason=reason)
        blocked = self.backoff.blocked(hedge.id)
        if blocked is not None:
            log.info("Hedge %s not rolled now: %s", hedge.id, blocked)
            return hedge
        inverse = held.perp.is_inverse
        if inverse != into.perp.is_inverse or held.key != into.key:
            return await self._denied(hedge, into, "the contracts are not of one asset and margin")
        if inverse and self._coinm is None:
            return await self._denied(hedge, into, "no COIN-M side loaded")
        screened = into.perp.not_tradable()
        if screened is not None:
            return await self._denied(hedge, into, screened, condition="not tradable")
        try:
            await ctx.setup.prepare(into.perp.symbol, coinm=inverse)
            await ctx.setup.ensure_detected(coinm=inverse)
            want = await roll_quantity(ctx, self._coinm, hedge, held, into, held_quote, into_quote)
            short_of_margin = await margin_short(ctx, into, want, into_quote)
        except (ExchangeError, SizingError) as exc:
            return await self._denied(hedge, into, str(exc), condition=type(exc).__name__)
        close_side, reduce_only = ctx.setup.close_short_flags(coinm=inverse)
        open_side, _ = ctx.setup.open_short_flags(coinm=inverse)
        buy_back = NewOrder(
            await self._legs.next_client_id(hedge, Leg.PERP, OrderPurpose.ROLL_CLOSE),
            Leg.PERP,
            OrderPurpose.ROLL_CLOSE,
            held.perp.symbol,
            Side.BUY,
            OrderType.MARKET,
            hedge.perp_quantity,
            reduce_only=reduce_only,
            position_side=close_side,
        )
        sell = NewOrder(
            await self._legs.next_client_id(hedge, Leg.PERP, OrderPurpose.ROLL_OPEN),
            Leg.PERP,
            OrderPurpose.ROLL_OPEN,
            into.perp.symbol,
            Side.SELL,
            OrderType.MARKET,
            want,
            position_side=open_side,
        )
        hedge = await ctx.ledger.hedges.update(
            hedge.id,
            at=ctx.clock.now(),
            metrics=dict(hedge.metrics)
            | {
                ROLL_TO: into.perp.symbol,
                ROLL_HELD: "0",
                ROLL_START: str(hedge.perp_quantity),
                ROLL_TARGET: str(want),
                BASIS_SPOT: str(spot_quote.bid),
            },
        )
        log.info(
            "Rolling hedge %s: %s %s -> %s %s (%s)%s",
            hedge.id,
            hedge.perp_quantity,
            held.perp.symbol,
            want,
            into.perp.symbol,
            reason,
            f"; buy-back first: {short_of_margin}" if short_of_margin else "",
        )
        if short_of_margin is not None:
            return await self._sequential(hedge, held, into, buy_back, reason, short_of_margin)
        records = await ctx.ledger.orders.add(
            [buy_back, sell], venue=ctx.exchange.venue, at=ctx.clock.now(), hedge_id=hedge.id
        )
        old, new = await asyncio.gather(*(ctx.sender.send(r) for r in records))
        await asyncio.gather(ctx.sender.settle(old), ctx.sender.settle(new))
        hedge = await self._note(
            hedge, perp_quantity=hedge.perp_quantity - old.filled, moved=new.filled
        )
        if old.unresolved or new.unresolved:
            return await self._unresolved(hedge, into, old, new)
        if old.error is not None or new.error is not None:
            codes = [r.error.code for r in (old, new) if r.error is not None]
            await self._report(
                hedge,
                f"order.failed:{codes}",
                "order.failed",
                f"hedge {hedge.id} roll: buy-back {outcome(old)}; new short {outcome(new)}",
                Severity.ALERT,
                {"close_error": outcome(old), "open_error": outcome(new)},
            )
        gap = _gap_ms(old, new)
        return await self.finish(hedge, held, into, reason=reason, gap_ms=gap)

    async def _sequential(
        self, hedge: Hedge, held: Pair, into: Pair, buy_back: NewOrder, reason: str, why: str
    ) -> Hedge:
        """Buy the old short back alone, then sell the new one (`finish`) once its margin is
        free: the spot is unhedged for that one round trip, measured and recorded."""
        ctx = self._ctx
        (record,) = await ctx.ledger.orders.add(
            [buy_back], venue=ctx.exchange.venue, at=ctx.clock.now(), hedge_id=hedge.id
        )
        old = await ctx.sender.send(record)
        await ctx.sender.settle(old)
        hedge = await self._note(hedge, perp_quantity=hedge.perp_quantity - old.filled, moved=ZERO)
        if old.unresolved:
            return await self._unresolved(hedge, into, old, None)
        if old.error is not None:
            await self._report(
                hedge,
                f"order.failed:{[old.error.code]}",
                "order.failed",
                f"hedge {hedge.id} roll (buy-back first): buy-back {outcome(old)}",
                Severity.ALERT,
                {"close_error": outcome(old)},
            )
        selling_at = ctx.clock.now()
        gap = _gap_ms(old, None, selling_at)
        done = await self.finish(
            hedge, held, into, reason=reason, gap_ms=gap, sequential=why, naked_from=old.acked_at
        )
        return done

    async def _unresolved(
        self, hedge: Hedge, into: Pair, old: LegResult, new: LegResult | None
    ) -> Hedge:
        await self._ctx.emit(
            "hedge.unresolved",
            f"hedge {hedge.id}: an order of its roll into {into.perp.symbol} has an unknown "
            "outcome; it will not be sent again and recovery resolves it",
            Severity.ALERT,
            {
                "close_error": outcome(old),
                "open_error": outcome(new) if new is not None else "not sent",
            },
            hedge.id,
        )
        return hedge

    async def finish(
        self,
        hedge: Hedge,
        held: Pair,
        into: Pair,
        *,
        reason: str,
        gap_ms: str | None = None,
        sequential: str | None = None,
        naked_from: datetime | None = None,
    ) -> Hedge:
        """Settle a roll from what both contracts hold (the ledger's `perp_quantity` on the
        contract left, `roll_quantity` on the later one): trade what is missing, then end
        rolled, back on the contract held, or closed when no short can be kept."""
        start = Decimal(hedge.metrics.get(ROLL_START, str(hedge.perp_quantity)))
        want = Decimal(hedge.metrics.get(ROLL_TARGET, str(start)))
        old_left, moved = hedge.perp_quantity, Decimal(hedge.metrics.get(ROLL_HELD, "0"))
        once = partial(self.backoff.first_report, hedge.id)  # each failure reported once
        if old_left > 0:  # the contract left: buy back what is still short there
            done = await self._legs.trade(
                hedge,
                held,
                Leg.PERP,
                Side.BUY,
                old_left,
                OrderPurpose.ROLL_CLOSE,
                retry=True,
                first_report=once,
            )
            old_left -= done.filled + done.gone
        # The later contract holds what the buy-back freed, never more (no double short).
        share = (start - old_left) / start if start > 0 else Decimal(1)
        target = floor_to_step(want * share, into.perp.step_size)
        if moved < target:
            done = await self._legs.trade(
                hedge,
                into,
                Leg.PERP,
                Side.SELL,
                target - moved,
                OrderPurpose.ROLL_OPEN,
                retry=True,
                first_report=once,
            )
            moved += done.filled
        elif moved > target:
            done = await self._legs.trade(
                hedge,
                into,
                Leg.PERP,
                Side.BUY,
                moved - target,
                OrderPurpose.TRIM,
                retry=True,
                first_report=once,
            )
            moved -= done.filled + done.gone
        hedge = await self._note(hedge, perp_quantity=old_left, moved=moved)
        if old_left <= 0 and moved > 0:
            how: dict[str, str | None] = {"leg_gap_ms": gap_ms}
            if sequential is not None:
                how |= {"sequential": sequential, "naked_ms": self._ms_since(naked_from)}
            return await self._rolled(hedge, held, into, moved, reason, how)
        if old_left > 0 and moved > 0:
            seconds = self.backoff.record_failure(hedge.id, "roll unfinished")
            await self._report(
                hedge,
                "roll_incomplete",
                "hedge.roll_incomplete",
                f"hedge {hedge.id}: roll unfinished, {old_left} short on {held.perp.symbol} "
                f"and {moved} on {into.perp.symbol}; will retry in {seconds:.0f}s",
                Severity.ALERT,
                {"held": str(old_left), "moved": str(moved), "retry_seconds": seconds},
            )
            return hedge
        hedge = await self._clear(hedge)
        if old_left <= 0:  # the old short is gone and no new one could be sold
            why = f"roll into {into.perp.symbol} failed after the buy-back: no short; spot sold"
            self.backoff.clear(hedge.id)
            await self._failed(hedge, why, Severity.ALERT, {})
            return await self._close_spot(hedge, held, why)
        seconds = self.backoff.record_failure(hedge.id, "roll not done")
        if self.backoff.first_report(hedge.id, "roll not done"):
            await self._failed(
                hedge,
                f"roll into {into.perp.symbol} not done: the hedge stays on "
                f"{held.perp.symbol}; next try in {seconds:.0f}s (closed before delivery "
                "if it cannot roll by then)",
                Severity.WARNING,
                {"retry_seconds": seconds, "failures": self.backoff.failures(hedge.id)},
            )
        else:
            log.warning(
                "Hedge %s: roll into %s not done again (%d failed); next try in %.0fs",
                hedge.id,
                into.perp.symbol,
                self.backoff.failures(hedge.id),
                seconds,
            )
        if old_left < start:  # part of the old short was bought back: match the spot to it
            return await self._equalise(hedge, held)
        return hedge

    async def _rolled(
        self,
        hedge: Hedge,
        held: Pair,
        into: Pair,
        moved: Decimal,
        reason: str,
        how: dict[str, str | None],
    ) -> Hedge:
        ctx = self._ctx
        failed_before = self.backoff.failures(hedge.id)
        self.backoff.clear(hedge.id)
        sells = [
            r
            for r in await ctx.ledger.orders.for_hedge(hedge.id)
            if r.symbol == into.perp.symbol and r.side is Side.SELL and r.filled > 0
        ]
        sold = sum((r.filled for r in sells), ZERO)
        cost = sum((r.filled * (r.average_price or ZERO) for r in sells), ZERO)
        entry = cost / sold if sold else hedge.entry_perp_price
        rolled = [s for s in hedge.metrics.get(ROLLED_FROM, "").split(",") if s]
        metrics = {k: v for k, v in hedge.metrics.items() if k not in _ROLL_KEYS}
        metrics[ROLLED_FROM] = ",".join([*rolled, held.perp.symbol])
        spot_price = Decimal(hedge.metrics.get(BASIS_SPOT, "0")) or hedge.entry_spot_price or ZERO
        fields: dict[str, object] = {
            "perp_symbol": into.perp.symbol,
            "perp_quantity": moved,
            "entry_perp_price": entry,
            "target_quantity": moved,
            "metrics": metrics,
        }
        if into.perp.is_inverse:
            fields["target_notional"] = moved * into.perp.contract_size
        else:
            fields["target_notional"] = (moved * spot_price).quantize(Decimal("0.01"))
        hedge = await ctx.ledger.hedges.transition(
            hedge.id, HedgeState.OPEN, reason=f"rolled: {reason}", at=ctx.clock.now(), **fields
        )
        hedge = await self._equalise(hedge, into)
        await ctx.emit(
            "hedge.rolled",
            f"hedge {hedge.id} rolled: {held.perp.symbol} -> {into.perp.symbol}, "
            f"{hedge.perp_quantity} short, spot kept ({hedge.spot_quantity} {held.base})",
            Severity.INFO,
            {
                "from": held.perp.symbol,
                "to": into.perp.symbol,
                "perp_quantity": str(hedge.perp_quantity),
                "entry_perp_price": str(entry),
                "spot_quantity": str(hedge.spot_quantity),
                "failed_before": failed_before,
                **how,
            },
            hedge.id,
        )
        return hedge

    async def _equalise(self, hedge: Hedge, pair: Pair) -> Hedge:
        """Bring the spot and the short together (COIN-M: within `max_unhedged_usd`)."""
        if pair.perp.is_inverse:
            assert self._coinm is not None
            return await self._coinm.after_roll(hedge, pair)
        await self._legs.equalise(hedge, pair, hedge.spot_quantity, hedge.perp_quantity)
        got = await self._ctx.ledger.hedges.get(hedge.id)
        assert got is not None
        return got

    async def _close_spot(self, hedge: Hedge, held: Pair, why: str) -> Hedge:
        """No short can be kept: sell the spot (COIN-M: move the coin back first)."""
        if held.perp.is_inverse:
            assert self._coinm is not None
            return await self._coinm.close(hedge, held, reason=why)
        return await self._unwinder.close(hedge, held, reason=why)

    async def _note(self, hedge: Hedge, *, perp_quantity: Decimal, moved: Decimal) -> Hedge:
        return await self._ctx.ledger.hedges.update(
            hedge.id,
            at=self._ctx.clock.now(),
            perp_quantity=perp_quantity,
            metrics=dict(hedge.metrics) | {ROLL_HELD: str(moved)},
        )

    async def _clear(self, hedge: Hedge) -> Hedge:
        metrics = {k: v for k, v in hedge.metrics.items() if k not in _ROLL_KEYS}
        return await self._ctx.ledger.hedges.update(
            hedge.id, at=self._ctx.clock.now(), metrics=metrics
        )

    async def _failed(
        self, hedge: Hedge, why: str, severity: Severity, data: Mapping[str, object]
    ) -> None:
        await self._ctx.emit(
            "hedge.roll_failed", f"hedge {hedge.id}: {why}", severity, data, hedge.id
        )

    async def _denied(
        self, hedge: Hedge, into: Pair, why: str, *, condition: str | None = None
    ) -> Hedge:
        """Count a roll not sent; report its condition once (until a roll is done)."""
        seconds = self.backoff.record_failure(hedge.id, why)
        await self._report(
            hedge,
            f"denied:{condition or why}",
            "hedge.roll_denied",
            f"hedge {hedge.id}: roll into {into.perp.symbol} not sent: {why}; next try in "
            f"{seconds:.0f}s",
            Severity.WARNING,
            {"to": into.perp.symbol, "retry_seconds": seconds},
        )
        return hedge

    def _ms_since(self, start: datetime | None) -> str | None:
        """Milliseconds from `start` (the buy-back's fill) to now (the new short's fill)."""
        if start is None:
            return None
        return f"{(self._ctx.clock.now() - start).total_seconds() * 1000:.3f}"

    async def _report(
        self,
        hedge: Hedge,
        condition: str,
        kind: str,
        message: str,
        severity: Severity,
        data: Mapping[str, object],
    ) -> None:
        """Emit an event the first time `condition` holds for the hedge; log a repeat."""
        if self.backoff.first_report(hedge.id, condition):
            await self._ctx.emit(kind, message, severity, data, hedge.id)
        else:
            log.warning("%s (again: reported once)", message)


def _gap_ms(a: LegResult, b: LegResult | None, b_sent: datetime | None = None) -> str | None:
    """How far apart the roll's two orders were sent, in milliseconds."""
    other = b.sent_at if b is not None else b_sent
    if a.sent_at is None or other is None:
        return None
    return f"{abs((a.sent_at - other).total_seconds()) * 1000:.3f}"
