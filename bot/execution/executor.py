"""The hedge executor: both legs at once, never one leg left naked.

A facade over one job per module, all sharing a `HedgeContext` (exchange, ledger, clock,
account set-up, limits, events):

- `opening`: size a hedge, write both orders to the ledger before sending, send the spot
  buy and the perpetual sell together, equalise, or unwind the leg that filled alone;
- `unwind`: flatten both legs together (unwind a failed open, close an open hedge), a
  failing leg retried alone with backoff and never re-opening anything;
- `recovery`: after a crash, ask about every unfinished order by client order id before
  sending anything, then finish the open, the close or the unwind;
- `leg_trader`: one leg traded with retries (an order whose outcome is unknown is never sent
  again; -4061 re-detects the position mode) and the legs equalised;
- `coinm`: COIN-M hedges (spot coin moved to the COIN-M wallet as the margin of a short in
  whole contracts), leg after leg, with `coinm_margin` moving the coin;
- `roll`: a dated hedge's short moved to a later contract, both futures orders at once,
  the spot kept;
- here: resizing and rebalancing an OPEN hedge.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from decimal import Decimal

from bot.clock import Clock
from bot.config import RiskConfig
from bot.domain import EventSink, Hedge, Leg, OrderPurpose, Pair, Quote, Severity, Side
from bot.domain.hedge import ROLL_TO
from bot.domain.numbers import floor_to_step
from bot.domain.params import FeeParams
from bot.errors import ExchangeError
from bot.exchange.port import ExchangePort, coinm_of
from bot.exchange.venues import spot_fee_in_base
from bot.execution.account_setup import AccountSetup
from bot.execution.coinm import CoinmHedger
from bot.execution.hedge_context import ZERO, HedgeContext
from bot.execution.leg_trader import LegTrader
from bot.execution.legs import FeePrices, LegSender
from bot.execution.opening import HedgeOpener
from bot.execution.recovery import HedgeRecovery
from bot.execution.roll import HedgeRoller
from bot.execution.sizing import SizingError, common_step, size_hedge
from bot.execution.unwind import HedgeUnwinder
from bot.persistence.outage import OutageGuard
from bot.persistence.port import LedgerPort

__all__ = ["HedgeExecutor"]


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
        sender = sender or LegSender(
            exchange,
            ledger,
            clock,
            final_wait_seconds=risk.order_timeout_seconds,
            recv_window_seconds=recv_window_ms / 1000,
            guard=guard,
        )
        self._ctx = HedgeContext(exchange, ledger, clock, setup, risk, ZERO, events, sender)
        self._legs = LegTrader(self._ctx)
        self._unwinder = HedgeUnwinder(self._ctx, self._legs)
        self._opener = HedgeOpener(self._ctx, self._legs, self._unwinder, uids=uids, run_id=run_id)
        self._futures_taker = fees.effective().futures_taker
        side = coinm_of(exchange)
        self._coinm = (
            CoinmHedger(
                self._ctx,
                side,
                self._legs,
                self._unwinder,
                uids=uids,
                run_id=run_id,
                futures_fee=lambda: self._futures_taker,
            )
            if side is not None
            else None
        )
        self._roller = HedgeRoller(self._ctx, self._legs, self._unwinder, self._coinm)
        self._recovery = HedgeRecovery(
            self._ctx, self._legs, self._unwinder, self._coinm, self._roller
        )
        self.use_fees(fees)

    def use_fees(self, fees: FeeParams, *, spot_in_bnb: bool | None = None) -> None:
        """Take the fee rates in force (the account's, refreshed daily when live);
        `spot_in_bnb` says whether BNB pays spot fees (default: `fees.bnb_discount`)."""
        # Binance charges a spot buy's fee in the base asset, so the buy is grossed up;
        # Bitstamp charges it in the quote asset, and BNB pays it when the discount is on.
        self._futures_taker = fees.effective().futures_taker
        bnb = fees.bnb_discount if spot_in_bnb is None else spot_in_bnb
        in_base = spot_fee_in_base(self._ctx.exchange) and not bnb
        self._ctx.base_fee = fees.effective().spot_taker if in_base else ZERO

    @property
    def fee_prices(self) -> FeePrices:
        """The USDT prices fees in another asset (BNB) are valued at when recorded."""
        return self._ctx.sender.fee_prices

    @property
    def spot_fee_in_base(self) -> Decimal:
        """The spot fee rate a buy pays in the base asset (0 where it is paid in quote)."""
        return self._ctx.base_fee

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
        if pair.perp.is_inverse:
            coinm = await self._coinm_or_refuse(pair)
            if coinm is None:
                return None
            return await coinm.open(
                pair,
                notional,
                reason=reason,
                metrics=metrics,
                spot_quote=spot_quote,
                perp_quote=perp_quote,
            )
        return await self._opener.open(
            pair,
            notional,
            reason=reason,
            metrics=metrics,
            spot_quote=spot_quote,
            perp_quote=perp_quote,
        )

    async def close(self, hedge: Hedge, pair: Pair, *, reason: str) -> Hedge:
        """Close both legs concurrently; a failing leg is retried alone, never re-opened.

        A COIN-M hedge closes leg after leg: short bought back, coin moved back, spot sold.
        """
        if pair.perp.is_inverse:
            coinm = await self._coinm_or_refuse(pair)
            return hedge if coinm is None else await coinm.close(hedge, pair, reason=reason)
        return await self._unwinder.close(hedge, pair, reason=reason)

    async def _coinm_or_refuse(self, pair: Pair) -> CoinmHedger | None:
        if self._coinm is None:
            await self._ctx.emit(
                "hedge.not_opened",
                f"{pair.key}: {pair.perp.symbol} is COIN-M and this exchange has no COIN-M "
                'side loaded (add "coinm" to [strategy] instruments)',
                Severity.ALERT,
                {"pair": pair.key},
            )
        return self._coinm

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
        """Move an OPEN dated hedge's short from `held` to the later contract of `into`,
        both futures orders at once; the spot is kept (see `bot.execution.roll`)."""
        return await self._roller.roll(
            hedge,
            held,
            into,
            reason=reason,
            spot_quote=spot_quote,
            held_quote=held_quote,
            into_quote=into_quote,
        )

    async def recover(self, hedge: Hedge, pair: Pair, *, roll_into: Pair | None = None) -> Hedge:
        """Finish a hedge left OPENING, CLOSING or UNWINDING, or an OPEN one whose roll into
        `roll_into` is unfinished, asking about every order first.

        No order is sent before the exchange has said whether the earlier ones exist.
        """
        return await self._recovery.recover(hedge, pair, roll_into=roll_into)

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
        """Grow or shrink an OPEN hedge to about `notional`, both legs together.

        A COIN-M hedge shrinks in whole contracts, leg after leg (`coinm_resize`: buy back,
        move the coin back, sell it; under one contract it is closed); asked to grow it is
        kept as is.
        """
        if ROLL_TO in hedge.metrics:
            return hedge  # an unfinished roll is finished first (`recover`)
        if pair.perp.is_inverse:
            if notional < hedge.target_notional and self._coinm is not None:
                return await self._coinm.shrink(
                    hedge, pair, notional, reason=reason, price=perp_quote.ask
                )
            await self._ctx.emit(
                "hedge.resize_denied",
                f"hedge {hedge.id}: a COIN-M hedge is not grown; open another carry instead",
                Severity.WARNING,
                {},
                hedge.id,
            )
            return hedge
        price = spot_quote.ask
        target = floor_to_step(notional / price, common_step(pair)) if price > 0 else ZERO
        delta = target - hedge.perp_quantity
        if abs(delta) < common_step(pair):
            return hedge
        if delta < 0:
            cut = -delta
            spot_cut = min(
                floor_to_step(cut, pair.spot.step_size), await self._legs.sellable_spot(hedge, pair)
            )
            spot_done, perp_done = await asyncio.gather(
                self._legs.trade(
                    hedge, pair, Leg.SPOT, Side.SELL, spot_cut, OrderPurpose.RESIZE, retry=True
                ),
                self._legs.trade(
                    hedge, pair, Leg.PERP, Side.BUY, cut, OrderPurpose.RESIZE, retry=True
                ),
            )
            spot_qty = hedge.spot_quantity - spot_done.filled - spot_done.gone
            perp_qty = hedge.perp_quantity - perp_done.filled - perp_done.gone
        else:
            try:
                futures = await self._ctx.exchange.fetch_futures_account()
                balances = await self._ctx.exchange.fetch_spot_balances()
                quote_free = balances.get(pair.spot.quote)
                size = size_hedge(
                    pair,
                    delta * price,
                    spot_ask=spot_quote.ask,
                    perp_bid=perp_quote.bid,
                    spot_fee=self._ctx.base_fee,
                    leverage=self._ctx.setup.leverage,
                    spot_free_quote=quote_free.free if quote_free else ZERO,
                    futures_available=futures.available_balance,
                    balance_buffer=self._ctx.risk.balance_buffer,
                    margin_buffer=self._ctx.risk.margin_buffer,
                )
            except (SizingError, ExchangeError) as exc:
                await self._ctx.emit(
                    "hedge.resize_denied",
                    f"hedge {hedge.id}: {exc}",
                    Severity.WARNING,
                    {},
                    hedge.id,
                )
                return hedge
            spot_done, perp_done = await asyncio.gather(
                self._legs.trade(
                    hedge, pair, Leg.SPOT, Side.BUY, size.spot_order_quantity, OrderPurpose.RESIZE
                ),
                self._legs.trade(
                    hedge, pair, Leg.PERP, Side.SELL, size.quantity, OrderPurpose.RESIZE
                ),
            )
            spot_qty = hedge.spot_quantity + spot_done.filled * (1 - self._ctx.base_fee)
            perp_qty = hedge.perp_quantity + perp_done.filled
        hedge = await self._ctx.ledger.hedges.update(
            hedge.id,
            at=self._ctx.clock.now(),
            spot_quantity=spot_qty,
            perp_quantity=perp_qty,
            target_quantity=perp_qty,
            target_notional=(perp_qty * price).quantize(Decimal("0.01")),
        )
        spot_qty, perp_qty = await self._legs.equalise(hedge, pair, spot_qty, perp_qty)
        await self._ctx.emit(
            "hedge.resized",
            f"hedge {hedge.id} resized to {perp_qty} {pair.base}: {reason}",
            Severity.INFO,
            {"spot": str(spot_qty), "perp": str(perp_qty)},
            hedge.id,
        )
        got = await self._ctx.ledger.hedges.get(hedge.id)
        assert got is not None
        return got

    def roll_blocked(self, hedge_id: int) -> str | None:
        """Why the hedge's roll may not be tried now (cooling down after a failed one)."""
        return self._roller.backoff.blocked(hedge_id)

    def equalise_paused(self, hedge: Hedge) -> bool:
        """True while `hedge`'s equalising waits after a rejected correction (its legs as
        they were then): a rebalance now would send nothing."""
        return self._legs.equalise_paused(hedge) is not None

    async def rebalance(self, hedge: Hedge, pair: Pair) -> Hedge:
        """Equalise the legs of an OPEN hedge that drifted (a COIN-M hedge: its coin is
        bounded by `max_unhedged_usd` at open; nothing is traded here)."""
        if ROLL_TO in hedge.metrics:
            return hedge  # an unfinished roll is finished first (`recover`)
        if pair.perp.is_inverse:
            got = await self._ctx.ledger.hedges.get(hedge.id)
            assert got is not None
            return got
        await self._legs.equalise(hedge, pair, hedge.spot_quantity, hedge.perp_quantity)
        got = await self._ctx.ledger.hedges.get(hedge.id)
        assert got is not None
        return got
