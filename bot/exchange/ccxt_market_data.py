"""Binance market data through ccxt: instruments, statuses, funding, quotes, volumes, depth.

- Markets are loaded once per process (`reload=True` reloads) together with the funding
  intervals and caps of fundingInfo, which are refreshed hourly after that.
- Bulk market data is one request per call: premiumIndex without symbol for funding,
  bookTicker for the quotes of a whole market. Rows that fail validation are dropped and
  logged; a response that is not the expected shape raises BadResponseError.
- fundingRate and fundingInfo share a separate 500 requests / 5 min / IP budget.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from functools import partial
from types import MappingProxyType
from typing import Any

from bot.clock import ms_from_utc
from bot.domain import (
    FundingInfo,
    Instrument,
    MarketKind,
    OrderBook,
    Pair,
    Quote,
    SettledFunding,
)
from bot.domain.numbers import to_decimal
from bot.errors import BadResponseError, CarrybotError, FatalExchangeError, OrderRejected
from bot.exchange import binance_parse as parse
from bot.exchange import ccxt_calls as calls
from bot.exchange.ccxt_calls import BinanceSession
from bot.exchange.listing_status import apply_status, symbol_rows, symbols_param
from bot.exchange.throttle import WeightThrottler

logger = logging.getLogger(__name__)

FUNDING_INFO_TTL_SECONDS = 3600.0
FUNDING_INFO_RETRY_SECONDS = 60.0
DEFAULT_INTERVAL_HOURS = 8
PAGE = 1000
_FUTURES_DEPTHS = (5, 10, 20, 50, 100, 500, 1000)


class BinanceMarketData:
    """The public half of the Binance adapter; also the instrument catalogue of the others."""

    def __init__(
        self, session: BinanceSession, *, funding_budget: WeightThrottler, coinm: bool
    ) -> None:
        self._s = session
        self._funding_budget = funding_budget
        self._coinm = coinm
        self._instruments: dict[str, Instrument] = {}
        self._by_id: dict[tuple[bool, str], Instrument] = {}
        self._load_lock = asyncio.Lock()
        self._intervals: dict[str, tuple[int, Decimal | None, Decimal | None]] = {}
        self._intervals_due = float("-inf")

    async def instrument(self, symbol: str) -> Instrument:
        """Return the instrument of `symbol` (FatalExchangeError when Binance has none)."""
        instruments = await self.load_instruments()
        inst = instruments.get(symbol)
        if inst is None:
            raise FatalExchangeError(f"unknown symbol {symbol}")
        return inst

    def _coinm_perpetuals(self) -> bool:
        """Whether COIN-M is loaded and lists a perpetual (its funding and quotes are read)."""
        return self._coinm and any(
            i.is_inverse and i.kind is MarketKind.PERPETUAL for i in self._instruments.values()
        )

    def find(self, futures: bool, exchange_symbol: object) -> Instrument | None:
        """Return the loaded instrument with Binance id `exchange_symbol` on one market."""
        return self._by_id.get((futures, str(exchange_symbol)))

    async def load_instruments(self, *, reload: bool = False) -> Mapping[str, Instrument]:
        async with self._load_lock:
            if self._instruments and not reload:
                return MappingProxyType(self._instruments)
            markets = await self._s.call(
                "load markets", lambda: self._s.client.load_markets(reload=reload)
            )
            if not isinstance(markets, dict):
                raise BadResponseError("exchangeInfo: expected markets")
            instruments: dict[str, Instrument] = {}
            for market in markets.values():
                try:
                    inst = parse.instrument(market)
                except (ValueError, KeyError, TypeError) as exc:
                    logger.error("Dropping market %s: %s", market.get("symbol"), exc)
                    continue
                if inst is not None:
                    instruments[inst.symbol] = inst
            self._instruments = instruments
            self._by_id = {(i.is_derivative, i.exchange_symbol): i for i in instruments.values()}
            logger.info("Loaded %d Binance instruments", len(instruments))
            await self._refresh_intervals(force=True)
            return MappingProxyType(self._instruments)

    async def pairs(self) -> Sequence[Pair]:
        """Pairs open for new positions: both markets TRADING, no delisting announced."""
        instruments = await self.load_instruments()
        out = []
        for inst in instruments.values():
            if inst.kind is not MarketKind.SPOT or inst.not_tradable():
                continue
            perp = instruments.get(f"{inst.base}/{inst.quote}:{inst.quote}")
            if perp is not None and perp.kind is MarketKind.PERPETUAL and not perp.not_tradable():
                out.append(Pair(spot=inst, perp=perp))
        return sorted(out, key=lambda p: p.key)

    async def refresh_status(self, spot_symbols: Collection[str]) -> list[Instrument]:
        """Re-read the status of every perpetual and of `spot_symbols`; return what changed."""
        instruments = await self.load_instruments()
        ids = {i.exchange_symbol for s in spot_symbols if (i := instruments.get(s)) is not None}
        futures = await self._s.call(
            "futures status", lambda: self._s.client.fapiPublicGetExchangeInfo({})
        )
        spot: Any = {"symbols": []}
        if ids:
            try:
                spot = await self._s.call(
                    "spot status", lambda: self._s.client.publicGetExchangeInfo(symbols_param(ids))
                )
            except OrderRejected:  # -1121: one of them is gone altogether; ask for all
                spot = await self._s.call(
                    "spot status", lambda: self._s.client.publicGetExchangeInfo({})
                )
        spot_rows = symbol_rows(spot, "spot exchangeInfo")
        futures_rows = symbol_rows(futures, "futures exchangeInfo")
        async with self._load_lock:
            self._instruments, changed = apply_status(self._instruments, spot_rows, futures_rows)
            self._by_id = {
                (i.is_derivative, i.exchange_symbol): i for i in self._instruments.values()
            }
        return changed

    async def _refresh_intervals(self, *, force: bool = False) -> None:
        """Reload fundingInfo when due; keep the last values when that fails."""
        now = self._s.clock.monotonic()
        if not force and now < self._intervals_due:
            return
        try:
            await self._funding_budget.acquire()
            rows = await self._s.call(
                "funding info", lambda: self._s.client.fetch_funding_intervals()
            )
        except CarrybotError as exc:
            self._intervals_due = now + FUNDING_INFO_RETRY_SECONDS
            logger.warning("Funding intervals not refreshed, keeping the last ones: %s", exc)
            return
        try:
            infos = calls.infos(rows, "fundingInfo")
        except BadResponseError as exc:
            self._intervals_due = now + FUNDING_INFO_RETRY_SECONDS
            logger.warning("Funding intervals not refreshed, keeping the last ones: %s", exc)
            return
        intervals: dict[str, tuple[int, Decimal | None, Decimal | None]] = {}
        for info in infos:
            inst = self.find(True, info.get("symbol"))
            if inst is None:
                continue
            try:
                hours = int(info["fundingIntervalHours"])
                if hours <= 0:
                    raise ValueError(f"fundingIntervalHours: {hours}")
                cap = parse.optional_decimal(info, "adjustedFundingRateCap")
                floor = parse.optional_decimal(info, "adjustedFundingRateFloor")
            except (KeyError, TypeError, ValueError) as exc:
                logger.error("Dropping fundingInfo row of %s: %s", inst.symbol, exc)
                continue
            intervals[inst.symbol] = (hours, cap, floor)
        self._intervals = intervals
        self._intervals_due = now + FUNDING_INFO_TTL_SECONDS

    # --- reads ---------------------------------------------------------------------------
    async def fetch_funding_snapshot(self) -> Mapping[str, FundingInfo]:
        await self.load_instruments()
        await self._refresh_intervals()
        # The request of ccxt's fetch_funding_rates(), read raw: its parser turns a malformed
        # body into an empty result and costs ~45 µs a row; the rows are re-read anyway.
        rates = await self._s.call(
            "funding rates", lambda: self._s.client.fapiPublicGetPremiumIndex({})
        )
        rows = calls.rows(rates, "premiumIndex")
        if self._coinm_perpetuals():  # COIN-M perpetuals' funding: dapi's premiumIndex
            coin = await self._s.call(
                "COIN-M funding rates", lambda: self._s.client.dapiPublicGetPremiumIndex({})
            )
            rows = [*rows, *calls.rows(coin, "dapi premiumIndex")]
        out: dict[str, FundingInfo] = {}
        now, offset = self._s.clock.now(), self._s.time_offset_ms()
        for info in rows:
            inst = self.find(True, info.get("symbol"))
            if inst is None or inst.kind is not MarketKind.PERPETUAL:
                continue  # delivery contracts and symbols we do not know
            hours, cap, floor = self._intervals.get(
                inst.symbol, (DEFAULT_INTERVAL_HOURS, None, None)
            )
            try:
                out[inst.symbol] = parse.funding(
                    info, inst.symbol, hours, cap, floor, received=now, offset_ms=offset
                )
            except ValueError as exc:
                logger.error("Dropping premiumIndex row of %s: %s", inst.symbol, exc)
        return out

    async def fetch_best_quotes(self, kind: MarketKind) -> Mapping[str, Quote]:
        await self.load_instruments()
        futures = kind is not MarketKind.SPOT
        # The raw endpoint: ccxt's parse_tickers costs ~50 µs a row and we re-read the
        # Binance fields anyway (Decimal from text).
        if futures:
            fetch = self._s.client.fapiPublicGetTickerBookTicker
        else:
            fetch = self._s.client.publicGetTickerBookTicker
        rows = calls.rows(
            await self._s.call(f"{kind} book tickers", lambda: fetch({})), "bookTicker"
        )
        if (kind is MarketKind.DATED_FUTURE and self._coinm) or (
            kind is MarketKind.PERPETUAL and self._coinm_perpetuals()
        ):
            coin = await self._s.call(
                "COIN-M book tickers", lambda: self._s.client.dapiPublicGetTickerBookTicker({})
            )
            rows = [*rows, *calls.rows(coin, "dapi bookTicker")]
        now, offset = self._s.clock.now(), self._s.time_offset_ms()
        out: dict[str, Quote] = {}
        for row in rows:
            inst = self.find(futures, row.get("symbol"))
            if inst is None or inst.kind is not kind:
                continue
            try:
                out[inst.symbol] = parse.quote(row, inst.symbol, now, offset)
            except ValueError as exc:
                logger.error("Dropping bookTicker row of %s: %s", inst.symbol, exc)
        return out

    async def fetch_volumes_24h(self, kind: MarketKind) -> Mapping[str, Decimal]:
        await self.load_instruments()
        futures = kind is not MarketKind.SPOT
        if futures:
            fetch = self._s.client.fapiPublicGetTicker24hr
        else:
            fetch = self._s.client.publicGetTicker24hr
        rows = await self._s.call(f"{kind} 24h tickers", lambda: fetch({}))
        out: dict[str, Decimal] = {}
        for row in calls.rows(rows, "24hr ticker"):
            inst = self.find(futures, row.get("symbol"))
            if inst is None or inst.kind is not kind:
                continue
            try:
                out[inst.symbol] = to_decimal(row.get("quoteVolume"), field="quoteVolume")
            except ValueError as exc:
                logger.error("Dropping 24hr row of %s: %s", inst.symbol, exc)
        return out

    async def fetch_order_book(self, symbol: str, depth: int = 20) -> OrderBook:
        inst = await self.instrument(symbol)
        if inst.is_derivative:
            limit = next((d for d in _FUTURES_DEPTHS if d >= depth), _FUTURES_DEPTHS[-1])
            fetch = self._s.client.fapiPublicGetDepth
        else:
            limit = max(1, min(depth, 5000))
            fetch = self._s.client.publicGetDepth
        raw = await self._s.call(
            f"depth {symbol}", lambda: fetch({"symbol": inst.exchange_symbol, "limit": limit})
        )
        if not isinstance(raw, dict):
            raise BadResponseError(f"depth {symbol}: expected an object")
        try:
            return parse.book(raw, symbol, self._s.clock.now(), depth)
        except (ValueError, TypeError) as exc:
            raise BadResponseError(f"depth {symbol}: {exc}") from exc

    async def fetch_funding_history(
        self, symbol: str, since: datetime, until: datetime | None = None
    ) -> Sequence[SettledFunding]:
        inst = await self.instrument(symbol)
        start = ms_from_utc(since)
        params = {"until": ms_from_utc(until)} if until is not None else {}
        out: dict[datetime, SettledFunding] = {}
        while True:
            await self._funding_budget.acquire()
            page = await self._s.call(
                f"funding history {symbol}",
                partial(
                    self._s.client.fetch_funding_rate_history, symbol, start, PAGE, dict(params)
                ),
            )
            rows = list(calls.infos(page, "fundingRate"))
            for info in rows:
                try:
                    row = parse.settled(info, inst.symbol)
                except ValueError as exc:
                    logger.error("Dropping fundingRate row of %s: %s", symbol, exc)
                    continue
                out[row.funding_time] = row
            if len(rows) < PAGE or not out:
                break
            start = ms_from_utc(max(out)) + 1
        return [out[t] for t in sorted(out)]

    async def fetch_delivery_price(self, symbol: str) -> Decimal | None:
        """Return a dated future's delivery price, None until Binance publishes it.

        GET /futures/data/delivery-price?pair=… lists the pair's past deliveries; the row whose
        deliveryTime is the contract's delivery time is the one.
        """
        inst = await self.instrument(symbol)
        if not inst.is_dated or inst.expiry is None:
            raise FatalExchangeError(f"{symbol} is not a dated future")
        pair = f"{inst.base}{inst.quote}"  # BTCUSDT; COIN-M: BTCUSD, on the dapi host
        client = self._s.client
        fetch = (
            client.dapiDataGetDeliveryPrice if inst.is_inverse else client.fapiDataGetDeliveryPrice
        )
        rows = await self._s.call(f"delivery price {symbol}", lambda: fetch({"pair": pair}))
        due = ms_from_utc(inst.expiry)
        for row in calls.rows(rows, "delivery-price"):
            if str(row.get("deliveryTime")) == str(due):
                try:
                    return parse.positive(row, "deliveryPrice")
                except ValueError as exc:
                    raise BadResponseError(f"delivery-price of {symbol}: {exc}") from exc
        return None
