"""Send one order of a hedge, resolve its final state, and record it and its fills.

An order POST is never repeated: when its response is lost, the order is looked up by its
client order id until the exchange says whether it exists. "Not found" is only conclusive
once the request's signed timestamp is older than recvWindow (plus a margin): Binance
rejects a request it would process later than that, so the order can no longer appear.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from bot import failpoints
from bot.clock import Clock
from bot.domain import Fill, Order, OrderRequest, OrderStatus, Quote
from bot.domain.ledger import OrderRecord
from bot.errors import ExchangeError, OrderNotFound, OrderStatusUnknown, TemporaryError
from bot.exchange.port import ExchangePort
from bot.exchange.venues import order_absence_window
from bot.persistence.outage import OutageGuard
from bot.persistence.port import LedgerPort

log = logging.getLogger(__name__)

ZERO = Decimal(0)


@dataclass(slots=True)
class LegResult:
    """What happened to one order: its exchange state, or the error that prevented it."""

    record: OrderRecord
    order: Order | None = None
    error: ExchangeError | None = None
    fills: Sequence[Fill] = field(default_factory=list)
    sent_at: datetime | None = None
    acked_at: datetime | None = None

    @property
    def filled(self) -> Decimal:
        return self.order.filled if self.order is not None else ZERO

    @property
    def unresolved(self) -> bool:
        """The exchange could not tell whether the order exists: never send it again."""
        return self.order is None and isinstance(self.error, OrderStatusUnknown)

    @property
    def average_price(self) -> Decimal | None:
        if self.fills:
            qty = sum((f.quantity for f in self.fills), ZERO)
            return sum((f.price * f.quantity for f in self.fills), ZERO) / qty if qty else None
        return self.order.average_price if self.order is not None else None

    def base_fee(self, base: str) -> Decimal:
        """Return the fee paid in the base asset (Binance charges spot buys in the base)."""
        if self.fills:
            return sum((f.fee for f in self.fills if f.fee_asset == base), ZERO)
        if self.order is not None and self.order.fee is not None and self.order.fee_asset == base:
            return self.order.fee
        return ZERO


def request_for(record: OrderRecord) -> OrderRequest:
    """Build the exchange request of a ledger order."""
    return OrderRequest(
        symbol=record.symbol,
        side=record.side,
        type=record.type,
        quantity=record.quantity,
        client_order_id=record.client_order_id,
        price=record.price,
        reduce_only=record.reduce_only,
        position_side=record.position_side,
    )


class LegSender:
    """Send, resolve and record orders for the executor."""

    def __init__(
        self,
        exchange: ExchangePort,
        ledger: LedgerPort,
        clock: Clock,
        *,
        lookup_attempts: int = 5,
        lookup_backoff_seconds: float = 0.25,
        final_wait_seconds: float = 10.0,
        recv_window_seconds: float = 5.0,
        absence_margin_seconds: float = 2.0,
        guard: OutageGuard | None = None,
        fee_prices: FeePrices | None = None,
    ) -> None:
        self._exchange = exchange
        self.fee_prices = fee_prices or FeePrices()
        self._ledger = ledger
        self._clock = clock
        self._lookup_attempts = lookup_attempts
        self._lookup_backoff = lookup_backoff_seconds
        self._final_wait = final_wait_seconds
        self._absent_after = timedelta(seconds=recv_window_seconds + absence_margin_seconds)
        self._guard = guard

    async def send(self, record: OrderRecord) -> LegResult:
        """POST one order; on a lost response look it up by client order id instead."""
        result = LegResult(record)
        result.sent_at = self._clock.now()
        try:
            result.order = await self._exchange.create_order(request_for(record))
            failpoints.hit(failpoints.LEG_ACKED)
        except OrderStatusUnknown as exc:
            log.warning("Order %s status unknown after send: %s", record.client_order_id, exc)
            result.order, absent = await self.lookup(
                record.symbol, record.client_order_id, sent_at=result.sent_at
            )
            if result.order is None:
                result.error = (
                    OrderNotFound("order never reached the exchange", code=-2013) if absent else exc
                )
        except ExchangeError as exc:
            result.error = exc
        result.acked_at = self._clock.now()
        return result

    async def lookup(
        self, symbol: str, client_order_id: str, *, sent_at: datetime | None
    ) -> tuple[Order | None, bool]:
        """Ask for an order by client id; return (order, confirmed_absent).

        Absence is confirmed only by a "not found" answered after `sent_at` + recvWindow +
        margin; before that the lookup keeps asking (with backoff) up to that deadline.
        """
        deadline = (sent_at or self._clock.now()) + order_absence_window(
            self._exchange, symbol, self._absent_after
        )
        attempt = 0
        while True:
            try:
                return await self._exchange.fetch_order(symbol, client_order_id), False
            except OrderNotFound:
                if self._clock.now() >= deadline:
                    return None, True
            except TemporaryError as exc:
                log.warning(
                    "Lookup of %s failed (%s), attempt %d", client_order_id, exc, attempt + 1
                )
                if attempt + 1 >= self._lookup_attempts and self._clock.now() >= deadline:
                    return None, False
            attempt += 1
            wait = self._lookup_backoff * (2 ** min(attempt - 1, 4))
            if self._clock.now() < deadline:
                remaining = (deadline - self._clock.now()).total_seconds()
                wait = min(wait, max(remaining, 0.05))
            await self._clock.sleep(wait)

    async def settle(self, result: LegResult) -> LegResult:
        """Wait for a final state, fetch the fills, and write both to the ledger.

        With an outage guard, an outcome that cannot be written now (the database went
        down with the order in flight) waits in the guard like any record, and is written
        when the database is back.
        """
        if result.order is not None and not result.order.status.is_final:
            result.order = await self._wait_final(result.order)
        if result.order is not None:
            result.fills = await self._fills_of(result.order, result.sent_at)
        if self._guard is None:
            await self._record(result)
        else:
            await self._guard.write(
                f"outcome of order {result.record.client_order_id}",
                lambda: self._record(result),
            )
        return result

    async def _record(self, result: LegResult) -> None:
        cid = result.record.client_order_id
        if result.order is not None:
            await self._ledger.orders.apply(
                result.order, at=result.acked_at or self._clock.now(), sent_at=result.sent_at
            )
            if result.fills:
                await self._ledger.fills.record(
                    self._exchange.venue,
                    result.fills,
                    fee_usdt=fees_in_usdt(result.fills, self.fee_prices),
                )
        elif result.unresolved:
            await self._ledger.orders.mark_failed(
                cid,
                at=self._clock.now(),
                status=OrderStatus.UNKNOWN,
                code=None,
                message=str(result.error),
                sent_at=result.sent_at,
            )
        else:
            err = result.error
            await self._ledger.orders.mark_failed(
                cid,
                at=self._clock.now(),
                status=OrderStatus.REJECTED,
                code=err.code if err is not None else None,
                message=str(err),
                sent_at=result.sent_at,
            )

    async def _wait_final(self, order: Order) -> Order:
        deadline = self._clock.monotonic() + self._final_wait
        delay = 0.2
        while not order.status.is_final and self._clock.monotonic() < deadline:
            await self._clock.sleep(delay)
            delay = min(delay * 2, 2.0)
            try:
                order = await self._exchange.fetch_order(order.symbol, order.client_order_id)
            except TemporaryError as exc:
                log.warning("Polling %s failed: %s", order.client_order_id, exc)
        if not order.status.is_final:
            log.warning(
                "Order %s not final after %.0fs: cancelling the rest",
                order.client_order_id,
                self._final_wait,
            )
            try:
                order = await self._exchange.cancel_order(order.symbol, order.client_order_id)
            except ExchangeError as exc:
                log.error("Cancel of %s failed: %s", order.client_order_id, exc)
        return order

    async def _fills_of(self, order: Order, sent_at: datetime | None) -> list[Fill]:
        if order.filled <= 0 or order.exchange_order_id is None:
            return []
        since = (sent_at or self._clock.now()) - timedelta(minutes=1)
        try:
            trades = await self._exchange.fetch_my_trades(order.symbol, since)
        except ExchangeError as exc:
            log.warning(
                "Fills of %s not fetched now (%s); reconciliation adopts them later",
                order.client_order_id,
                exc,
            )
            return []
        own = [t for t in trades if t.exchange_order_id == order.exchange_order_id]
        return [t if t.client_order_id else _with_client_id(t, order.client_order_id) for t in own]


def _with_client_id(fill: Fill, cid: str) -> Fill:
    from dataclasses import replace

    return replace(fill, client_order_id=cid)


class FeePrices:
    """USDT prices of the assets fees may be paid in besides the fill's own (BNB), kept from
    the latest spot quotes so that a BNB fee is valued when its fill is recorded."""

    ASSETS: tuple[str, ...] = ("BNB",)

    def __init__(self) -> None:
        self._prices: dict[str, Decimal] = {}

    def observe(self, spot_quotes: Mapping[str, Quote]) -> None:
        """Take the bid of each fee asset's USDT market from a snapshot's spot quotes."""
        for asset in self.ASSETS:
            quote = spot_quotes.get(f"{asset}/USDT")
            if quote is not None and quote.bid > 0:
                self._prices[asset] = quote.bid

    def get(self, asset: str) -> Decimal | None:
        return self._prices.get(asset)


def fees_in_usdt(fills: Sequence[Fill], prices: FeePrices | None = None) -> dict[str, Decimal]:
    """Convert each fill's fee to USDT: USDT as is, the base asset at the fill price, another
    asset (BNB) at its price in `prices`; a fee in an asset without a price is left out."""
    out: dict[str, Decimal] = {}
    for f in fills:
        base = f.symbol.partition("/")[0]
        if f.fee_asset == "USDT":  # also a USD pair's fee, given in USDT terms by the router
            out[f.trade_id] = f.fee
        elif f.fee_asset == base:
            out[f.trade_id] = f.fee * f.price
        elif prices is not None and (price := prices.get(f.fee_asset)) is not None:
            out[f.trade_id] = f.fee * price
        else:
            log.warning(
                "Fill %s of %s: fee %s %s has no USDT price yet; counted as 0",
                f.trade_id, f.symbol, f.fee, f.fee_asset,
            )  # fmt: skip
    return out
