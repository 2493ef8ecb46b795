"""Taking a hedge apart: unwind a half-open hedge, close an open one, mark a failed one.

Both legs are flattened together (the spot sold, the short bought back); a failing leg is
retried alone with backoff and never re-opens anything. A hedge that is not flat afterwards
stays UNWINDING or CLOSING with an alert, and the next attempt continues from the ledger.
"""

from __future__ import annotations

import asyncio
import logging

from bot.domain import Hedge, HedgeState, Leg, OrderPurpose, Pair, Severity, Side
from bot.execution.hedge_context import ZERO, HedgeContext
from bot.execution.leg_trader import LegTrader, is_dust

log = logging.getLogger(__name__)


class HedgeUnwinder:
    """Flattens hedges: unwinding after a failed open, closing, and the FAILED mark."""

    def __init__(self, ctx: HedgeContext, legs: LegTrader) -> None:
        self._ctx = ctx
        self._legs = legs

    async def fail(self, hedge: Hedge, reason: str) -> Hedge:
        """Mark the hedge FAILED with `reason` and say so."""
        hedge = await self._ctx.ledger.hedges.transition(
            hedge.id,
            HedgeState.FAILED,
            reason=reason,
            at=self._ctx.clock.now(),
            close_reason=reason,
        )
        await self._ctx.emit(
            "hedge.failed",
            f"hedge {hedge.id} FAILED: {reason}",
            Severity.WARNING,
            {"reason": reason},
            hedge.id,
        )
        return hedge

    async def unwind(self, hedge: Hedge, pair: Pair, reason: str) -> Hedge:
        """Flatten whatever the hedge holds, then mark it FAILED with `reason`."""
        if hedge.state is not HedgeState.UNWINDING:
            hedge = await self._ctx.ledger.hedges.transition(
                hedge.id, HedgeState.UNWINDING, reason=reason, at=self._ctx.clock.now()
            )
            await self._ctx.emit(
                "hedge.unwinding",
                f"hedge {hedge.id}: {reason}; unwinding",
                Severity.ALERT,
                {"reason": reason},
                hedge.id,
            )
        hedge = await self.flatten(hedge, pair, OrderPurpose.UNWIND)
        if is_flat(hedge, pair):
            return await self.fail(hedge, f"{reason}; unwound to flat")
        await self._ctx.emit(
            "hedge.unwind_incomplete",
            f"hedge {hedge.id} still holds {hedge.spot_quantity} spot / "
            f"{hedge.perp_quantity} short after unwinding; will retry",
            Severity.ALERT,
            {},
            hedge.id,
        )
        return hedge

    async def flatten(self, hedge: Hedge, pair: Pair, purpose: OrderPurpose) -> Hedge:
        """Sell the spot and buy back the short concurrently; record what remains."""
        spot_target = await self._legs.sellable_spot(hedge, pair)
        spot_done, perp_done = await asyncio.gather(
            self._legs.trade(hedge, pair, Leg.SPOT, Side.SELL, spot_target, purpose, retry=True),
            self._legs.trade(
                hedge, pair, Leg.PERP, Side.BUY, hedge.perp_quantity, purpose, retry=True
            ),
        )
        fields: dict[str, object] = {
            "spot_quantity": hedge.spot_quantity - spot_done.filled - spot_done.gone,
            "perp_quantity": hedge.perp_quantity - perp_done.filled - perp_done.gone,
        }
        if spot_done.average_price is not None:
            fields["exit_spot_price"] = spot_done.average_price
        if perp_done.average_price is not None:
            fields["exit_perp_price"] = perp_done.average_price
        return await self._ctx.ledger.hedges.update(hedge.id, at=self._ctx.clock.now(), **fields)

    async def close(self, hedge: Hedge, pair: Pair, *, reason: str) -> Hedge:
        """Close both legs concurrently; a failing leg is retried alone, never re-opened."""
        if hedge.state is HedgeState.OPEN:
            hedge = await self._ctx.ledger.hedges.transition(
                hedge.id,
                HedgeState.CLOSING,
                reason=reason,
                at=self._ctx.clock.now(),
                close_reason=reason,
            )
        log.info("Closing hedge %s: %s", hedge.id, reason)
        hedge = await self.flatten(hedge, pair, OrderPurpose.CLOSE)
        if is_flat(hedge, pair):
            hedge = await self._ctx.ledger.hedges.transition(
                hedge.id,
                HedgeState.CLOSED,
                reason=reason,
                at=self._ctx.clock.now(),
                closed_at=self._ctx.clock.now(),
            )
            await self._ctx.emit(
                "hedge.closed",
                f"hedge {hedge.id} CLOSED: {reason}",
                Severity.INFO,
                {"reason": reason},
                hedge.id,
            )
            return hedge
        await self._ctx.emit(
            "hedge.close_incomplete",
            f"hedge {hedge.id} close incomplete: {hedge.spot_quantity} spot / "
            f"{hedge.perp_quantity} short left; will retry",
            Severity.ALERT,
            {"spot": str(hedge.spot_quantity), "perp": str(hedge.perp_quantity)},
            hedge.id,
        )
        return hedge


def is_flat(hedge: Hedge, pair: Pair) -> bool:
    """No short left, and the spot left is dust."""
    price = hedge.exit_spot_price or hedge.entry_spot_price or ZERO
    return hedge.perp_quantity <= 0 and is_dust(hedge.spot_quantity, price, pair)
