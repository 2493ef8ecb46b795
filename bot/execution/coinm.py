"""COIN-M hedges: spot coin bought with USDT, moved to the COIN-M wallet, shorted in contracts.

The legs go one after the other, because the coin is the short's margin:

1. **spot buy** (written to the ledger with the hedge before it is sent). Rejected or not
   filled: FAILED, nothing else sent. Outcome unknown: the hedge stays OPENING (alert) and
   recovery asks about the order first.
2. **transfer** of the coin bought to the COIN-M wallet (`coinm_margin`). Failed after its
   retries: the spot is sold (unwind), FAILED. Outcome unknown: stays OPENING (alert).
3. **short** of the USD value in whole contracts (its order written before it is sent).
   Rejected: the coin is moved back and sold (unwind), FAILED. Lost response: looked up by
   client order id, never sent again. Partly filled: the missing contracts are sold once more
   (TOP_UP); coin beyond `max_unhedged_usd` is moved back and sold (TRIM).

Closing (and unwinding) goes the other way: buy the contracts back (reduceOnly in one-way
mode, positionSide=SHORT in hedge mode, retried), then move the hedge's coin back (what it
moved in plus its short's P&L less fees, in the coin), then sell it. While the short is
open its coin never leaves the COIN-M wallet; a step that fails leaves the hedge CLOSING or
UNWINDING with an alert, and the next attempt continues from the ledger.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from decimal import Decimal

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
from bot.domain.ledger import NewOrder
from bot.domain.numbers import floor_to_step
from bot.errors import ExchangeError
from bot.exchange.port import CoinmPort
from bot.execution.coinm_close import CoinmCloser
from bot.execution.coinm_margin import MARGIN, PENDING, CoinMargin, margin_of
from bot.execution.coinm_resize import CoinmResizer, contracts_for
from bot.execution.coinm_sizing import size_coinm, unhedged_usd
from bot.execution.hedge_context import ZERO, HedgeContext, outcome
from bot.execution.leg_trader import LegTrader, is_dust
from bot.execution.legs import LegResult
from bot.execution.sizing import SizingError
from bot.execution.unwind import HedgeUnwinder

log = logging.getLogger(__name__)


class CoinmHedger:
    """Opens, closes, unwinds and recovers COIN-M hedges."""

    def __init__(
        self,
        ctx: HedgeContext,
        side: CoinmPort,
        legs: LegTrader,
        unwinder: HedgeUnwinder,
        *,
        uids: Callable[[], str],
        run_id: int | None,
        futures_fee: Callable[[], Decimal],
    ) -> None:
        self._ctx = ctx
        self._side = side
        self._legs = legs
        self._unwinder = unwinder
        self._margin = CoinMargin(ctx, side)
        self._closer = CoinmCloser(ctx, side, legs, unwinder, self._margin)
        self._resizer = CoinmResizer(ctx, legs, self._margin)
        self._uids = uids
        self._run_id = run_id
        self._futures_fee = futures_fee

    # --- open ---------------------------------------------------------------------------
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
        """Open a COIN-M hedge of about `notional` USDT; None when nothing was sent."""
        ctx = self._ctx
        try:
            await ctx.setup.prepare(pair.perp.symbol, coinm=True)
            balances = await ctx.exchange.fetch_spot_balances()
        except ExchangeError as exc:
            await ctx.emit(
                "hedge.not_opened",
                f"{pair.key}: COIN-M account set-up failed: {exc}",
                Severity.WARNING,
                {"pair": pair.key, "error": str(exc)},
            )
            return None
        free = balances.get(pair.spot.quote)
        try:
            size = size_coinm(
                pair,
                notional,
                spot_ask=spot_quote.ask,
                future_bid=perp_quote.bid,
                spot_fee=ctx.base_fee,
                futures_fee=self._futures_fee(),
                leverage=ctx.setup.leverage,
                spot_free_quote=free.free if free else ZERO,
                balance_buffer=ctx.risk.balance_buffer,
                margin_buffer=ctx.risk.margin_buffer,
                max_unhedged_usd=ctx.risk.max_unhedged_usd,
            )
        except SizingError as exc:
            await ctx.emit(
                "hedge.sizing_denied",
                str(exc),
                Severity.WARNING,
                {"pair": pair.key, "notional": str(notional)},
            )
            return None
        uid = self._uids()
        spot_order = NewOrder(
            client_order_id(uid, Leg.SPOT, OrderPurpose.OPEN),
            Leg.SPOT,
            OrderPurpose.OPEN,
            pair.spot.symbol,
            Side.BUY,
            OrderType.MARKET,
            size.spot_order_quantity,
        )
        hedge, (spot_record,) = await ctx.ledger.hedges.create(
            uid=uid,
            pair=pair.key,
            spot_symbol=pair.spot.symbol,
            perp_symbol=pair.perp.symbol,
            target_quantity=size.contracts,
            target_notional=size.hedged_usd,
            reason=reason,
            metrics={k: str(v) for k, v in metrics.items()}
            | {"contract_size": str(pair.perp.contract_size), MARGIN: "0"},
            at=ctx.clock.now(),
            venue=ctx.exchange.venue,
            orders=[spot_order],
            run_id=self._run_id,
        )
        log.info("Opening COIN-M hedge %s (%s): %s contracts", hedge.id, uid, size.contracts)

        spot = await ctx.sender.settle(await ctx.sender.send(spot_record))
        coin = spot.filled - spot.base_fee(pair.base)
        hedge = await ctx.ledger.hedges.update(
            hedge.id,
            at=ctx.clock.now(),
            spot_quantity=coin,
            entry_spot_price=spot.average_price,
        )
        if spot.unresolved:
            return await self._unresolved(hedge, spot, "spot buy")
        if coin <= 0:
            return await self._unwinder.fail(hedge, f"spot leg failed: {outcome(spot)}")
        contracts = min(size.contracts, _contracts(coin, perp_quote.bid, pair))
        if contracts < max(pair.perp.min_qty, Decimal(1)):
            return await self.unwind(hedge, pair, "spot filled less than one contract")

        moved = await self._margin.move(
            hedge,
            pair.base,
            coin,
            into=True,
            attempts=ctx.risk.close_retry_attempts,
            reason="open: the coin bought margins the short",
        )
        hedge = moved.hedge
        if moved.done is None:
            return hedge  # alerted; resolved by balance before anything else is sent
        if not moved.done:
            return await self.unwind(hedge, pair, f"margin transfer failed: {moved.error}")

        position_side, _ = ctx.setup.open_short_flags(coinm=True)
        (perp_record,) = await ctx.ledger.orders.add(
            [
                NewOrder(
                    client_order_id(uid, Leg.PERP, OrderPurpose.OPEN),
                    Leg.PERP,
                    OrderPurpose.OPEN,
                    pair.perp.symbol,
                    Side.SELL,
                    OrderType.MARKET,
                    contracts,
                    position_side=position_side,
                )
            ],
            venue=ctx.exchange.venue,
            at=ctx.clock.now(),
            hedge_id=hedge.id,
        )
        perp = await ctx.sender.settle(await ctx.sender.send(perp_record))
        hedge = await ctx.ledger.hedges.update(
            hedge.id,
            at=ctx.clock.now(),
            perp_quantity=perp.filled,
            entry_perp_price=perp.average_price,
        )
        if perp.unresolved:
            return await self._unresolved(hedge, perp, "short")
        if perp.filled <= 0:
            return await self.unwind(hedge, pair, f"perp leg failed: {outcome(perp)}")
        hedge = await self._equalise(hedge, pair, perp_quote.bid, wanted=contracts)
        if hedge.perp_quantity <= 0:
            return await self.unwind(hedge, pair, "the short could not be kept")
        return await self._opened(hedge, pair, spot, perp, reason="both legs filled")

    async def _opened(
        self,
        hedge: Hedge,
        pair: Pair,
        spot: LegResult | None,
        perp: LegResult | None,
        *,
        reason: str,
    ) -> Hedge:
        price = hedge.entry_perp_price or ZERO
        rest = unhedged_usd(
            hedge.spot_quantity, hedge.perp_quantity, pair.perp.contract_size, price
        )
        hedge = await self._ctx.ledger.hedges.update(
            hedge.id,
            at=self._ctx.clock.now(),
            metrics=dict(hedge.metrics) | {"unhedged_usd": str(rest.quantize(Decimal("0.01")))},
        )
        hedge = await self._ctx.ledger.hedges.transition(
            hedge.id,
            HedgeState.OPEN,
            reason=reason,
            at=self._ctx.clock.now(),
            opened_at=hedge.opened_at or self._ctx.clock.now(),
            target_quantity=hedge.perp_quantity,
            target_notional=hedge.perp_quantity * pair.perp.contract_size,
        )
        await self._ctx.emit(
            "hedge.opened",
            f"hedge {hedge.id} OPEN: {hedge.spot_quantity} {pair.base} in the COIN-M wallet / "
            f"{hedge.perp_quantity} contracts short; {rest:.2f} USD unhedged",
            Severity.INFO,
            {
                "spot_quantity": str(hedge.spot_quantity),
                "perp_quantity": str(hedge.perp_quantity),
                "spot_price": str(spot.average_price if spot else hedge.entry_spot_price),
                "perp_price": str(perp.average_price if perp else hedge.entry_perp_price),
                "unhedged_usd": str(rest),
                "coinm_margin": str(margin_of(hedge)),
            },
            hedge.id,
        )
        return hedge

    async def _equalise(
        self, hedge: Hedge, pair: Pair, price: Decimal, *, wanted: Decimal
    ) -> Hedge:
        """Sell the contracts a partial fill left out; move back and sell coin beyond the
        unhedged limit; buy back contracts beyond the coin."""
        ctx, size = self._ctx, pair.perp.contract_size
        price = hedge.entry_perp_price or price
        missing = wanted - hedge.perp_quantity
        if missing > 0:
            done = await self._legs.trade(
                hedge, pair, Leg.PERP, Side.SELL, missing, OrderPurpose.TOP_UP
            )
            hedge = await ctx.ledger.hedges.update(
                hedge.id, at=ctx.clock.now(), perp_quantity=hedge.perp_quantity + done.filled
            )
        rest = unhedged_usd(hedge.spot_quantity, hedge.perp_quantity, size, price)
        limit = ctx.risk.max_unhedged_usd
        if rest > limit:
            trim = floor_to_step(rest / price, pair.spot.step_size)
            if not is_dust(trim, hedge.entry_spot_price or price, pair):
                moved = await self._margin.move(
                    hedge,
                    pair.base,
                    trim,
                    into=False,
                    attempts=ctx.risk.close_retry_attempts,
                    reason="trim: coin beyond max_unhedged_usd back to spot to sell",
                )
                hedge = moved.hedge
                if moved.done:
                    done = await self._legs.trade(
                        hedge, pair, Leg.SPOT, Side.SELL, trim, OrderPurpose.TRIM, retry=True
                    )
                    hedge = await ctx.ledger.hedges.update(
                        hedge.id,
                        at=ctx.clock.now(),
                        spot_quantity=hedge.spot_quantity - done.filled - done.gone,
                    )
        elif rest < -limit:
            over = (-rest / size).to_integral_value(rounding="ROUND_CEILING")
            cut = min(hedge.perp_quantity, over)
            done = await self._legs.trade(hedge, pair, Leg.PERP, Side.BUY, cut, OrderPurpose.TRIM)
            hedge = await ctx.ledger.hedges.update(
                hedge.id, at=ctx.clock.now(), perp_quantity=hedge.perp_quantity - done.filled
            )
        rest = unhedged_usd(hedge.spot_quantity, hedge.perp_quantity, size, price)
        if abs(rest) > limit:
            await ctx.emit(
                "hedge.imbalanced",
                f"hedge {hedge.id}: {rest:.2f} USD unhedged after equalising, above "
                f"max_unhedged_usd {limit}",
                Severity.ALERT,
                {"unhedged_usd": str(rest)},
                hedge.id,
            )
        return hedge

    async def _unresolved(self, hedge: Hedge, result: LegResult, what: str) -> Hedge:
        await self._ctx.emit(
            "hedge.unresolved",
            f"hedge {hedge.id}: the {what}'s outcome is unknown; it will not be sent again "
            "and recovery resolves it",
            Severity.ALERT,
            {"error": outcome(result)},
            hedge.id,
        )
        return hedge

    # --- roll (bot.execution.roll) -----------------------------------------------------------
    async def coin_of(self, hedge: Hedge, pair: Pair) -> Decimal:
        """The coin a COIN-M hedge holds in the COIN-M wallet: its margin plus the realised
        coin P&L (less fees) of its short's fills so far."""
        return margin_of(hedge) + await self._closer.short_pnl(hedge, pair)

    async def after_roll(self, hedge: Hedge, pair: Pair) -> Hedge:
        """After a roll: keep the coin within `max_unhedged_usd` of the new short (coin
        beyond it moved back and sold, contracts beyond it bought back); record the rest."""
        price = hedge.entry_perp_price or ZERO
        size = pair.perp.contract_size
        rest = unhedged_usd(hedge.spot_quantity, hedge.perp_quantity, size, price)
        if price > 0 and abs(rest) > self._ctx.risk.max_unhedged_usd:
            hedge = await self._equalise(hedge, pair, price, wanted=hedge.perp_quantity)
            rest = unhedged_usd(hedge.spot_quantity, hedge.perp_quantity, size, price)
        return await self._ctx.ledger.hedges.update(
            hedge.id,
            at=self._ctx.clock.now(),
            metrics=dict(hedge.metrics) | {"unhedged_usd": str(rest.quantize(Decimal("0.01")))},
        )

    # --- resize (coinm_resize) ----------------------------------------------------------------
    async def shrink(
        self, hedge: Hedge, pair: Pair, notional: Decimal, *, reason: str, price: Decimal
    ) -> Hedge:
        """Cut an OPEN hedge's short to the whole contracts of `notional` USD (its coin
        moved back and sold); below one contract it is closed."""
        keep = contracts_for(notional, pair)
        if keep < 1:
            return await self.close(hedge, pair, reason=f"{reason} (under one contract: closed)")
        try:
            await self._ctx.setup.ensure_detected(coinm=True)  # the buy-back's flags follow it
        except ExchangeError as exc:
            log.warning("COIN-M position mode not read (%s): hedge %s not resized", exc, hedge.id)
            return hedge
        return await self._resizer.shrink(hedge, pair, keep, price=price)

    # --- close and unwind (coinm_close) -----------------------------------------------------
    async def close(self, hedge: Hedge, pair: Pair, *, reason: str) -> Hedge:
        """Buy the contracts back, move the coin back, sell it; CLOSED when all is done."""
        return await self._closer.close(hedge, pair, reason=reason)

    async def unwind(self, hedge: Hedge, pair: Pair, reason: str) -> Hedge:
        """Flatten what a failed open holds, then mark it FAILED with `reason`."""
        return await self._closer.unwind(hedge, pair, reason)

    # --- recovery -----------------------------------------------------------------------
    async def recover(self, hedge: Hedge, pair: Pair) -> Hedge:
        """Finish a COIN-M hedge left OPENING, CLOSING or UNWINDING, once every order of it
        has been resolved (`HedgeRecovery` asks about them first)."""
        if PENDING in hedge.metrics:
            resolved = await self._margin.resolve_pending(hedge, pair.base)
            hedge = resolved.hedge
            if resolved.done is None:
                return hedge
        hedge = await self._recompute(hedge, pair)
        match hedge.state:
            case HedgeState.OPENING:
                if hedge.spot_quantity <= 0 and hedge.perp_quantity <= 0 and margin_of(hedge) <= 0:
                    return await self._unwinder.fail(hedge, "recovered: no leg filled")
                if hedge.perp_quantity <= 0:
                    return await self.unwind(hedge, pair, "recovered without the short")
                return await self._opened(
                    hedge, pair, None, None, reason="recovered after restart: both legs filled"
                )
            case HedgeState.CLOSING:
                return await self.close(hedge, pair, reason=hedge.close_reason or "resumed close")
            case HedgeState.UNWINDING:
                return await self.unwind(hedge, pair, hedge.close_reason or "resumed unwind")
            case _:
                return hedge

    async def _recompute(self, hedge: Hedge, pair: Pair) -> Hedge:
        """Coin bought (net of fees paid in it) less coin sold, plus the short's P&L once moved
        back, and contracts short, from the ledger's orders and fills."""
        spot = perp = ZERO
        fields: dict[str, object] = {}
        for record in await self._ctx.ledger.orders.for_hedge(hedge.id):
            if record.leg is Leg.SPOT:
                fills = await self._ctx.ledger.fills.for_order(record.client_order_id)
                fee = sum((f.fee for f in fills if f.fee_asset == pair.base), ZERO)
                spot += record.filled - fee if record.side is Side.BUY else -record.filled
                if record.purpose is OrderPurpose.OPEN and hedge.entry_spot_price is None:
                    fields["entry_spot_price"] = record.average_price
            else:
                perp += record.filled if record.side is Side.SELL else -record.filled
                if record.purpose is OrderPurpose.OPEN and hedge.entry_perp_price is None:
                    fields["entry_perp_price"] = record.average_price
        if margin_of(hedge) <= 0 and "coin_pnl" in hedge.metrics:
            spot += Decimal(hedge.metrics["coin_pnl"])
            spot += Decimal(hedge.metrics.get("coin_funding", "0"))
        return await self._ctx.ledger.hedges.update(
            hedge.id,
            at=self._ctx.clock.now(),
            spot_quantity=max(spot, ZERO),
            perp_quantity=perp,
            **{k: v for k, v in fields.items() if v is not None},
        )


def _contracts(coin: Decimal, price: Decimal, pair: Pair) -> Decimal:
    """Whole contracts the coin's USD value at `price` covers."""
    return (coin * price / pair.perp.contract_size).to_integral_value(rounding="ROUND_FLOOR")
