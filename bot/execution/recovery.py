"""Recovery after a crash: finish a hedge left OPENING, CLOSING or UNWINDING, or a roll.

Every order of the hedge the ledger does not know the end of is asked about first (by client
order id); no order is sent before the exchange has said whether the earlier ones exist.
The legs' holdings are then derived from the ledger's orders and fills, and the hedge is
taken on from its state: an open finished (or unwound when one leg is missing), a close or
an unwind resumed, an unfinished roll (an OPEN hedge with `roll_to`) settled from what each
contract holds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.domain import Hedge, HedgeState, Leg, OrderPurpose, OrderStatus, Pair, Severity, Side
from bot.domain.hedge import ROLL_HELD, ROLL_TO
from bot.domain.ledger import OrderRecord
from bot.errors import ExchangeError, OrderNotFound
from bot.execution.hedge_context import ZERO, HedgeContext, outcome
from bot.execution.leg_trader import LegTrader
from bot.execution.legs import LegResult
from bot.execution.unwind import HedgeUnwinder

if TYPE_CHECKING:
    from bot.execution.coinm import CoinmHedger
    from bot.execution.roll import HedgeRoller


class HedgeRecovery:
    """Resolves a hedge's unknown orders, then finishes what the crash interrupted."""

    def __init__(
        self,
        ctx: HedgeContext,
        legs: LegTrader,
        unwinder: HedgeUnwinder,
        coinm: CoinmHedger | None = None,
        roller: HedgeRoller | None = None,
    ) -> None:
        self._ctx = ctx
        self._legs = legs
        self._unwinder = unwinder
        self.coinm = coinm
        self._roller = roller

    async def recover(self, hedge: Hedge, pair: Pair, *, roll_into: Pair | None = None) -> Hedge:
        """Finish a hedge left OPENING, CLOSING or UNWINDING, asking about every order first.

        No order is sent before the exchange has said whether the earlier ones exist.
        """
        records = await self._ctx.ledger.orders.for_hedge(hedge.id)
        results: dict[str, LegResult] = {}
        for record in records:
            if record.status.is_final and record.status is not OrderStatus.REJECTED:
                continue
            result = await self._resolve(record)
            if result is None:
                await self._ctx.emit(
                    "hedge.unresolved",
                    f"hedge {hedge.id}: order {record.client_order_id} cannot be "
                    "resolved yet; nothing sent",
                    Severity.ALERT,
                    {"client_order_id": record.client_order_id},
                    hedge.id,
                )
                return hedge
            results[record.client_order_id] = result
        if hedge.state is HedgeState.OPEN and ROLL_TO in hedge.metrics:
            return await self._finish_roll(hedge, pair, roll_into)
        if pair.perp.is_inverse:
            if self.coinm is None:
                return hedge  # no COIN-M side loaded: nothing can be sent for it
            return await self.coinm.recover(hedge, pair)
        hedge = await self._recompute_quantities(hedge, pair)
        match hedge.state:
            case HedgeState.OPENING:
                opens = {
                    r.leg: results.get(r.client_order_id)
                    for r in records
                    if r.purpose is OrderPurpose.OPEN
                }
                spot = opens.get(Leg.SPOT) or LegResult(_record_of(records, Leg.SPOT))
                perp = opens.get(Leg.PERP) or LegResult(_record_of(records, Leg.PERP))
                return await self._finish_recovered_open(hedge, pair, spot, perp)
            case HedgeState.CLOSING:
                reason = hedge.close_reason or "resumed close"
                return await self._unwinder.close(hedge, pair, reason=reason)
            case HedgeState.UNWINDING:
                return await self._unwinder.unwind(
                    hedge, pair, hedge.close_reason or "resumed unwind"
                )
            case _:
                return hedge

    async def _finish_roll(self, hedge: Hedge, held: Pair, into: Pair | None) -> Hedge:
        """Settle an unfinished roll from the ledger's orders on both contracts."""
        if into is None or self._roller is None or into.perp.symbol != hedge.metrics[ROLL_TO]:
            return hedge  # the later contract is not known here: nothing is sent
        by_symbol = {held.perp.symbol: ZERO, into.perp.symbol: ZERO}
        for record in await self._ctx.ledger.orders.for_hedge(hedge.id):
            if record.leg is Leg.PERP and record.symbol in by_symbol:
                signed = record.filled if record.side is Side.SELL else -record.filled
                by_symbol[record.symbol] += signed
        moved = max(by_symbol[into.perp.symbol], ZERO)
        hedge = await self._ctx.ledger.hedges.update(
            hedge.id,
            at=self._ctx.clock.now(),
            perp_quantity=max(by_symbol[held.perp.symbol], ZERO),
            metrics=dict(hedge.metrics) | {ROLL_HELD: str(moved)},
        )
        return await self._roller.finish(hedge, held, into, reason="resumed roll")

    async def _finish_recovered_open(
        self, hedge: Hedge, pair: Pair, spot: LegResult, perp: LegResult
    ) -> Hedge:
        if hedge.spot_quantity <= 0 and hedge.perp_quantity <= 0:
            return await self._unwinder.fail(
                hedge, f"recovered: no leg filled (spot {outcome(spot)}; perp {outcome(perp)})"
            )
        if hedge.spot_quantity <= 0 or hedge.perp_quantity <= 0:
            return await self._unwinder.unwind(hedge, pair, "recovered with one leg filled")
        spot_net, perp_qty = await self._legs.equalise(
            hedge, pair, hedge.spot_quantity, hedge.perp_quantity
        )
        return await self._ctx.ledger.hedges.transition(
            hedge.id,
            HedgeState.OPEN,
            reason="recovered after restart: both legs filled",
            at=self._ctx.clock.now(),
            spot_quantity=spot_net,
            perp_quantity=perp_qty,
            opened_at=hedge.opened_at or self._ctx.clock.now(),
            target_quantity=perp_qty,
        )

    async def _resolve(self, record: OrderRecord) -> LegResult | None:
        """Ask the exchange about a ledger order; record what it says. None: still unknown."""
        if record.status is OrderStatus.REJECTED:
            return LegResult(
                record,
                error=ExchangeError(record.error_message or "rejected", code=record.error_code),
            )
        order, absent = await self._ctx.sender.lookup(
            record.symbol, record.client_order_id, sent_at=record.sent_at or record.created_at
        )
        result = LegResult(
            record, order=order, sent_at=record.sent_at, acked_at=self._ctx.clock.now()
        )
        if order is None and not absent:
            return None
        if order is None:
            result.error = OrderNotFound("never reached the exchange", code=-2013)
        await self._ctx.sender.settle(result)
        return result

    async def _recompute_quantities(self, hedge: Hedge, pair: Pair) -> Hedge:
        """Derive both legs' holdings from the ledger's orders and fills."""
        spot = perp = ZERO
        for record in await self._ctx.ledger.orders.for_hedge(hedge.id):
            filled = record.filled
            if record.leg is Leg.SPOT:
                fills = await self._ctx.ledger.fills.for_order(record.client_order_id)
                fee_base = sum((f.fee for f in fills if f.fee_asset == pair.base), ZERO)
                spot += filled - fee_base if record.side is Side.BUY else -filled
            else:
                perp += filled if record.side is Side.SELL else -filled
        return await self._ctx.ledger.hedges.update(
            hedge.id, at=self._ctx.clock.now(), spot_quantity=spot, perp_quantity=perp
        )


def _record_of(records: list[OrderRecord], leg: Leg) -> OrderRecord:
    return next(r for r in records if r.leg is leg and r.purpose is OrderPurpose.OPEN)
