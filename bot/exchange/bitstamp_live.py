"""`BitstampSpot`: the spot half of the ExchangePort on Bitstamp, through ccxt.

- Markets (tick, step, min order value) come from ccxt's `bitstamp` market data, loaded
  once per process; quotes and 24h volumes of every pair are one `ticker/` request.
- Orders carry the bot's client order id as Bitstamp's `client_order_id`; the market
  order's answer has no fills, so the order is read back with `order_status/`.
- A POST that may have executed (timeout, lost connection, 5xx) is resolved by looking the
  order up by client order id, never by sending it again.
- Bitstamp charges the fee of a spot trade in the quote currency, also on buys
  (`spot_fee_in_base` is False), so a buy is not grossed up.
Every error leaves as `bot.errors`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial
from types import MappingProxyType
from typing import Any, TypeVar

from bot.clock import Clock, SystemClock
from bot.config import ExchangeConfig, VenuesConfig
from bot.domain import (
    Balance,
    Fill,
    FundingInfo,
    Instrument,
    MarketKind,
    Order,
    OrderBook,
    OrderRequest,
    OrderStatus,
    OrderType,
    Pair,
    Quote,
    SettledFunding,
)
from bot.domain.numbers import is_multiple, to_decimal
from bot.errors import (
    AuthError,
    BadResponseError,
    CarrybotError,
    FatalExchangeError,
    OrderNotFound,
    OrderRejected,
    OrderStatusUnknown,
    TemporaryError,
)
from bot.exchange import bitstamp_parse as parse
from bot.exchange.bitstamp_client import BitstampPacer, build_bitstamp_client, translate_bitstamp
from bot.exchange.port import MarketDataSource
from bot.exchange.translate import may_have_executed

logger = logging.getLogger(__name__)

T = TypeVar("T")
LOOKUP_BACKOFF_SECONDS = (0.25, 0.5, 1.0)
PAGE = 1000
VENUE = "bitstamp"
TIMESTAMP_WINDOW_SECONDS = 150


class BitstampSpot:
    """Bitstamp spot through ccxt. Without keys only the market-data methods work."""

    spot_fee_in_base = False
    # Bitstamp processes a signed request up to 150 s after its timestamp: an order not
    # found before that (plus a margin) may still appear.
    lost_order_window = timedelta(seconds=TIMESTAMP_WINDOW_SECONDS + 2)

    def __init__(
        self,
        venues: VenuesConfig,
        exchange: ExchangeConfig | None = None,
        *,
        api_key: str | None = None,
        api_secret: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._clock: Clock = clock or SystemClock()
        self._client = build_bitstamp_client(
            venues, exchange or ExchangeConfig(), clock=self._clock,
            api_key=api_key, api_secret=api_secret,
        )  # fmt: skip
        self._has_keys = bool(api_key and api_secret)
        self._instruments: dict[str, Instrument] = {}
        self._by_id: dict[str, Instrument] = {}
        self._by_pair_name: dict[str, Instrument] = {}
        self._fees: tuple[Decimal, Decimal] | None = None
        self.last_post_seconds: float | None = None  # round trip of the last order POST
        self._load_lock = asyncio.Lock()

    @property
    def venue(self) -> str:
        return VENUE

    @property
    def pacer(self) -> BitstampPacer:
        """The request pacer (requests per 10 minutes), for inspection."""
        assert self._client.pacer is not None
        return self._client.pacer

    # --- plumbing -----------------------------------------------------------------------
    async def _call(self, fn: Callable[[], Awaitable[T]]) -> T:
        try:
            return await fn()
        except Exception as exc:
            raise translate_bitstamp(exc, self._clock.now()) from exc

    def _require_keys(self, what: str) -> None:
        if not self._has_keys:
            raise AuthError(f"{what} needs BITSTAMP_API_KEY and BITSTAMP_API_SECRET")

    async def _instrument(self, symbol: str) -> Instrument:
        inst = (await self.load_instruments()).get(symbol)
        if inst is None:
            raise FatalExchangeError(f"unknown Bitstamp symbol {symbol}")
        return inst

    # --- instruments and fees -----------------------------------------------------------
    async def load_instruments(self, *, reload: bool = False) -> Mapping[str, Instrument]:
        """Return every Bitstamp spot market keyed by unified symbol (`BTC/USD`)."""
        async with self._load_lock:
            if self._instruments and not reload:
                return MappingProxyType(self._instruments)
            markets = await self._call(lambda: self._client.load_markets(reload=reload))
            if not isinstance(markets, dict):
                raise BadResponseError("bitstamp markets: expected markets")
            instruments: dict[str, Instrument] = {}
            for market in markets.values():
                try:
                    inst = parse.instrument(market)
                except (ValueError, KeyError, TypeError) as exc:
                    logger.error("Dropping Bitstamp market %s: %s", market.get("symbol"), exc)
                    continue
                if inst is not None:
                    instruments[inst.symbol] = inst
            self._instruments = instruments
            self._by_id = {i.exchange_symbol: i for i in instruments.values()}
            self._by_pair_name = {i.symbol: i for i in instruments.values()}
            logger.info("Loaded %d Bitstamp instruments", len(instruments))
            return MappingProxyType(self._instruments)

    async def taker_maker_fees(self) -> tuple[Decimal, Decimal]:
        """Return (taker, maker) fee rates: the account's with keys, else ccxt's schedule."""
        if self._fees is not None:
            return self._fees
        await self.load_instruments()
        if self._has_keys:
            try:
                rows = await self._call(lambda: self._client.privatePostFeesTrading({}))
                fees = _account_fees(rows)
            except (CarrybotError, ValueError) as exc:
                logger.warning("Bitstamp account fees not read (%s); using ccxt's schedule", exc)
            else:
                if fees is not None:
                    self._fees = fees
                    return fees
        market: dict[str, Any] = next(iter(self._client.markets.values()), {})
        taker = to_decimal(str(market.get("taker", "0.004")), field="taker")
        maker = to_decimal(str(market.get("maker", "0.004")), field="maker")
        self._fees = (taker, maker)
        return self._fees

    async def pairs(self) -> Sequence[Pair]:
        """Bitstamp alone has no perpetuals here: pairs are formed by the VenueRouter."""
        return ()

    async def fetch_funding_snapshot(self) -> Mapping[str, FundingInfo]:
        return {}

    async def fetch_funding_history(
        self, symbol: str, since: datetime, until: datetime | None = None
    ) -> Sequence[SettledFunding]:
        return ()

    # --- market data --------------------------------------------------------------------
    async def _tickers(self) -> list[Mapping[str, Any]]:
        await self.load_instruments()
        rows = await self._call(lambda: self._client.publicGetTicker({}))
        if not isinstance(rows, list):
            raise BadResponseError(f"bitstamp ticker: expected a list, got {type(rows).__name__}")
        return [r for r in rows if isinstance(r, dict)]

    def _ticker_instrument(self, row: Mapping[str, Any]) -> Instrument | None:
        name = str(row.get("pair", ""))
        return self._by_pair_name.get(name) or self._by_id.get(name.replace("/", "").lower())

    async def fetch_best_quotes(self, kind: MarketKind) -> Mapping[str, Quote]:
        """Return best bid/ask of every spot pair in one `ticker/` request."""
        if kind is not MarketKind.SPOT:
            return {}
        now = self._clock.now()
        out: dict[str, Quote] = {}
        for row in await self._tickers():
            inst = self._ticker_instrument(row)
            if inst is None:
                continue
            try:
                out[inst.symbol] = parse.quote(row, inst.symbol, now)
            except ValueError as exc:
                logger.error("Dropping Bitstamp ticker row of %s: %s", inst.symbol, exc)
        return out

    async def fetch_volumes_24h(self, kind: MarketKind) -> Mapping[str, Decimal]:
        """Return the 24h quote volume (base volume × VWAP) of every spot pair."""
        if kind is not MarketKind.SPOT:
            return {}
        out: dict[str, Decimal] = {}
        for row in await self._tickers():
            inst = self._ticker_instrument(row)
            if inst is None:
                continue
            try:
                out[inst.symbol] = parse.quote_volume(row)
            except ValueError as exc:
                logger.error("Dropping Bitstamp ticker volume of %s: %s", inst.symbol, exc)
        return out

    async def minute_open(self, symbol: str, when: datetime) -> Decimal | None:
        """The open of `symbol`'s 1-minute bar containing `when` (`ohlc/`), None without one."""
        inst = await self._instrument(symbol)
        start = int(when.timestamp()) // 60 * 60
        raw = await self._call(
            lambda: self._client.publicGetOhlcPair(
                {"pair": inst.exchange_symbol, "step": 60, "start": start, "limit": 1}
            )
        )
        bars = raw.get("data", {}).get("ohlc") if isinstance(raw, dict) else None
        if not isinstance(bars, list):
            raise BadResponseError(f"bitstamp ohlc {symbol}: expected data.ohlc")
        for bar in bars:
            if isinstance(bar, dict) and str(bar.get("timestamp")) == str(start):
                return to_decimal(bar.get("open"), field="open")
        return None

    async def fetch_order_book(self, symbol: str, depth: int = 20) -> OrderBook:
        inst = await self._instrument(symbol)
        raw = await self._call(
            lambda: self._client.publicGetOrderBookPair({"pair": inst.exchange_symbol})
        )
        if not isinstance(raw, dict):
            raise BadResponseError(f"bitstamp order_book {symbol}: expected an object")
        try:
            return parse.book(raw, symbol, self._clock.now(), depth)
        except (ValueError, TypeError, IndexError) as exc:
            raise BadResponseError(f"bitstamp order_book {symbol}: {exc}") from exc

    # --- orders -------------------------------------------------------------------------
    async def create_order(self, request: OrderRequest) -> Order:
        """Send one order with `client_order_id`, then read its state back."""
        self._require_keys("create_order")
        inst = await self._instrument(request.symbol)
        _check(request, inst)
        params = {"client_order_id": request.client_order_id}
        price = None
        if request.type is OrderType.LIMIT:
            if request.price is None:
                raise OrderRejected("a limit order needs a price")
            price = str(request.price)
        started = self._clock.monotonic()
        try:
            raw = await self._client.create_order(
                request.symbol, request.type.value, request.side.value,
                str(request.quantity), price, params,
            )  # fmt: skip
        except Exception as exc:
            error = translate_bitstamp(exc, self._clock.now())
            if may_have_executed(error):
                logger.warning(
                    "Bitstamp order %s on %s: response lost (%s); looking it up",
                    request.client_order_id, request.symbol, error,
                )  # fmt: skip
                return await self._resolve_lost(request, error)
            raise error from exc
        self.last_post_seconds = self._clock.monotonic() - started
        info = raw.get("info") if isinstance(raw, dict) else None
        if not isinstance(info, dict) or "id" not in info:
            raise BadResponseError(f"bitstamp order on {inst.symbol}: expected an order id")
        try:
            return await self.fetch_order(request.symbol, request.client_order_id)
        except TemporaryError as exc:
            logger.warning("Bitstamp order %s accepted; state not read yet (%s)",
                           request.client_order_id, exc)  # fmt: skip
            return Order(
                symbol=inst.symbol, client_order_id=request.client_order_id,
                exchange_order_id=str(info["id"]), side=request.side, type=request.type,
                status=OrderStatus.NEW, quantity=request.quantity, filled=Decimal(0),
                average_price=None, price=request.price, created_at=self._clock.now(),
                updated_at=self._clock.now(),
            )  # fmt: skip

    async def _resolve_lost(self, request: OrderRequest, cause: CarrybotError) -> Order:
        for delay in LOOKUP_BACKOFF_SECONDS:
            await self._clock.sleep(delay)
            try:
                order = await self.fetch_order(request.symbol, request.client_order_id)
            except (OrderNotFound, TemporaryError) as exc:
                logger.info("Lookup of Bitstamp order %s: %s", request.client_order_id, exc)
                continue
            logger.info("Bitstamp order %s found after a lost response", request.client_order_id)
            return order
        raise OrderStatusUnknown(
            f"bitstamp order {request.client_order_id} on {request.symbol}: status unknown "
            f"after {len(LOOKUP_BACKOFF_SECONDS)} lookups ({cause})",
            client_order_id=request.client_order_id,
            symbol=request.symbol,
        ) from cause

    async def fetch_order(self, symbol: str, client_order_id: str) -> Order:
        """Return one order by client order id (`order_status/`)."""
        self._require_keys("fetch_order")
        inst = await self._instrument(symbol)
        raw = await self._call(
            lambda: self._client.privatePostOrderStatus({"client_order_id": client_order_id})
        )
        if not isinstance(raw, dict):
            raise BadResponseError(f"bitstamp order_status {client_order_id}: expected an object")
        try:
            return parse.order(raw, inst, client_order_id=client_order_id)
        except (ValueError, KeyError, TypeError) as exc:
            raise BadResponseError(f"bitstamp order_status {client_order_id}: {exc}") from exc

    async def cancel_order(self, symbol: str, client_order_id: str) -> Order:
        """Cancel by client order id (Bitstamp cancels by its id) and return the final state."""
        self._require_keys("cancel_order")
        order = await self.fetch_order(symbol, client_order_id)
        if order.status.is_final:
            return order
        try:
            await self._call(
                lambda: self._client.privatePostCancelOrder({"id": order.exchange_order_id})
            )
        except OrderNotFound:
            # it became final (filled) between the read and the cancel: report that state
            final = await self.fetch_order(symbol, client_order_id)
            if not final.status.is_final:
                raise
            return final
        return await self.fetch_order(symbol, client_order_id)

    async def fetch_my_trades(self, symbol: str, since: datetime | None = None) -> Sequence[Fill]:
        """Return our fills on one pair since `since`, oldest first (`user_transactions/`)."""
        self._require_keys("fetch_my_trades")
        inst = await self._instrument(symbol)
        request: dict[str, Any] = {"pair": inst.exchange_symbol, "limit": PAGE, "sort": "asc"}
        if since is not None:
            request["since_timestamp"] = int(since.timestamp())
        out: dict[str, Fill] = {}
        offset = 0
        while True:
            rows = await self._call(
                partial(self._client.privatePostUserTransactionsPair, {**request, "offset": offset})
            )
            if not isinstance(rows, list):
                raise BadResponseError("bitstamp user_transactions: expected a list")
            for row in rows:
                try:
                    fill = parse.fill(row, inst)
                except (ValueError, KeyError, TypeError) as exc:
                    logger.error("Dropping Bitstamp transaction of %s: %s", symbol, exc)
                    continue
                if fill is not None and (since is None or fill.timestamp >= since):
                    out[fill.trade_id] = fill
            if len(rows) < PAGE:
                break
            offset += PAGE
        return sorted(out.values(), key=lambda f: (f.timestamp, f.trade_id))

    # --- account ------------------------------------------------------------------------
    async def fetch_spot_balances(self) -> Mapping[str, Balance]:
        self._require_keys("fetch_spot_balances")
        rows = await self._call(lambda: self._client.privatePostAccountBalances({}))
        try:
            return parse.balances(rows)
        except (ValueError, KeyError, TypeError) as exc:
            raise BadResponseError(f"bitstamp account_balances: {exc}") from exc

    async def close(self) -> None:
        await self._client.close()


