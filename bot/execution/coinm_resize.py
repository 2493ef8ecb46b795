"""Shrinking a COIN-M hedge in whole contracts, leg after leg.

To a target notional of N USD the short keeps floor(N / contract size) contracts (at least
one; fewer than one is a close). The steps, each leaving nothing naked if the next fails:

1. **buy back** the contracts beyond the target (reduceOnly in one-way mode,
   positionSide=SHORT in hedge mode, retried). Nothing bought back: the hedge is unchanged.
2. **transfer** back to spot the coin those contracts no longer need: the hedge's margin
   less the coin value of the contracts kept at the buy-back price, kept above it by what
   `max_unhedged_usd` allows no more. The bought-back part's P&L stays in the COIN-M wallet
   and is moved with the rest at the close. A transfer that fails leaves the coin in the
   COIN-M wallet with an alert (it is still the hedge's, moved back at the close).
3. **sell** that coin on spot.

Growing a COIN-M hedge is not done: it is kept as it is (`hedge.resize_denied`).
"""

from __future__ import annotations

import logging
from decimal import ROUND_FLOOR, Decimal

from bot.domain import Hedge, Leg, OrderPurpose, Pair, Severity, Side
from bot.domain.numbers import floor_to_step
from bot.execution.coinm_margin import CoinMargin, margin_of
from bot.execution.coinm_sizing import unhedged_usd
from bot.execution.hedge_context import ZERO, HedgeContext
from bot.execution.leg_trader import LegTrader

log = logging.getLogger(__name__)


def contracts_for(notional: Decimal, pair: Pair) -> Decimal:
    """Whole contracts of `pair`'s COIN-M future in `notional` USD."""
    return (notional / pair.perp.contract_size).to_integral_value(rounding=ROUND_FLOOR)


class CoinmResizer:
    """Shrinks an OPEN COIN-M hedge to fewer whole contracts."""

    def __init__(self, ctx: HedgeContext, legs: LegTrader, margin: CoinMargin) -> None:
        self._ctx = ctx
        self._legs = legs
        self._margin = margin

    async def shrink(self, hedge: Hedge, pair: Pair, keep: Decimal, *, price: Decimal) -> Hedge:
        """Buy back all but `keep` contracts (>= 1), move their coin back and sell it;
        `price` (the future's ask) values the coin the kept contracts need."""
        ctx = self._ctx
        cut = hedge.perp_quantity - keep
        if cut <= 0:
            return hedge
        done = await self._legs.trade(
            hedge, pair, Leg.PERP, Side.BUY, cut, OrderPurpose.RESIZE, retry=True
        )
        kept = hedge.perp_quantity - done.filled - done.gone
        hedge = await ctx.ledger.hedges.update(hedge.id, at=ctx.clock.now(), perp_quantity=kept)
        if done.filled <= 0:
            await ctx.emit(
                "hedge.resize_failed",
                f"hedge {hedge.id}: no contract bought back ({done.error}); kept as it was",
                Severity.WARNING,
                {"contracts": str(cut)},
                hedge.id,
            )
            return hedge
        bought_at = done.average_price or price
        size, limit = pair.perp.contract_size, ctx.risk.max_unhedged_usd
        needed = kept * size / bought_at + limit / bought_at / 2  # kept well inside the limit
        spare = floor_to_step(max(margin_of(hedge) - needed, ZERO), pair.spot.step_size)
        if spare > 0:
            moved = await self._margin.move(
                hedge,
                pair.base,
                spare,
                into=False,
                attempts=ctx.risk.close_retry_attempts,
                reason=f"resize: coin of {done.filled} contracts bought back, to sell",
            )
            hedge = moved.hedge
            if moved.done:
                sold = await self._legs.trade(
                    hedge, pair, Leg.SPOT, Side.SELL, spare, OrderPurpose.RESIZE, retry=True
                )
                hedge = await ctx.ledger.hedges.update(
                    hedge.id,
                    at=ctx.clock.now(),
                    spot_quantity=hedge.spot_quantity - sold.filled - sold.gone,
                )
        rest = unhedged_usd(hedge.spot_quantity, kept, size, bought_at)
        hedge = await ctx.ledger.hedges.update(
            hedge.id,
            at=ctx.clock.now(),
            target_quantity=kept,
            target_notional=kept * size,
            metrics=dict(hedge.metrics) | {"unhedged_usd": str(rest.quantize(Decimal("0.01")))},
        )
        severity = Severity.INFO if abs(rest) <= limit else Severity.ALERT
        await ctx.emit(
            "hedge.resized",
            f"hedge {hedge.id}: COIN-M short cut to {kept} contracts; {rest:.2f} USD unhedged",
            severity,
            {"contracts": str(kept), "unhedged_usd": str(rest)},
            hedge.id,
        )
        return hedge
