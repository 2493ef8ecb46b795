"""Opening a hedge: size it, write both orders to the ledger, send both legs at once.

The spot buy and the perpetual sell go out in one `asyncio.gather` (across venues the
faster venue's leg waits out the latency difference); then:

- both filled: the legs are equalised to within `max_leg_imbalance_steps` and the hedge is
  OPEN;
- one leg failed: the filled leg is unwound at once and the hedge is FAILED with the reason;
- an order whose response was lost is looked up by client order id, never sent again; if
  the exchange cannot say, the hedge stays OPENING with an alert and recovery finishes it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from decimal import Decimal

from bot import failpoints
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
    client_order_id,
)
from bot.domain.ledger import NewOrder, OrderRecord
from bot.errors import ExchangeError
from bot.exchange.venues import arrival_delay
from bot.execution.hedge_context import ZERO, HedgeContext, outcome
from bot.execution.leg_trader import LegTrader
from bot.execution.legs import LegResult
from bot.execution.sizing import SizingError, size_hedge
from bot.execution.unwind import HedgeUnwinder

log = logging.getLogger(__name__)


class HedgeOpener:
    """Opens hedges, both legs together, and settles what the two orders did."""

    def __init__(
        self,
        ctx: HedgeContext,
        legs: LegTrader,
        unwinder: HedgeUnwinder,
        *,
        uids: Callable[[], str],
        run_id: int | None,
    ) -> None:
        self._ctx = ctx
        self._legs = legs
        self._unwinder = unwinder
        self._uids = uids
        self._run_id = run_id

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
            await self._ctx.setup.prepare(pair.perp.symbol)
            spot_balances = await self._ctx.exchange.fetch_spot_balances()
            futures = await self._ctx.exchange.fetch_futures_account()
        except ExchangeError as exc:
            await self._ctx.emit(
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
                spot_fee=self._ctx.base_fee,
                leverage=self._ctx.setup.leverage,
                spot_free_quote=free_quote.free if free_quote else ZERO,
                futures_available=futures.available_balance,
                balance_buffer=self._ctx.risk.balance_buffer,
                margin_buffer=self._ctx.risk.margin_buffer,
            )
        except SizingError as exc:
            await self._ctx.emit(
                "hedge.sizing_denied",
                str(exc),
                Severity.WARNING,
                {"pair": pair.key, "notional": str(notional)},
            )
            return None
        uid = self._uids()
        position_side, _ = self._ctx.setup.open_short_flags()
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
        hedge, (spot_record, perp_record) = await self._ctx.ledger.hedges.create(
            uid=uid,
            pair=pair.key,
            spot_symbol=pair.spot.symbol,
            perp_symbol=pair.perp.symbol,
            target_quantity=size.quantity,
            target_notional=size.notional,
            reason=reason,
            metrics={k: str(v) for k, v in metrics.items()},
            at=self._ctx.clock.now(),
            venue=self._ctx.exchange.venue,
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
        await asyncio.gather(self._ctx.sender.settle(spot), self._ctx.sender.settle(perp))
        return await self._finish_open(hedge, pair, spot, perp)

    async def _send_aligned(self, record: OrderRecord) -> LegResult:
        """Send one opening leg; across venues the faster venue's leg waits out the latency
        difference, so both orders reach their exchanges together (0 on one venue)."""
        delay = arrival_delay(self._ctx.exchange, record.symbol)
        if delay > 0:
            await self._ctx.clock.sleep(delay)
        return await self._ctx.sender.send(record)

    async def _finish_open(
        self, hedge: Hedge, pair: Pair, spot: LegResult, perp: LegResult
    ) -> Hedge:
        spot_net = spot.filled - spot.base_fee(pair.base)
        perp_qty = perp.filled
        hedge = await self._ctx.ledger.hedges.update(
            hedge.id,
            at=self._ctx.clock.now(),
            spot_quantity=spot_net,
            perp_quantity=perp_qty,
            entry_spot_price=spot.average_price,
            entry_perp_price=perp.average_price,
        )
        if spot.unresolved or perp.unresolved:
            await self._ctx.emit(
                "hedge.unresolved",
                f"hedge {hedge.id}: an order's outcome is unknown; it will not be sent again "
                "and reconciliation resolves it",
                Severity.ALERT,
                {"spot_error": outcome(spot), "perp_error": outcome(perp)},
                hedge.id,
            )
            return hedge
        if spot_net <= 0 and perp_qty <= 0:
            reason = f"both legs failed: spot {outcome(spot)}; perp {outcome(perp)}"
            return await self._unwinder.fail(hedge, reason)
        if spot_net <= 0 or perp_qty <= 0:
            failed = "spot" if spot_net <= 0 else "perp"
            error = outcome(spot if failed == "spot" else perp)
            return await self._unwinder.unwind(hedge, pair, f"{failed} leg failed: {error}")
        spot_net, perp_qty = await self._legs.equalise(hedge, pair, spot_net, perp_qty)
        if spot_net <= 0 or perp_qty <= 0:
            return await self._unwinder.unwind(hedge, pair, "legs could not be equalised")
        hedge = await self._ctx.ledger.hedges.transition(
            hedge.id,
            HedgeState.OPEN,
            reason="both legs filled",
            at=self._ctx.clock.now(),
            spot_quantity=spot_net,
            perp_quantity=perp_qty,
            opened_at=self._ctx.clock.now(),
            target_quantity=perp_qty,
            target_notional=(perp_qty * (spot.average_price or ZERO)).quantize(Decimal("0.01")),
        )
        await self._ctx.emit(
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


def _gap_ms(a: LegResult, b: LegResult) -> str | None:
    if a.sent_at is None or b.sent_at is None:
        return None
    return f"{abs((a.sent_at - b.sent_at).total_seconds()) * 1000:.3f}"
