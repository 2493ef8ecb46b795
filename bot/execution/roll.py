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

COIN-M: the later quarter's contracts are recomputed from the USD value of the hedge's coin
(its margin plus the short's coin P&L so far) at that contract's bid, to the nearest whole
contract; the coin stays in the COIN-M wallet as the margin of both shorts (no transfer); a
roll whose remainder would exceed `max_unhedged_usd` is not sent.
"""

from __future__ import annotations

import asyncio
import logging
from decimal import ROUND_HALF_EVEN, Decimal
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
from bot.domain.inverse import short_pnl_coin
from bot.domain.ledger import NewOrder
from bot.domain.numbers import floor_to_step
from bot.errors import ExchangeError
from bot.execution.coinm_sizing import unhedged_usd
from bot.execution.hedge_context import ZERO, HedgeContext, outcome
from bot.execution.leg_trader import LegTrader
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
        inverse = held.perp.is_inverse
        if inverse != into.perp.is_inverse or held.key != into.key:
            return await self._denied(hedge, into, "the contracts are not of one asset and margin")
        if inverse and self._coinm is None:
            return await self._denied(hedge, into, "no COIN-M side loaded")
        try:
            await ctx.setup.prepare(into.perp.symbol, coinm=inverse)
            await ctx.setup.ensure_detected(coinm=inverse)
            want = await self._target(hedge, held, into, held_quote, into_quote)
        except (ExchangeError, SizingError) as exc:
            return await self._denied(hedge, into, str(exc))
        close_side, reduce_only = ctx.setup.close_short_flags(coinm=inverse)
        open_side, _ = ctx.setup.open_short_flags(coinm=inverse)
        orders = [
            NewOrder(
                await self._legs.next_client_id(hedge, Leg.PERP, OrderPurpose.ROLL_CLOSE),
                Leg.PERP,
                OrderPurpose.ROLL_CLOSE,
                held.perp.symbol,
                Side.BUY,
                OrderType.MARKET,
                hedge.perp_quantity,
                reduce_only=reduce_only,
                position_side=close_side,
            ),
            NewOrder(
                await self._legs.next_client_id(hedge, Leg.PERP, OrderPurpose.ROLL_OPEN),
                Leg.PERP,
                OrderPurpose.ROLL_OPEN,
                into.perp.symbol,
                Side.SELL,
                OrderType.MARKET,
                want,
                position_side=open_side,
            ),
        ]
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
        records = await ctx.ledger.orders.add(
            orders, venue=ctx.exchange.venue, at=ctx.clock.now(), hedge_id=hedge.id
        )
        log.info(
            "Rolling hedge %s: %s %s -> %s %s (%s)",
            hedge.id,
            hedge.perp_quantity,
            held.perp.symbol,
            want,
            into.perp.symbol,
            reason,
        )
        old, new = await asyncio.gather(*(ctx.sender.send(r) for r in records))
        await asyncio.gather(ctx.sender.settle(old), ctx.sender.settle(new))
        hedge = await self._note(
            hedge, perp_quantity=hedge.perp_quantity - old.filled, moved=new.filled
        )
        if old.unresolved or new.unresolved:
            await ctx.emit(
                "hedge.unresolved",
                f"hedge {hedge.id}: an order of its roll into {into.perp.symbol} has an unknown "
                "outcome; it will not be sent again and recovery resolves it",
                Severity.ALERT,
                {"close_error": outcome(old), "open_error": outcome(new)},
                hedge.id,
            )
            return hedge
        if old.error is not None or new.error is not None:
            await ctx.emit(
                "order.failed",
                f"hedge {hedge.id} roll: buy-back {outcome(old)}; new short {outcome(new)}",
                Severity.ALERT,
                {"close_error": outcome(old), "open_error": outcome(new)},
                hedge.id,
            )
        return await self.finish(hedge, held, into, reason=reason)

    async def finish(self, hedge: Hedge, held: Pair, into: Pair, *, reason: str) -> Hedge:
        """Settle a roll from what both contracts hold (the ledger's `perp_quantity` on the
        contract left, `roll_quantity` on the later one): trade what is missing, then end
        rolled, back on the contract held, or closed when no short can be kept."""
        start = Decimal(hedge.metrics.get(ROLL_START, str(hedge.perp_quantity)))
        want = Decimal(hedge.metrics.get(ROLL_TARGET, str(start)))
        old_left, moved = hedge.perp_quantity, Decimal(hedge.metrics.get(ROLL_HELD, "0"))
        if old_left > 0:  # the contract left: buy back what is still short there
            done = await self._legs.trade(
                hedge, held, Leg.PERP, Side.BUY, old_left, OrderPurpose.ROLL_CLOSE, retry=True
            )
            old_left -= done.filled + done.gone
        # The later contract holds what the buy-back freed, never more (no double short).
        share = (start - old_left) / start if start > 0 else Decimal(1)
        target = floor_to_step(want * share, into.perp.step_size)
        if moved < target:
            done = await self._legs.trade(
                hedge, into, Leg.PERP, Side.SELL, target - moved, OrderPurpose.ROLL_OPEN, retry=True
            )
            moved += done.filled
        elif moved > target:
            done = await self._legs.trade(
                hedge, into, Leg.PERP, Side.BUY, moved - target, OrderPurpose.TRIM, retry=True
            )
            moved -= done.filled + done.gone
        hedge = await self._note(hedge, perp_quantity=old_left, moved=moved)
        if old_left <= 0 and moved > 0:
            return await self._rolled(hedge, held, into, moved, reason)
        if old_left > 0 and moved > 0:
            await self._ctx.emit(
                "hedge.roll_incomplete",
                f"hedge {hedge.id}: roll unfinished, {old_left} short on {held.perp.symbol} "
                f"and {moved} on {into.perp.symbol}; will retry",
                Severity.ALERT,
                {"held": str(old_left), "moved": str(moved)},
                hedge.id,
            )
            return hedge
        hedge = await self._clear(hedge)
        if old_left <= 0:  # the old short is gone and no new one could be sold
            why = f"roll into {into.perp.symbol} failed after the buy-back: no short; spot sold"
            await self._failed(hedge, why, Severity.ALERT)
            return await self._close_spot(hedge, held, why)
        await self._failed(
            hedge,
            f"roll into {into.perp.symbol} not done: the hedge stays on {held.perp.symbol}",
            Severity.WARNING,
        )
        if old_left < start:  # part of the old short was bought back: match the spot to it
            return await self._equalise(hedge, held)
        return hedge

    async def _target(
        self, hedge: Hedge, held: Pair, into: Pair, held_quote: Quote, into_quote: Quote
    ) -> Decimal:
        """The short to sell on `into`: the same base quantity (USDⓈ-M), or the whole
        contracts the hedge's coin is worth at `into`'s bid (COIN-M)."""
        perp = into.perp
        if not held.perp.is_inverse:
            quantity = floor_to_step(hedge.perp_quantity, perp.step_size)
            if quantity < perp.min_qty or quantity * into_quote.bid < perp.min_notional:
                raise SizingError(
                    f"{quantity} {held.base} is below {perp.symbol}'s filters "
                    f"(min quantity {perp.min_qty}, min notional {perp.min_notional})"
                )
            return quantity
        assert self._coinm is not None
        size = perp.contract_size
        entry = hedge.entry_perp_price
        open_pnl = ZERO
        if entry and held_quote.ask > 0:
            open_pnl = short_pnl_coin(
                hedge.perp_quantity, held.perp.contract_size, entry, held_quote.ask
            )
        coin = await self._coinm.coin_of(hedge, held) + open_pnl
        if into_quote.bid <= 0:
            raise SizingError(f"{perp.symbol}: no bid")
        # The nearest whole number: what stays unhedged is at most half a contract either way
        # (the short's fees, paid in the coin, would otherwise cost a contract at each roll).
        contracts = (coin * into_quote.bid / size).to_integral_value(rounding=ROUND_HALF_EVEN)
        if contracts < max(perp.min_qty, Decimal(1)):
            raise SizingError(f"{coin} {held.base} is less than one {size} USD contract")
        rest = unhedged_usd(coin, contracts, size, into_quote.bid)
        if abs(rest) > self._ctx.risk.max_unhedged_usd:
            raise SizingError(
                f"{rest:.2f} USD would stay unhedged on {perp.symbol}, above "
                f"risk.max_unhedged_usd {self._ctx.risk.max_unhedged_usd}"
            )
        return contracts

    async def _rolled(
        self, hedge: Hedge, held: Pair, into: Pair, moved: Decimal, reason: str
    ) -> Hedge:
        ctx = self._ctx
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

    async def _failed(self, hedge: Hedge, why: str, severity: Severity) -> None:
        await self._ctx.emit(
            "hedge.roll_failed", f"hedge {hedge.id}: {why}", severity, {}, hedge.id
        )

    async def _denied(self, hedge: Hedge, into: Pair, why: str) -> Hedge:
        await self._ctx.emit(
            "hedge.roll_denied",
            f"hedge {hedge.id}: roll into {into.perp.symbol} not sent: {why}",
            Severity.WARNING,
            {"to": into.perp.symbol},
            hedge.id,
        )
        return hedge
