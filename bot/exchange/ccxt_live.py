"""`LiveExchange`: the ExchangePort over Binance spot and USDⓈ-M futures, through ccxt.

- Markets are loaded once per process (`reload=True` reloads) together with the funding
  intervals and caps of fundingInfo, which are refreshed hourly after that.
- Bulk market data is one request per call: premiumIndex without symbol for funding,
  bookTicker for the quotes of a whole market. Rows that fail validation are dropped and
  logged; a response that is not the expected shape raises BadResponseError.
- Pacing lives in the ccxt client (`ccxt_client.py`, `throttle.py`).
- Orders are checked against the instrument's filters before ccxt sees them (Binance's rules
  and codes, shared with the simulator), so ccxt never truncates or rounds them silently.
- Every error leaves as `bot.errors`. -1021 re-syncs the clock and retries a signed read
  once. An order POST that may have executed (timeout, lost connection, 5xx) is resolved by
  looking the order up by client order id, never by sending it again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from functools import partial
from types import MappingProxyType
from typing import Any, TypeVar

from bot.clock import Clock, SystemClock, ms_from_utc
from bot.config import ExchangeConfig
from bot.domain import (
    Balance,
    Event,
    EventSink,
    Fill,
    FundingInfo,
    FundingPayment,
    FuturesAccount,
    Instrument,
    MarginMode,
    MarketKind,
    Order,
    OrderBook,
    OrderRequest,
    OrderStatus,
    OrderType,
    Pair,
    Position,
    PositionMode,
    Quote,
    SettledFunding,
    Severity,
)
from bot.domain.fee_schedule import AccountFees
from bot.domain.numbers import to_decimal
from bot.errors import (
    AuthError,
    BadResponseError,
    CarrybotError,
    ClockSkewError,
    FatalExchangeError,
    OrderNotFound,
    OrderRejected,
    OrderStatusUnknown,
    TemporaryError,
)
from bot.exchange import binance_parse as parse
from bot.exchange.binance_fees import read_account_fees
from bot.exchange.ccxt_client import build_client
from bot.exchange.history_pages import (
    FUTURES_TRADES_WINDOW,
    INCOME_WINDOW,
    SPOT_TRADES_WINDOW,
    read_windows,
)
from bot.exchange.listing_status import apply_status, symbol_rows, symbols_param
from bot.exchange.port import ExchangePort
from bot.exchange.sim_filters import check_order
from bot.exchange.throttle import Pacer, WeightThrottler
from bot.exchange.translate import (
    NO_CHANGE_MARGIN,
    NO_CHANGE_POSITION_MODE,
    may_have_executed,
    translate,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")
FUNDING_INFO_TTL_SECONDS = 3600.0
FUNDING_INFO_RETRY_SECONDS = 60.0
DEFAULT_INTERVAL_HOURS = 8
LOOKUP_BACKOFF_SECONDS = (0.25, 0.5, 1.0)
PAGE = 1000
FUNDING_REQUESTS_PER_5_MIN = 500
_FUTURES_DEPTHS = (5, 10, 20, 50, 100, 500, 1000)
_SPOT = {"type": "spot"}
_LINEAR = {"type": "swap", "subType": "linear"}


class LiveExchange:
    """Binance spot + USDⓈ-M through ccxt. Without keys only the market-data methods work."""

    def __init__(
        self,
        config: ExchangeConfig,
        *,
        api_key: str | None = None,
        api_secret: str | None = None,
        clock: Clock | None = None,
        events: EventSink | None = None,
        coinm: bool = False,
    ) -> None:
        self._clock: Clock = clock or SystemClock()
        self._coinm = coinm
        self._events = events
        self._pacer = Pacer.from_config(config, self._clock)
        # fundingRate and fundingInfo share a separate 500 requests / 5 min / IP budget.
        self._funding_budget = WeightThrottler(
            max(1, int(FUNDING_REQUESTS_PER_5_MIN * config.weight_headroom)), 300.0, self._clock
        )
        self._client = build_client(
            config, api_key=api_key, api_secret=api_secret, pacer=self._pacer, coinm=coinm
        )
        self._has_keys = bool(api_key and api_secret)
        self._instruments: dict[str, Instrument] = {}
        self._by_id: dict[tuple[bool, str], Instrument] = {}
        self._load_lock = asyncio.Lock()
        self._intervals: dict[str, tuple[int, Decimal | None, Decimal | None]] = {}
        self._intervals_due = float("-inf")

    @property
    def venue(self) -> str:
        return "binance"

    @property
    def pacer(self) -> Pacer:
        """The request pacer (budgets per venue), for inspection."""
        return self._pacer

    # --- plumbing -----------------------------------------------------------------------
    async def _call(
        self, what: str, fn: Callable[[], Awaitable[T]], *, signed_read: bool = False
    ) -> T:
        """Run one ccxt call; translate its errors; re-sync on -1021 (and retry a signed read)."""
        for attempt in (1, 2):
            try:
                return await fn()
            except Exception as exc:
                error = translate(exc, self._clock.now())
                await self._report_bans()
                if isinstance(error, ClockSkewError):
                    await self._resync()
                    if signed_read and attempt == 1:
                        logger.warning("Clock skew on %s: re-synced, retrying once", what)
                        continue
                raise error from exc
        raise AssertionError("unreachable")

    async def _resync(self) -> None:
        try:
            await self._client.load_time_difference()
        except Exception as exc:
            logger.error("Time re-sync with Binance failed: %s", translate(exc, self._clock.now()))
        else:
            logger.info(
                "Re-synced with Binance time: offset %s ms", self._client.options["timeDifference"]
            )

    async def _report_bans(self) -> None:
        for notice in self._pacer.take_ban_notices():
            message = (
                f"Binance {notice.venue} API banned this IP (HTTP 418) for "
                f"{notice.retry_after:.0f} s; no request is sent until then"
            )
            logger.error(message)
            if self._events is not None:
                await self._events.emit(
                    Event(
                        kind="exchange_banned",
                        message=message,
                        at=self._clock.now(),
                        severity=Severity.ALERT,
                        data={"venue": notice.venue.value, "retry_after": notice.retry_after},
                    )
                )

    def _time_offset_ms(self) -> float:
        """Return local minus Binance time in ms, as ccxt last measured it (0 if never)."""
        offset = self._client.options.get("timeDifference")
        return float(offset) if isinstance(offset, int | float) else 0.0

    def _require_keys(self, what: str) -> None:
        if not self._has_keys:
            raise AuthError(f"{what} needs BINANCE_API_KEY and BINANCE_API_SECRET")

    async def _instrument(self, symbol: str) -> Instrument:
        instruments = await self.load_instruments()
        inst = instruments.get(symbol)
        if inst is None:
            raise FatalExchangeError(f"unknown symbol {symbol}")
        return inst

    def _find(self, futures: bool, exchange_symbol: object) -> Instrument | None:
        return self._by_id.get((futures, str(exchange_symbol)))

    # --- instruments --------------------------------------------------------------------
    async def load_instruments(self, *, reload: bool = False) -> Mapping[str, Instrument]:
        async with self._load_lock:
            if self._instruments and not reload:
                return MappingProxyType(self._instruments)
            markets = await self._call(
                "load markets", lambda: self._client.load_markets(reload=reload)
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
        futures = await self._call(
            "futures status", lambda: self._client.fapiPublicGetExchangeInfo({})
        )
        spot: Any = {"symbols": []}
        if ids:
            try:
                spot = await self._call(
                    "spot status", lambda: self._client.publicGetExchangeInfo(symbols_param(ids))
                )
            except OrderRejected:  # -1121: one of them is gone altogether; ask for all
                spot = await self._call(
                    "spot status", lambda: self._client.publicGetExchangeInfo({})
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
        now = self._clock.monotonic()
        if not force and now < self._intervals_due:
            return
        try:
            await self._funding_budget.acquire()
            rows = await self._call("funding info", lambda: self._client.fetch_funding_intervals())
        except CarrybotError as exc:
            self._intervals_due = now + FUNDING_INFO_RETRY_SECONDS
            logger.warning("Funding intervals not refreshed, keeping the last ones: %s", exc)
            return
        try:
            infos = _infos(rows, "fundingInfo")
        except BadResponseError as exc:
            self._intervals_due = now + FUNDING_INFO_RETRY_SECONDS
            logger.warning("Funding intervals not refreshed, keeping the last ones: %s", exc)
            return
        intervals: dict[str, tuple[int, Decimal | None, Decimal | None]] = {}
        for info in infos:
            inst = self._find(True, info.get("symbol"))
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

    # --- market data --------------------------------------------------------------------
    async def fetch_funding_snapshot(self) -> Mapping[str, FundingInfo]:
        await self.load_instruments()
        await self._refresh_intervals()
        # The request of ccxt's fetch_funding_rates(), read raw: its parser turns a malformed
        # body into an empty result and costs ~45 µs a row; the rows are re-read anyway.
        rates = await self._call(
            "funding rates", lambda: self._client.fapiPublicGetPremiumIndex({})
        )
        out: dict[str, FundingInfo] = {}
        now, offset = self._clock.now(), self._time_offset_ms()
        for info in _rows(rates, "premiumIndex"):
            inst = self._find(True, info.get("symbol"))
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
            fetch = self._client.fapiPublicGetTickerBookTicker
        else:
            fetch = self._client.publicGetTickerBookTicker
        rows = _rows(await self._call(f"{kind} book tickers", lambda: fetch({})), "bookTicker")
        if self._coinm and kind is MarketKind.DATED_FUTURE:
            coin = await self._call(
                "COIN-M book tickers", lambda: self._client.dapiPublicGetTickerBookTicker({})
            )
            rows = [*rows, *_rows(coin, "dapi bookTicker")]
        now, offset = self._clock.now(), self._time_offset_ms()
        out: dict[str, Quote] = {}
        for row in rows:
            inst = self._find(futures, row.get("symbol"))
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
            fetch = self._client.fapiPublicGetTicker24hr
        else:
            fetch = self._client.publicGetTicker24hr
        rows = await self._call(f"{kind} 24h tickers", lambda: fetch({}))
        out: dict[str, Decimal] = {}
        for row in _rows(rows, "24hr ticker"):
            inst = self._find(futures, row.get("symbol"))
            if inst is None or inst.kind is not kind:
                continue
            try:
                out[inst.symbol] = to_decimal(row.get("quoteVolume"), field="quoteVolume")
            except ValueError as exc:
                logger.error("Dropping 24hr row of %s: %s", inst.symbol, exc)
        return out

    async def fetch_order_book(self, symbol: str, depth: int = 20) -> OrderBook:
        inst = await self._instrument(symbol)
        if inst.is_derivative:
            limit = next((d for d in _FUTURES_DEPTHS if d >= depth), _FUTURES_DEPTHS[-1])
            fetch = self._client.fapiPublicGetDepth
        else:
            limit = max(1, min(depth, 5000))
            fetch = self._client.publicGetDepth
        raw = await self._call(
            f"depth {symbol}", lambda: fetch({"symbol": inst.exchange_symbol, "limit": limit})
        )
        if not isinstance(raw, dict):
            raise BadResponseError(f"depth {symbol}: expected an object")
        try:
            return parse.book(raw, symbol, self._clock.now(), depth)
        except (ValueError, TypeError) as exc:
            raise BadResponseError(f"depth {symbol}: {exc}") from exc

    async def fetch_funding_history(
        self, symbol: str, since: datetime, until: datetime | None = None
    ) -> Sequence[SettledFunding]:
        inst = await self._instrument(symbol)
        start = ms_from_utc(since)
        params = {"until": ms_from_utc(until)} if until is not None else {}
        out: dict[datetime, SettledFunding] = {}
        while True:
            await self._funding_budget.acquire()
            page = await self._call(
                f"funding history {symbol}",
                partial(self._client.fetch_funding_rate_history, symbol, start, PAGE, dict(params)),
            )
            rows = list(_infos(page, "fundingRate"))
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
        inst = await self._instrument(symbol)
        if not inst.is_dated or inst.expiry is None:
            raise FatalExchangeError(f"{symbol} is not a dated future")
        pair = f"{inst.base}{inst.quote}"
        rows = await self._call(
            f"delivery price {symbol}",
            lambda: self._client.fapiDataGetDeliveryPrice({"pair": pair}),
        )
        due = ms_from_utc(inst.expiry)
        for row in _rows(rows, "delivery-price"):
            if str(row.get("deliveryTime")) == str(due):
                try:
                    return parse.positive(row, "deliveryPrice")
                except ValueError as exc:
                    raise BadResponseError(f"delivery-price of {symbol}: {exc}") from exc
        return None

    # --- orders -------------------------------------------------------------------------
    async def create_order(self, request: OrderRequest) -> Order:
        self._require_keys("create_order")
        inst = await self._instrument(request.symbol)
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
            raw = await self._client.create_order(
                request.symbol,
                request.type.value,
                request.side.value,
                str(request.quantity),
                price,
                params,
            )
        except Exception as exc:
            error = translate(exc, self._clock.now())
            await self._report_bans()
            if isinstance(error, ClockSkewError):
                await self._resync()
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
            await self._clock.sleep(delay)
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
        self._require_keys("fetch_order")
        inst = await self._instrument(symbol)
        raw = await self._call(
            f"order {client_order_id}",
            lambda: self._client.fetch_order(None, symbol, {"origClientOrderId": client_order_id}),
            signed_read=True,
        )
        return self._order(raw, inst)

    async def cancel_order(self, symbol: str, client_order_id: str) -> Order:
        self._require_keys("cancel_order")
        inst = await self._instrument(symbol)
        try:
            raw = await self._call(
                f"cancel {client_order_id}",
                lambda: self._client.cancel_order(
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
        self._require_keys("fetch_my_trades")
        inst = await self._instrument(symbol)

        async def page(start: int | None, end: int | None) -> tuple[list[Fill], int]:
            params = {"until": end} if end is not None else {}
            raw = await self._call(
                f"trades {symbol}",
                partial(self._client.fetch_my_trades, symbol, start, PAGE, params),
                signed_read=True,
            )
            rows = list(_infos(raw, "trades"))
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
                end_ms=self._history_end_ms(),
                window=FUTURES_TRADES_WINDOW if inst.is_derivative else SPOT_TRADES_WINDOW,
                limit=PAGE,
                time_ms=lambda f: ms_from_utc(f.timestamp),
            )
        unique = {f.trade_id: f for f in fills}
        return sorted(unique.values(), key=lambda f: (f.timestamp, f.trade_id))

    def _history_end_ms(self) -> int:
        """The end of the last history window: now on Binance's clock, with a margin."""
        return ms_from_utc(self._clock.now()) - int(self._time_offset_ms()) + 60_000

    # --- account ------------------------------------------------------------------------
    async def fetch_spot_balances(self) -> Mapping[str, Balance]:
        self._require_keys("fetch_spot_balances")
        raw = await self._call(
            "spot account",
            lambda: self._client.fetch_balance({**_SPOT, "omitZeroBalances": "true"}),
            signed_read=True,
        )
        return _parse_info(raw, "spot account", parse.spot_balances)

    async def fetch_futures_account(self) -> FuturesAccount:
        self._require_keys("fetch_futures_account")
        raw = await self._call(
            "futures account", lambda: self._client.fetch_balance(dict(_LINEAR)), signed_read=True
        )
        return _parse_info(raw, "futures account", parse.futures_account)

    async def fetch_positions(self) -> Sequence[Position]:
        self._require_keys("fetch_positions")
        await self.load_instruments()
        raw = await self._call(
            "positions", lambda: self._client.fetch_positions(None, {}), signed_read=True
        )
        out = []
        for info in _infos(raw, "positionRisk"):
            inst = self._find(True, info.get("symbol"))
            if inst is None:
                continue
            try:
                pos = parse.position(info, inst.symbol)
            except (ValueError, KeyError) as exc:
                logger.error("Dropping positionRisk row of %s: %s", inst.symbol, exc)
                continue
            if pos.size > 0:
                out.append(pos)
        return out

    async def fetch_account_fees(self, pairs: Sequence[Pair]) -> AccountFees:
        """Return the account's fee rates, VIP tier and BNB burn (see `binance_fees`)."""
        self._require_keys("fetch_account_fees")
        await self.load_instruments()
        return await read_account_fees(self._client, self._call, pairs)

    async def fetch_position_mode(self) -> PositionMode:
        self._require_keys("fetch_position_mode")
        raw = await self._call(
            "position mode",
            lambda: self._client.fetch_position_mode(None, {"subType": "linear"}),
            signed_read=True,
        )
        hedged = raw.get("hedged") if isinstance(raw, dict) else None
        if not isinstance(hedged, bool):
            raise BadResponseError("positionSide/dual: expected dualSidePosition")
        return PositionMode.HEDGE if hedged else PositionMode.ONE_WAY

    async def set_position_mode(self, mode: PositionMode) -> None:
        self._require_keys("set_position_mode")
        hedged = mode is PositionMode.HEDGE
        try:
            await self._call(
                "set position mode",
                lambda: self._client.set_position_mode(hedged, None, dict(_LINEAR)),
            )
        except OrderRejected as exc:
            if exc.code != NO_CHANGE_POSITION_MODE:
                raise

    async def set_leverage(self, symbol: str, leverage: int) -> None:
        self._require_keys("set_leverage")
        await self._instrument(symbol)
        await self._call(
            f"set leverage {symbol}", lambda: self._client.set_leverage(leverage, symbol)
        )

    async def set_margin_mode(self, symbol: str, mode: MarginMode) -> None:
        self._require_keys("set_margin_mode")
        await self._instrument(symbol)
        margin_mode = mode.value
        try:
            await self._call(
                f"set margin mode {symbol}",
                lambda: self._client.set_margin_mode(margin_mode, symbol),
            )
        except OrderRejected as exc:
            if exc.code != NO_CHANGE_MARGIN:
                raise

    async def transfer(
        self, asset: str, amount: Decimal, *, from_wallet: str, to_wallet: str
    ) -> None:
        accounts = {"spot": "spot", "futures": "linear"}
        if from_wallet not in accounts or to_wallet not in accounts or from_wallet == to_wallet:
            raise FatalExchangeError(
                f"transfer from {from_wallet!r} to {to_wallet!r}: wallets are 'spot' and 'futures'"
            )
        self._require_keys("transfer")
        await self._call(
            f"transfer {amount} {asset} {from_wallet}->{to_wallet}",
            lambda: self._client.transfer(
                asset, float(amount), accounts[from_wallet], accounts[to_wallet]
            ),
        )
        logger.info("Transferred %s %s from %s to %s", amount, asset, from_wallet, to_wallet)

    async def fetch_funding_payments(
        self, since: datetime, symbol: str | None = None
    ) -> Sequence[FundingPayment]:
        """Funding paid or received since `since`, window by window up to now."""
        self._require_keys("fetch_funding_payments")
        await self.load_instruments()

        async def page(start: int, end: int | None) -> tuple[list[FundingPayment], int]:
            params = {"until": end} if end is not None else {}
            raw = await self._call(
                "funding payments",
                partial(self._client.fetch_funding_history, symbol, start, PAGE, params),
                signed_read=True,
            )
            rows = list(_infos(raw, "income"))
            payments = []
            for info in rows:
                inst = self._find(True, info.get("symbol"))
                if inst is None:
                    continue
                try:
                    payments.append(parse.funding_payment(info, inst.symbol))
                except (ValueError, KeyError) as exc:
                    logger.error("Dropping income row of %s: %s", inst.symbol, exc)
            return payments, len(rows)

        payments = await read_windows(
            page,
            start_ms=ms_from_utc(since),
            end_ms=self._history_end_ms(),
            window=INCOME_WINDOW,
            limit=PAGE,
            time_ms=lambda p: ms_from_utc(p.funding_time),
        )
        unique = {(p.symbol, p.funding_time, p.income_id): p for p in payments}
        return sorted(unique.values(), key=lambda p: (p.funding_time, p.symbol))

    async def close(self) -> None:
        await self._client.close()


