"""`VenueRouter`: one ExchangePort over a spot venue and Binance USDⓈ-M futures.

The executor, market data, reconciler and risk gate keep talking to one port; the router
sends each call to the venue of its leg: spot symbols (and spot balances) to the spot venue
(Bitstamp), derivatives, the futures account and funding to Binance. Pairs are formed
across venues: a Bitstamp `X/USD` or `X/USDT` with Binance's `X/USDT:USDT`.

**USD in USDT terms.** A USD-quoted spot pair is shown to the bot in USDT: quotes, books,
volumes, fill and average prices and quote fees are divided by the USDT/USD rate (USD per
USDT, the mid of the spot venue's `USDT/USD` book, refreshed with every spot quote poll),
so basis, sizing and P&L compare like with like. Quantities are never converted. Spot
balances stay in their own asset (USD); `balance_buffer` covers the rate's distance from
1 in sizing. `usd_per_usdt` is the rate in use; no conversion is made without one.
A fill (and an order's average price) is converted at the rate at its own time
(`usd_rate.UsdRates`: the USDT/USD quote seen nearest to it, else the book read then) and
keeps the USD price the venue reported (`venue_price`) and that rate (`usd_per_usdt`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Protocol

from bot.clock import Clock, SystemClock
from bot.domain import (
    Balance,
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
    Pair,
    Position,
    PositionMode,
    Quote,
    SettledFunding,
)
from bot.errors import BadResponseError, FatalExchangeError
from bot.exchange.port import ExchangePort, refresh_status_of
from bot.exchange.usd_rate import UsdRates

logger = logging.getLogger(__name__)

RATE_SYMBOL = "USDT/USD"
SPOT_QUOTES = ("USDT", "USD")
USDT_TERMS = frozenset(SPOT_QUOTES)  # spot quotes the bot sees in USDT terms
PERP_QUOTE = "USDT"
MAX_ARRIVAL_DELAY = 0.25  # seconds: never hold a leg back longer than this
LATENCY_ALPHA = 0.2


class SpotVenue(Protocol):
    """What the router needs of a spot venue (BitstampSpot, or a PaperExchange over it)."""

    @property
    def venue(self) -> str: ...
    async def load_instruments(self, *, reload: bool = False) -> Mapping[str, Instrument]: ...
    async def fetch_best_quotes(self, kind: MarketKind) -> Mapping[str, Quote]: ...
    async def fetch_volumes_24h(self, kind: MarketKind) -> Mapping[str, Decimal]: ...
    async def fetch_order_book(self, symbol: str, depth: int = 20) -> OrderBook: ...
    async def create_order(self, request: OrderRequest) -> Order: ...
    async def fetch_order(self, symbol: str, client_order_id: str) -> Order: ...
    async def cancel_order(self, symbol: str, client_order_id: str) -> Order: ...
    async def fetch_my_trades(
        self, symbol: str, since: datetime | None = None
    ) -> Sequence[Fill]: ...
    async def fetch_spot_balances(self) -> Mapping[str, Balance]: ...
    async def close(self) -> None: ...


def order_absence_window(exchange: object, symbol: str, default: timedelta) -> timedelta:
    """Return how long after sending an order "not found" may still turn into "filled".

    Binance: recvWindow plus a margin (`default`). Bitstamp accepts a signed request up to
    150 s after its X-Auth-Timestamp, so a spot order there is absent only after that.
    """
    window = getattr(exchange, "absence_window", None)
    found = window(symbol) if callable(window) else None
    return found if isinstance(found, timedelta) else default


def arrival_delay(exchange: object, symbol: str) -> float:
    """Return how long to hold back an opening leg on `symbol` so both legs arrive together.

    0 unless `exchange` is a VenueRouter with arrival alignment on (see `align_arrivals`).
    """
    delay = getattr(exchange, "arrival_delay", None)
    return float(delay(symbol)) if callable(delay) else 0.0


def wallet_names(exchange: object) -> tuple[str, str]:
    """Return the (spot, futures) wallet labels of balance snapshots.

    One venue: `spot` and `futures`, as always; across venues `bitstamp:spot` and
    `binance:futures`, so balances read per venue.
    """
    if isinstance(exchange, VenueRouter):
        spot, futures = exchange.leg_venues
        return f"{spot}:spot", f"{futures}:futures"
    return "spot", "futures"


def spot_fee_in_base(exchange: object) -> bool:
    """Tell whether spot buys on `exchange` pay their fee in the base asset (Binance: yes)."""
    return bool(getattr(exchange, "spot_fee_in_base", True))


class VenueRouter:
    """ExchangePort routing the spot leg to `spot` and everything else to `futures`."""

    def __init__(
        self,
        spot: SpotVenue,
        futures: ExchangePort,
        *,
        venue: str,
        leg_venues: tuple[str, str] = ("bitstamp", "binance"),
        align_arrivals: bool = False,
        clock: Clock | None = None,
    ) -> None:
        self._spot = spot
        self._futures = futures
        self._venue = venue
        self.leg_venues = leg_venues  # (spot, futures) exchange names, also in paper mode
        self.align_arrivals = align_arrivals
        self._clock: Clock = clock or SystemClock()
        self._one_way: dict[bool, float] = {}  # spot venue?: EWMA of order round trip / 2
        self._spot_symbols: dict[str, Instrument] = {}
        self.rates = UsdRates(self._clock.now, self._read_rate, self._read_rate_at)
        self.streams: Any = None  # CrossVenueStreams when both venues stream (the factory's)
        self._rate_lock = asyncio.Lock()

    @property
    def venue(self) -> str:
        """Ledger name of the venue pair, e.g. `bitstamp+binance`."""
        return self._venue

    @property
    def spot_venue(self) -> SpotVenue:
        return self._spot

    @property
    def futures_venue(self) -> ExchangePort:
        return self._futures

    @property
    def spot_fee_in_base(self) -> bool:
        return spot_fee_in_base(self._spot)

    @property
    def usd_per_usdt(self) -> Decimal | None:
        """The USDT/USD rate in use (USD per USDT), None before the first spot poll."""
        return self.rates.latest

    def absence_window(self, symbol: str) -> timedelta | None:
        """The spot venue's lost-order window for its symbols (None: the caller's default)."""
        if symbol not in self._spot_symbols:
            return None
        window = getattr(self._spot, "lost_order_window", None)
        return window if isinstance(window, timedelta) else None

    def venue_of(self, symbol: str) -> str:
        """Return the name of the venue that trades `symbol`."""
        return self._spot.venue if symbol in self._spot_symbols else self._futures.venue

    # --- instruments and pairs ----------------------------------------------------------
    async def load_instruments(self, *, reload: bool = False) -> Mapping[str, Instrument]:
        spot, futures = await asyncio.gather(
            self._spot.load_instruments(reload=reload),
            self._futures.load_instruments(reload=reload),
        )
        self._spot_symbols = {s: i for s, i in spot.items() if i.kind is MarketKind.SPOT}
        merged = {s: i for s, i in futures.items() if i.is_derivative}
        merged.update(self._spot_symbols)
        return MappingProxyType(merged)

    async def refresh_status(self, spot_symbols: Collection[str]) -> list[Instrument]:
        """The perpetuals' statuses from Binance (the spot venue's come with its reload)."""
        return await refresh_status_of(self._futures, spot_symbols)

    async def pairs(self) -> Sequence[Pair]:
        """Return spot-venue pairs quoted in USD or USDT with Binance's USDT perpetual."""
        instruments = await self.load_instruments()
        out = []
        for inst in self._spot_symbols.values():
            if not inst.active or inst.quote not in SPOT_QUOTES or inst.base == PERP_QUOTE:
                continue
            perp = instruments.get(f"{inst.base}/{PERP_QUOTE}:{PERP_QUOTE}")
            if perp is not None and perp.kind is MarketKind.PERPETUAL and not perp.not_tradable():
                out.append(Pair(spot=inst, perp=perp))
        out.sort(key=lambda p: p.key)
        if self.streams is not None:  # the streams follow listings and delistings
            await self.streams.follow(out)
        return out

    def _is_spot(self, symbol: str) -> bool:
        return symbol in self._spot_symbols

    async def _ensure_loaded(self) -> None:
        if not self._spot_symbols:
            await self.load_instruments()

    # --- the USDT/USD rate --------------------------------------------------------------
    def _needs_rate(self, symbol: str) -> bool:
        inst = self._spot_symbols.get(symbol)
        return inst is not None and inst.quote == "USD" and symbol != RATE_SYMBOL

    def _take_rate(self, quotes: Mapping[str, Quote]) -> None:
        q = quotes.get(RATE_SYMBOL)
        if q is not None and q.bid > 0 and q.ask >= q.bid:
            self.rates.observe(q.timestamp, q.mid)

    async def _read_rate(self) -> Decimal | None:
        """The mid of the spot venue's USDT/USD book now (None when it has no two sides)."""
        book = await self._spot.fetch_order_book(RATE_SYMBOL, 1)
        if not book.bids or not book.asks or book.asks[0][0] < book.bids[0][0]:
            return None
        return (book.bids[0][0] + book.asks[0][0]) / 2

    async def _read_rate_at(self, when: datetime) -> Decimal | None:
        """The spot venue's USDT/USD at `when` from its history (None: it keeps none)."""
        minute_open = getattr(self._spot, "minute_open", None)
        if minute_open is None:
            return None
        rate = await minute_open(RATE_SYMBOL, when)
        return rate if isinstance(rate, Decimal) and rate > 0 else None

    def _no_rate(self) -> BadResponseError:
        return BadResponseError(
            f"{self._spot.venue}: no {RATE_SYMBOL} quote, so USD prices cannot be "
            "compared with USDT ones"
        )

    async def _current_rate(self) -> Decimal:
        async with self._rate_lock:
            if self.rates.latest is None:
                self._take_rate(await self._spot.fetch_best_quotes(MarketKind.SPOT))
        if self.rates.latest is None:
            raise self._no_rate()
        return self.rates.latest

    async def _rate_for(self, symbol: str) -> Decimal | None:
        return await self._current_rate() if self._needs_rate(symbol) else None

    async def _rate_at(
        self, symbol: str, when: datetime | None, key: tuple[str, ...] | None = None
    ) -> Decimal | None:
        """The rate at `when` for a USD pair's fill or order (None: not a USD pair)."""
        if not self._needs_rate(symbol):
            return None
        async with self._rate_lock:
            rate = await self.rates.at(when, key)
        if rate is None:
            raise self._no_rate()
        return rate

    # --- market data --------------------------------------------------------------------
    async def fetch_funding_snapshot(self) -> Mapping[str, FundingInfo]:
        return await self._futures.fetch_funding_snapshot()

    async def fetch_best_quotes(self, kind: MarketKind) -> Mapping[str, Quote]:
        if kind is not MarketKind.SPOT:
            return await self._futures.fetch_best_quotes(kind)
        await self._ensure_loaded()
        quotes = await self._spot.fetch_best_quotes(kind)
        self._take_rate(quotes)
        out: dict[str, Quote] = {}
        rate = self.rates.latest
        for symbol, q in quotes.items():
            if not self._needs_rate(symbol):
                out[symbol] = q
            elif rate is not None:
                out[symbol] = replace(q, bid=q.bid / rate, ask=q.ask / rate)
        return out

    async def fetch_volumes_24h(self, kind: MarketKind) -> Mapping[str, Decimal]:
        if kind is not MarketKind.SPOT:
            return await self._futures.fetch_volumes_24h(kind)
        await self._ensure_loaded()
        volumes = await self._spot.fetch_volumes_24h(kind)
        out: dict[str, Decimal] = {}
        for symbol, volume in volumes.items():
            rate = await self._rate_for(symbol)
            out[symbol] = volume / rate if rate else volume
        return out

    async def fetch_order_book(self, symbol: str, depth: int = 20) -> OrderBook:
        await self._ensure_loaded()
        if not self._is_spot(symbol):
            return await self._futures.fetch_order_book(symbol, depth)
        book = await self._spot.fetch_order_book(symbol, depth)
        if symbol == RATE_SYMBOL and book.bids and book.asks and book.asks[0][0] >= book.bids[0][0]:
            self.rates.observe(book.timestamp, (book.bids[0][0] + book.asks[0][0]) / 2)
        rate = await self._rate_for(symbol)
        if rate is None:
            return book
        return replace(
            book,
            bids=tuple((p / rate, q) for p, q in book.bids),
            asks=tuple((p / rate, q) for p, q in book.asks),
        )

    async def fetch_funding_history(
        self, symbol: str, since: datetime, until: datetime | None = None
    ) -> Sequence[SettledFunding]:
        return await self._futures.fetch_funding_history(symbol, since, until)

    # --- orders -------------------------------------------------------------------------
    async def _in_usdt(self, order: Order) -> Order:
        when = order.updated_at or order.created_at
        rate = await self._rate_at(order.symbol, when) if order.filled > 0 else None
        if rate is None:
            rate = await self._rate_for(order.symbol)
        if rate is None:
            return order
        usd_fee = order.fee is not None and order.fee_asset == "USD"
        return replace(
            order,
            average_price=order.average_price / rate if order.average_price else None,
            price=order.price / rate if order.price else None,
            fee=order.fee / rate if usd_fee and order.fee is not None else order.fee,
            fee_asset="USDT" if usd_fee else order.fee_asset,
        )

    def arrival_delay(self, symbol: str) -> float:
        """Seconds to hold back an opening leg on `symbol` so it arrives with the other one.

        With `align_arrivals`, the leg on the venue with the shorter one-way latency (half
        the EWMA of its order round trips) waits for the difference, at most
        MAX_ARRIVAL_DELAY; nothing is held back before both venues were measured.
        """
        if not self.align_arrivals or len(self._one_way) < 2:
            return 0.0
        spot = symbol in self._spot_symbols
        wait = self._one_way[not spot] - self._one_way[spot]
        return min(max(wait, 0.0), MAX_ARRIVAL_DELAY)

    def _measured(self, spot: bool, started: float, round_trip: float | None = None) -> None:
        if round_trip is None:
            round_trip = self._clock.monotonic() - started
        one_way = min(round_trip, 2 * MAX_ARRIVAL_DELAY) / 2
        before = self._one_way.get(spot)
        self._one_way[spot] = (
            one_way if before is None else before + LATENCY_ALPHA * (one_way - before)
        )

    async def create_order(self, request: OrderRequest) -> Order:
        await self._ensure_loaded()
        started = self._clock.monotonic()
        if not self._is_spot(request.symbol):
            order = await self._futures.create_order(request)
            self._measured(False, started)
            return order
        rate = await self._rate_for(request.symbol)
        if rate is not None and request.price is not None:
            request = replace(request, price=request.price * rate)
        started = self._clock.monotonic()
        order = await self._spot.create_order(request)
        # BitstampSpot reads the order back after its POST: only the POST is latency
        post = getattr(self._spot, "last_post_seconds", None)
        self._measured(True, started, post if isinstance(post, float) else None)
        return await self._in_usdt(order)

    async def fetch_order(self, symbol: str, client_order_id: str) -> Order:
        await self._ensure_loaded()
        if not self._is_spot(symbol):
            return await self._futures.fetch_order(symbol, client_order_id)
        return await self._in_usdt(await self._spot.fetch_order(symbol, client_order_id))

    async def cancel_order(self, symbol: str, client_order_id: str) -> Order:
        await self._ensure_loaded()
        if not self._is_spot(symbol):
            return await self._futures.cancel_order(symbol, client_order_id)
        return await self._in_usdt(await self._spot.cancel_order(symbol, client_order_id))

    async def fetch_my_trades(self, symbol: str, since: datetime | None = None) -> Sequence[Fill]:
        await self._ensure_loaded()
        if not self._is_spot(symbol):
            return await self._futures.fetch_my_trades(symbol, since)
        fills = await self._spot.fetch_my_trades(symbol, since)
        if not self._needs_rate(symbol):
            return fills
        out = []
        for f in fills:
            rate = await self._rate_at(symbol, f.timestamp, (symbol, f.trade_id))
            assert rate is not None
            out.append(
                replace(
                    f,
                    price=f.price / rate,
                    fee=f.fee / rate if f.fee_asset == "USD" else f.fee,
                    fee_asset="USDT" if f.fee_asset == "USD" else f.fee_asset,
                    venue_price=f.price,
                    usd_per_usdt=rate,
                )
            )
        return out

    # --- accounts -----------------------------------------------------------------------
    async def fetch_spot_balances(self) -> Mapping[str, Balance]:
        """Return the spot venue's wallet (the perpetual's venue holds no spot for us)."""
        return await self._spot.fetch_spot_balances()

    async def fetch_futures_account(self) -> FuturesAccount:
        return await self._futures.fetch_futures_account()

    async def fetch_positions(self) -> Sequence[Position]:
        return await self._futures.fetch_positions()

    async def fetch_position_mode(self) -> PositionMode:
        return await self._futures.fetch_position_mode()

    async def set_position_mode(self, mode: PositionMode) -> None:
        await self._futures.set_position_mode(mode)

    async def set_leverage(self, symbol: str, leverage: int) -> None:
        await self._futures.set_leverage(symbol, leverage)

    async def set_margin_mode(self, symbol: str, mode: MarginMode) -> None:
        await self._futures.set_margin_mode(symbol, mode)

    async def fetch_funding_payments(
        self, since: datetime, symbol: str | None = None
    ) -> Sequence[FundingPayment]:
        return await self._futures.fetch_funding_payments(since, symbol)

    async def fetch_delivery_price(self, symbol: str) -> Decimal | None:
        """Return a dated future's delivery price from the futures venue (None if unknown)."""
        fetch = getattr(self._futures, "fetch_delivery_price", None)
        return await fetch(symbol) if fetch is not None else None

    async def transfer(
        self, asset: str, amount: Decimal, *, from_wallet: str, to_wallet: str
    ) -> str | None:
        raise FatalExchangeError(
            f"transfer {amount} {asset} {from_wallet}->{to_wallet}: the spot wallet is on "
            f"{self._spot.venue} and the futures wallet on {self._futures.venue}; carrybot "
            "never moves money between exchanges"
        )

    async def close(self) -> None:
        results = await asyncio.gather(
            self._spot.close(), self._futures.close(), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                logger.warning("Closing a venue failed: %s", result)


def describe(router: Any) -> str:
    """Return `spot on X, futures on Y` for banners and logs."""
    if isinstance(router, VenueRouter):
        return f"spot on {router.spot_venue.venue}, futures on {router.futures_venue.venue}"
    return f"spot and futures on {getattr(router, 'venue', '?')}"


def _conforms(router: VenueRouter) -> ExchangePort:
    """Let mypy check that VenueRouter implements the port."""
    return router
