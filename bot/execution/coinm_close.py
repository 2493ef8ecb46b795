"""Closing and unwinding COIN-M hedges, leg after leg.

Buy the contracts back (reduceOnly in one-way mode, positionSide=SHORT in hedge mode,
retried); once the short is gone, move the hedge's coin back (what it moved in plus its
short's P&L less fees, in the coin: realised P&L of its fills, or what a delivery settled);
then sell the coin. While the short is open its coin never leaves the COIN-M wallet. A step
that fails leaves the hedge CLOSING or UNWINDING with an alert; the next attempt continues
from the ledger (a transfer left pending is resolved by balance first).
"""

from __future__ import annotations

import logging
from decimal import Decimal

from bot.domain import Hedge, HedgeState, Leg, OrderPurpose, Pair, Severity, Side
from bot.domain.inverse import short_pnl_coin
from bot.errors import ExchangeError
from bot.exchange.port import CoinmPort
from bot.execution.coinm_margin import COIN_STEP, MARGIN, PENDING, CoinMargin, margin_of, to_coin
from bot.execution.hedge_context import ZERO, HedgeContext
from bot.execution.leg_trader import LegTrader, is_dust
from bot.execution.unwind import HedgeUnwinder

log = logging.getLogger(__name__)


class CoinmCloser:
    """Takes COIN-M hedges apart: close (CLOSED) and unwind (FAILED)."""

    def __init__(
        self,
        ctx: HedgeContext,
        side: CoinmPort,
        legs: LegTrader,
        unwinder: HedgeUnwinder,
        margin: CoinMargin,
    ) -> None:
        self._ctx = ctx
        self._side = side
        self._legs = legs
        self._unwinder = unwinder
        self._margin = margin

    async def close(self, hedge: Hedge, pair: Pair, *, reason: str) -> Hedge:
        """Buy the contracts back, move the coin back, sell it; CLOSED when all is done."""
        ctx = self._ctx
        if hedge.state is HedgeState.OPEN:
            hedge = await ctx.ledger.hedges.transition(
                hedge.id, HedgeState.CLOSING, reason=reason, at=ctx.clock.now(), close_reason=reason
            )
        hedge = await self.flatten(hedge, pair, OrderPurpose.CLOSE)
        if self.is_flat(hedge, pair):
            hedge = await ctx.ledger.hedges.transition(
                hedge.id,
                HedgeState.CLOSED,
                reason=reason,
                at=ctx.clock.now(),
                closed_at=ctx.clock.now(),
            )
            await ctx.emit(
                "hedge.closed", f"hedge {hedge.id} CLOSED: {reason}", Severity.INFO, {}, hedge.id
            )
            return hedge
        await ctx.emit(
            "hedge.close_incomplete",
            f"hedge {hedge.id} close incomplete: {hedge.perp_quantity} contracts short, "
            f"{margin_of(hedge)} {pair.base} in the COIN-M wallet, {hedge.spot_quantity} "
            f"{pair.base} held; will retry",
            Severity.ALERT,
            {"perp": str(hedge.perp_quantity), "spot": str(hedge.spot_quantity)},
            hedge.id,
        )
        return hedge

    async def unwind(self, hedge: Hedge, pair: Pair, reason: str) -> Hedge:
        """Flatten what a failed open holds, then mark it FAILED with `reason`."""
        ctx = self._ctx
        if hedge.state is not HedgeState.UNWINDING:
            hedge = await ctx.ledger.hedges.transition(
                hedge.id, HedgeState.UNWINDING, reason=reason, at=ctx.clock.now()
            )
            await ctx.emit(
                "hedge.unwinding",
                f"hedge {hedge.id}: {reason}; unwinding",
                Severity.ALERT,
                {"reason": reason},
                hedge.id,
            )
        hedge = await self.flatten(hedge, pair, OrderPurpose.UNWIND)
        if self.is_flat(hedge, pair):
            return await self._unwinder.fail(hedge, f"{reason}; unwound to flat")
        await ctx.emit(
            "hedge.unwind_incomplete",
            f"hedge {hedge.id} still holds {hedge.perp_quantity} contracts short and "
            f"{hedge.spot_quantity} {pair.base} ({margin_of(hedge)} in the COIN-M wallet) "
            "after unwinding; will retry",
            Severity.ALERT,
            {},
            hedge.id,
        )
        return hedge

    def is_flat(self, hedge: Hedge, pair: Pair) -> bool:
        """No contracts short, no coin left in the COIN-M wallet, only spot dust."""
        price = hedge.exit_spot_price or hedge.entry_spot_price or ZERO
        return (
            hedge.perp_quantity <= 0
            and PENDING not in hedge.metrics
            and margin_of(hedge) <= 0
            and is_dust(hedge.spot_quantity, price, pair)
        )

    async def flatten(self, hedge: Hedge, pair: Pair, purpose: OrderPurpose) -> Hedge:
        """Buy back the short; once it is gone move the coin back; then sell the spot."""
        ctx = self._ctx
        if hedge.perp_quantity > 0:
            try:
                await ctx.setup.ensure_detected(coinm=True)  # the close flags follow it
            except ExchangeError as exc:
                log.warning("COIN-M position mode not read (%s): nothing sent now", exc)
                return hedge
        if PENDING in hedge.metrics:
            resolved = await self._margin.resolve_pending(hedge, pair.base)
            hedge = resolved.hedge
            if resolved.done is None:
                return hedge
        if hedge.perp_quantity > 0:
            done = await self._legs.trade(
                hedge, pair, Leg.PERP, Side.BUY, hedge.perp_quantity, purpose, retry=True
            )
            fields: dict[str, object] = {
                "perp_quantity": hedge.perp_quantity - done.filled - done.gone
            }
            if done.average_price is not None:
                fields["exit_perp_price"] = done.average_price
            hedge = await ctx.ledger.hedges.update(hedge.id, at=ctx.clock.now(), **fields)
            if hedge.perp_quantity > 0:
                return hedge  # the coin stays: it margins the short that is left
        held = margin_of(hedge)
        if held > 0:
            short_pnl, funding = (
                await self.short_pnl(hedge, pair),
                await self._funding(hedge, pair),
            )
            own = held + short_pnl + funding
            try:
                available = (await self._side.fetch_coinm_account(pair.base)).available_balance
            except ExchangeError as exc:
                log.warning("COIN-M wallet not read (%s): the coin stays there for now", exc)
                return hedge
            amount = to_coin(min(own, available))
            in_spot = hedge.spot_quantity - held
            if amount > 0:
                moved = await self._margin.move(
                    hedge,
                    pair.base,
                    amount,
                    into=False,
                    attempts=ctx.risk.close_retry_attempts,
                    reason=f"{purpose.value}: the coin and the short's P&L back to spot",
                )
                hedge = moved.hedge
                if not moved.done:
                    return hedge
            # What stays behind is rounding of the short's P&L: no longer the hedge's.
            metrics = dict(hedge.metrics) | {
                MARGIN: "0",
                "coin_pnl": str(short_pnl),
                "coin_funding": str(funding),
            }
            hedge = await ctx.ledger.hedges.update(
                hedge.id,
                at=ctx.clock.now(),
                spot_quantity=in_spot + max(amount, ZERO),
                metrics=metrics,
            )
        target = await self._legs.sellable_spot(hedge, pair)
        done = await self._legs.trade(hedge, pair, Leg.SPOT, Side.SELL, target, purpose, retry=True)
        fields = {"spot_quantity": hedge.spot_quantity - done.filled - done.gone}
        if done.average_price is not None:
            fields["exit_spot_price"] = done.average_price
        return await ctx.ledger.hedges.update(hedge.id, at=ctx.clock.now(), **fields)

    async def _funding(self, hedge: Hedge, pair: Pair) -> Decimal:
        """The funding a COIN-M perpetual short received (or paid) in the coin, as recorded;
        it is in the COIN-M wallet and goes back with the margin."""
        payments = await self._ctx.ledger.funding.payments(hedge_id=hedge.id)
        return sum((p.amount for p in payments if p.asset == pair.base), ZERO)

    async def short_pnl(self, hedge: Hedge, pair: Pair) -> Decimal:
        """The coin the hedge's short made or lost: realised P&L less fees of its fills, and
        what a delivery settled without a fill."""
        total = opened = ZERO
        for record in await self._ctx.ledger.orders.for_hedge(hedge.id):
            if record.leg is not Leg.PERP:
                continue
            opened += record.filled if record.side is Side.SELL else -record.filled
            for fill in await self._ctx.ledger.fills.for_order(record.client_order_id):
                total += fill.realized_pnl or ZERO
                total -= fill.fee if fill.fee_asset == pair.base else ZERO
        entry, exit_price = hedge.entry_perp_price, hedge.exit_perp_price
        if opened > 0 and hedge.perp_quantity <= 0 and entry and exit_price:
            delivered = short_pnl_coin(opened, pair.perp.contract_size, entry, exit_price)
            total += delivered.quantize(COIN_STEP)  # booked in 8 decimals, as a fill's
        return total