def _infos(result: object, what: str) -> list[Mapping[str, Any]]:
    """Return the raw Binance rows behind a ccxt list or dict result; validate its shape."""
    if isinstance(result, dict):
        items: list[Any] = list(result.values())
    elif isinstance(result, list):
        items = result
    else:
        raise BadResponseError(f"{what}: expected a list, got {type(result).__name__}")
    rows: list[Mapping[str, Any]] = []
    for item in items:
        info = item.get("info") if isinstance(item, dict) else None
        if isinstance(info, dict):
            rows.append(info)
        else:
            logger.error("Dropping a %s row without data: %r", what, item)
    return rows


def _rows(result: object, what: str) -> list[Mapping[str, Any]]:
    """Return the rows of a raw Binance list response; validate its shape."""
    if not isinstance(result, list):
        raise BadResponseError(f"{what}: expected a list, got {type(result).__name__}")
    rows: list[Mapping[str, Any]] = []
    for row in result:
        if isinstance(row, dict):
            rows.append(row)
        else:
            logger.error("Dropping a %s row that is not an object: %r", what, row)
    return rows


def _parse_info(raw: object, what: str, parser: Callable[[Mapping[str, Any]], T]) -> T:
    info = raw.get("info") if isinstance(raw, dict) else None
    if not isinstance(info, dict):
        raise BadResponseError(f"{what}: expected an object")
    try:
        return parser(info)
    except (ValueError, KeyError, TypeError) as exc:
        raise BadResponseError(f"{what}: {exc}") from exc


def _conforms(exchange: LiveExchange) -> ExchangePort:
    """Let mypy check that LiveExchange implements the port."""
    return exchange
