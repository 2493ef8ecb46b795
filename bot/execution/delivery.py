"""Dated futures at delivery: the exchange settles the short, the ledger records it.

Binance closes every position on a quarterly at its delivery time, at the delivery price
(no trade, no trading fee). A hedge whose short was delivered keeps its spot; before the
executor closes it (spot only), `settle_delivered` writes the short's end into the ledger:
quantity 0 and the delivery price as its exit price, so the hedge's P&L values the short
where the exchange settled it.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Protocol, runtime_checkable

from bot.clock import Clock
from bot.domain import Event, EventSink, Hedge, Pair, Severity
from bot.errors import ExchangeError
from bot.exchange.port import ExchangePort
from bot.persistence.port import LedgerPort

log = logging.getLogger(__name__)


@runtime_checkable
class DeliveryPrices(Protocol):
    """An exchange adapter that can tell a dated future's delivery price."""

    async def fetch_delivery_price(self, symbol: str) -> Decimal | None: ...


def awaiting_delivery(hedge: Hedge, pair: Pair, clock: Clock) -> bool:
    """Tell whether `hedge`'s dated short is past delivery but not yet recorded as settled.

    Such a hedge is not closed yet: its contract no longer trades (-4108), and selling the
    spot alone would leave the ledger expecting a short the exchange has settled.
    """
    expiry = pair.perp.expiry
    return (
        pair.perp.is_dated
        and expiry is not None
        and clock.now() >= expiry
        and hedge.perp_quantity > 0
    )


async def settle_delivered(
    hedge: Hedge,
    pair: Pair,
    exchange: ExchangePort,
    ledger: LedgerPort,
    clock: Clock,
    events: EventSink,
) -> Hedge:
    """Record that the exchange delivered `hedge`'s dated short; unchanged when it has not.

    Nothing is written before the delivery time, while the exchange still shows the short,
    or while the delivery price is not published (the close is then retried next cycle).
    """
    expiry = pair.perp.expiry
    now = clock.now()
    if not pair.perp.is_dated or expiry is None or now < expiry or hedge.perp_quantity <= 0:
        return hedge
    if not isinstance(exchange, DeliveryPrices):
        return hedge
    try:
        positions = await exchange.fetch_positions()
        if any(p.symbol == pair.perp.symbol and p.size != 0 for p in positions):
            return hedge  # not delivered yet
        price = await exchange.fetch_delivery_price(pair.perp.symbol)
    except ExchangeError as exc:
        log.warning("Delivery of %s not confirmed yet: %s", pair.perp.symbol, exc)
        return hedge
    if price is None:
        log.info("Delivery price of %s not published yet", pair.perp.symbol)
        return hedge
    delivered = hedge.perp_quantity
    hedge = await ledger.hedges.update(
        hedge.id, at=now, perp_quantity=Decimal(0), exit_perp_price=price
    )
    await events.emit(
        Event(
            "hedge.delivered",
            f"hedge {hedge.id}: {delivered} {pair.perp.symbol} short settled at delivery "
            f"price {price}",
            now,
            Severity.INFO,
            {"symbol": pair.perp.symbol, "quantity": str(delivered), "price": str(price)},
            hedge.id,
        )
    )
    return hedge
