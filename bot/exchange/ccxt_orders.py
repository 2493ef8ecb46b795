"""Binance orders through ccxt: place, look up, cancel, and our trades.

- Orders are checked against the instrument's filters before ccxt sees them (Binance's rules
  and codes, shared with the simulator), so ccxt never truncates or rounds them silently.
- An order POST that may have executed (timeout, lost connection, 5xx) is resolved by
  looking the order up by client order id, never by sending it again.
- A cancel answered "unknown order" is checked against the order's state: aiohttp resends a
  DELETE whose keep-alive connection dropped, and the first one may have cancelled it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from functools import partial
from typing import Any

from bot.clock import ms_from_utc
from bot.domain import Fill, Instrument, Order, OrderRequest, OrderStatus, OrderType
from bot.errors import (
    BadResponseError,
    CarrybotError,
    OrderNotFound,
    OrderRejected,
    OrderStatusUnknown,
    TemporaryError,
)
from bot.exchange import binance_parse as parse
from bot.exchange import ccxt_calls as calls
from bot.exchange.ccxt_calls import BinanceSession
from bot.exchange.ccxt_market_data import PAGE, BinanceMarketData
from bot.exchange.history_pages import FUTURES_TRADES_WINDOW, SPOT_TRADES_WINDOW, read_windows
from bot.exchange.sim_filters import check_order
from bot.exchange.translate import may_have_executed

logger = logging.getLogger(__name__)

LOOKUP_BACKOFF_SECONDS = (0.25, 0.5, 1.0)


class BinanceOrders:
    """Order placement, lookup and cancellation, and the account's trades, on Binance."""

    def __init__(self, session: BinanceSession, markets: BinanceMarketData) -> None:
        self._s = session
        self._markets = markets

    async def create_order(self, request: OrderRequest) -> Order:
        self._s.require_keys("create_order")
        inst = await self._markets.instrument(request.symbol)
        # ccxt truncates amounts to the step and rounds prices to the tick without a word:
        # refuse what Binance would refuse, with its code, before ccxt can alter the order.
        check_order(request, inst, reference_price=None)
        params: dict[str, Any] = {"newClientOrderId": request.client_order_id}
        if request.reduce_only:
            params["reduceOnly"] = True
        if request.position_side is not None:
            params["positionSide"] = request.position_side.value
        price = None
        if request.type is OrderType.LIMIT:
            if request.price is None:
                raise OrderRejected("a limit order needs a price")
            price = str(request.price)
            params["timeInForce"] = "GTC"
        try:
            raw = await self._s.client.create_order(
                request.symbol,
                request.type.value,
                request.side.value,
                str(request.quantity),
                price,
                params,
            )
        except Exception as exc:
            error = await self._s.mapped(exc)
            if may_have_executed(error):
                logger.warning(
                    "Order %s on %s: response lost (%s); looking it up",
                    request.client_order_id,
                    request.symbol,
                    error,
                )
                return await self._resolve_lost(request, error)
            raise error from exc
        return self._order(raw, inst)

    async def _resolve_lost(self, request: OrderRequest, cause: CarrybotError) -> Order:
        for delay in LOOKUP_BACKOFF_SECONDS:
            await self._s.clock.sleep(delay)
            try:
                order = await self.fetch_order(request.symbol, request.client_order_id)
            except (OrderNotFound, TemporaryError) as exc:
                logger.info("Lookup of order %s: %s", request.client_order_id, exc)
                continue
            logger.info("Order %s found after a lost response", request.client_order_id)
            return order
        raise OrderStatusUnknown(
            f"order {request.client_order_id} on {request.symbol}: status unknown after "
            f"{len(LOOKUP_BACKOFF_SECONDS)} lookups ({cause})",
            client_order_id=request.client_order_id,
            symbol=request.symbol,
        ) from cause

    def _order(self, raw: object, inst: Instrument) -> Order:
        info = raw.get("info") if isinstance(raw, dict) else None
        if not isinstance(info, dict):
            raise BadResponseError(f"order on {inst.symbol}: expected an object")
        try:
            return parse.order(info, inst)
        except (ValueError, KeyError, TypeError) as exc:
            raise BadResponseError(f"order on {inst.symbol}: {exc}") from exc

    async def fetch_order(self, symbol: str, client_order_id: str) -> Order:
        self._s.require_keys("fetch_order")
        inst = await self._markets.instrument(symbol)
        raw = await self._s.call(
            f"order {client_order_id}",
            lambda: self._s.client.fetch_order(
                None, symbol, {"origClientOrderId": client_order_id}
            ),
            signed_read=True,
        )
        return self._order(raw, inst)

    async def cancel_order(self, symbol: str, client_order_id: str) -> Order:
        self._s.require_keys("cancel_order")
        inst = await self._markets.instrument(symbol)
        try:
            raw = await self._s.call(
                f"cancel {client_order_id}",
                lambda: self._s.client.cancel_order(
                    None, symbol, {"origClientOrderId": client_order_id}
                ),
            )
        except OrderNotFound as not_found:
            # aiohttp resends a DELETE whose keep-alive connection dropped: the first one may
            # have cancelled the order, so "unknown order" is checked against its state.
            try:
                order = await self.fetch_order(symbol, client_order_id)
            except OrderNotFound:
                raise not_found from None
            if order.status is OrderStatus.CANCELED:
                return order
            raise
        return self._order(raw, inst)

    async def fetch_my_trades(self, symbol: str, since: datetime | None = None) -> Sequence[Fill]:
        """Every fill of `symbol` since `since` (window by window), or the recent ones."""
        self._s.require_keys("fetch_my_trades")
        inst = await self._markets.instrument(symbol)

        async def page(start: int | None, end: int | None) -> tuple[list[Fill], int]:
            params = {"until": end} if end is not None else {}
            raw = await self._s.call(
                f"trades {symbol}",
                partial(self._s.client.fetch_my_trades, symbol, start, PAGE, params),
                signed_read=True,
            )
            rows = list(calls.infos(raw, "trades"))
            fills = []
            for info in rows:
                try:
                    fills.append(parse.fill(info, inst))
                except (ValueError, KeyError) as exc:
                    logger.error("Dropping trade row of %s: %s", symbol, exc)
            return fills, len(rows)

        if since is None:
            fills, _ = await page(None, None)
        else:
            fills = await read_windows(
                page,
                start_ms=ms_from_utc(since),
                end_ms=self._s.history_end_ms(),
                window=FUTURES_TRADES_WINDOW if inst.is_derivative else SPOT_TRADES_WINDOW,
                limit=PAGE,
                time_ms=lambda f: ms_from_utc(f.timestamp),
            )
        unique = {f.trade_id: f for f in fills}
        return sorted(unique.values(), key=lambda f: (f.timestamp, f.trade_id))