def _conforms(exchange: BitstampSpot) -> MarketDataSource:
    """Let mypy check that BitstampSpot is a market-data source (paper mode wraps it)."""
    return exchange


def _check(request: OrderRequest, inst: Instrument) -> None:
    """Refuse what Bitstamp would refuse before ccxt could truncate the amount."""
    if request.quantity <= 0 or not is_multiple(request.quantity, inst.step_size):
        raise OrderRejected(
            f"bitstamp {inst.symbol}: amount {request.quantity} is not a multiple of "
            f"{inst.step_size} ({inst.step_size.as_tuple().exponent * -1} decimals)"
        )
    if request.quantity < inst.min_qty:
        raise OrderRejected(
            f"bitstamp {inst.symbol}: amount {request.quantity} below minimum {inst.min_qty}"
        )


def _account_fees(rows: object) -> tuple[Decimal, Decimal] | None:
    """Return the highest (taker, maker) of `fees/trading/` (percent) as fractions."""
    if not isinstance(rows, list) or not rows:
        return None
    takers, makers = [], []
    for row in rows:
        fees = row.get("fees") if isinstance(row, dict) else None
        if not isinstance(fees, dict):
            raise ValueError("fees/trading: expected a `fees` object per market")
        takers.append(to_decimal(fees.get("taker"), field="taker") / 100)
        makers.append(to_decimal(fees.get("maker"), field="maker") / 100)
    return max(takers), max(makers)
