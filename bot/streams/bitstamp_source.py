"""`BitstampStreamingSource`: the Bitstamp spot venue with its market data from the streams.

It stands where `BitstampSpot` stands (under the VenueRouter, or under a paper account):
quotes of the streamed pairs come from memory when every one is fresh, else one REST
`ticker/` request with the fresh stream quotes laid over it; a book comes from the stream
(up to its 100 levels) while fresh, else from REST. Orders, fills, balances and everything
else are the REST adapter's; in live mode (a keyed `user_client`) an order's outcome is the
first of the REST answer and the user stream's final report (`bitstamp_user.py`), as for
Binance, and a look-up is answered by the stream when it has the order final. Which pairs
are streamed: the spot legs of `pair_source()`
(the router's cross-venue pairs, restricted to `[universe] symbols` when listed) plus the
`USDT/USD` book when a USD pair is among them (the rate USD prices are converted at).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal

from bot.clock import Clock
from bot.domain import (
    Balance,
    Fill,
    FundingInfo,
    Instrument,
    MarketKind,
    Order,
    OrderBook,
    OrderRequest,
    Pair,
    Quote,
    SettledFunding,
)
from bot.exchange.bitstamp_client import BitstampPacer
from bot.exchange.bitstamp_live import BitstampSpot
from bot.exchange.port import MarketDataSource, refresh_status_of
from bot.exchange.venues import RATE_SYMBOL, SpotVenue
from bot.streams.bitstamp_books import BitstampBooks
from bot.streams.bitstamp_pro import CarryBitstampPro
from bot.streams.bitstamp_user import BitstampUserStreams
from bot.streams.config import StreamsConfig
from bot.streams.health import HealthBoard, StreamState
from bot.streams.order_race import first_final

log = logging.getLogger(__name__)

PairSource = Callable[[], Awaitable[Sequence[Pair]]]


class BitstampStreamingSource:
    """Bitstamp spot market data from ccxt.pro streams over the REST `BitstampSpot`."""

    def __init__(
        self,
        rest: BitstampSpot,
        client: CarryBitstampPro,
        config: StreamsConfig,
        clock: Clock,
        *,
        endpoints: Sequence[str],
        universe_symbols: Sequence[str] = (),
        health: HealthBoard | None = None,
        user_client: CarryBitstampPro | None = None,
    ) -> None:
        self.rest = rest
        self.client = client
        self.user_client = user_client
        self.user: BitstampUserStreams | None = None
        self.on_user_resync: Callable[[], None] | None = None
        self.stream_fills = 0  # orders whose outcome came from the stream before REST
        self.stream_lookups = 0
        self.config = config
        self._clock = clock
        self.endpoints = list(endpoints)
        self._universe = set(universe_symbols)
        self.health = health or HealthBoard(clock)
        self.pair_source: PairSource | None = None
        self.books: BitstampBooks | None = None
        self.stream_answers = 0
        self.rest_fallbacks = 0
        self._start_lock = asyncio.Lock()

    # --- what the router reads of a spot venue ------------------------------------------
    @property
    def venue(self) -> str:
        return self.rest.venue

    @property
    def spot_fee_in_base(self) -> bool:
        return self.rest.spot_fee_in_base

    @property
    def lost_order_window(self) -> timedelta:
        return self.rest.lost_order_window

    @property
    def last_post_seconds(self) -> float | None:
        return self.rest.last_post_seconds

    # --- lifecycle ----------------------------------------------------------------------
    async def start(self) -> BitstampBooks:
        """Subscribe (once); later calls return the running books."""
        if self.books is not None:
            return self.books
        async with self._start_lock:
            return self.books or await self._start()

    async def _start(self) -> BitstampBooks:
        instruments = await self.rest.load_instruments()
        symbols = await self._symbols(instruments)
        await self.client.load_markets()
        books = BitstampBooks(
            self.client, self.config, self._clock, self.health, instruments, self.endpoints
        )
        books.start(symbols)
        self.books = books
        if self.user_client is not None:
            await self.user_client.load_markets()
            self.user = BitstampUserStreams(
                self.user_client, self.config, self._clock, self.health, instruments,
                self.endpoints,
            )  # fmt: skip
            self.user.on_resync = self._user_resync
            self.user.start([s for s in symbols if s != RATE_SYMBOL])
        log.info(
            "Bitstamp streams: order_book of %s on %s", ", ".join(symbols) or "nothing",
            ", ".join(self.endpoints),
        )  # fmt: skip
        return books

    async def follow(self, pairs: Sequence[Pair]) -> None:
        """Let the running subscriptions follow the pairs (listings, delistings): books
        and private channels of entering pairs subscribed, leaving ones unsubscribed, on
        the running connections. Before the start nothing: `start` reads the pairs."""
        books = self.books
        if books is None:
            return
        instruments = await self.rest.load_instruments()
        symbols = self._symbols_of(pairs, instruments)
        traded = [s for s in symbols if s != RATE_SYMBOL]
        if symbols == books.symbols and (self.user is None or traded == self.user.symbols):
            return
        async with self._start_lock:
            await books.follow(symbols, instruments)
            if self.user is not None:
                await self.user.follow(traded, instruments)

    async def _symbols(self, instruments: Mapping[str, Instrument]) -> list[str]:
        pairs = await self.pair_source() if self.pair_source is not None else None
        return self._symbols_of(pairs, instruments)

    def _symbols_of(
        self, pairs: Sequence[Pair] | None, instruments: Mapping[str, Instrument]
    ) -> list[str]:
        symbols = {p.spot.symbol for p in pairs} if pairs is not None else set(self._universe)
        if self._universe:
            symbols &= self._universe
        symbols &= set(instruments)
        if any(instruments[s].quote == "USD" for s in symbols) and RATE_SYMBOL in instruments:
            symbols.add(RATE_SYMBOL)
        return sorted(symbols)

    def _user_resync(self) -> None:
        if self.on_user_resync is not None:
            self.on_user_resync()

    async def close(self) -> None:
        try:
            if self.books is not None:
                await self.books.stop()
            if self.user is not None:
                await self.user.stop()
            await self.client.close()
            if self.user_client is not None:
                await self.user_client.close()
        finally:
            await self.rest.close()

    # --- freshness ----------------------------------------------------------------------
    def quote_problem(self, symbol: str) -> str | None:
        """Why the stream book of `symbol` cannot be used now (None: it can)."""
        books = self.books
        if books is None:
            return "Bitstamp streams not started"
        if symbol not in books.symbols or books.supervisor is None:
            return f"{symbol} is not subscribed on Bitstamp"
        health = books.supervisor.health
        if health.state is not StreamState.LIVE:
            return f"stream {health.name} is {health.state.value}"
        age = books.confirmed_age(symbol)
        if age is None:
            return f"no stream book of {symbol} yet"
        if age > self.config.max_quote_age_seconds:
            return f"stream book of {symbol} is {age:.1f}s old"
        return None

    def live_since(self, symbols: Sequence[str]) -> float | None:
        """When the connection carrying these books last went live (None: not streamed)."""
        books = self.books
        if books is None or books.supervisor is None:
            return None
        if not any(s in books.symbols for s in symbols):
            return None
        return books.supervisor.health.live_since

    def stream_quote(self, symbol: str) -> Quote | None:
        return self.books.quotes.get(symbol) if self.books is not None else None

    def _stamped(self, books: BitstampBooks, symbol: str, timestamp: datetime) -> datetime:
        """The time the stream last vouched for `symbol` (a quiet book stays current)."""
        confirmed = books.confirmed_age(symbol)
        if confirmed is None:
            return timestamp
        return max(timestamp, self._clock.now() - timedelta(seconds=confirmed))

    # --- MarketDataSource ---------------------------------------------------------------
    async def load_instruments(self, *, reload: bool = False) -> Mapping[str, Instrument]:
        return await self.rest.load_instruments(reload=reload)

    async def pairs(self) -> Sequence[Pair]:
        return await self.rest.pairs()

    async def refresh_status(self, spot_symbols: Collection[str]) -> list[Instrument]:
        return await refresh_status_of(self.rest, spot_symbols)

    async def fetch_best_quotes(self, kind: MarketKind) -> Mapping[str, Quote]:
        if kind is not MarketKind.SPOT:
            return {}
        books = await self.start()
        fresh = {}
        for symbol in books.symbols:
            if self.quote_problem(symbol) is None:
                q = books.quotes[symbol]
                fresh[symbol] = dataclasses.replace(
                    q, timestamp=self._stamped(books, symbol, q.timestamp)
                )
        if books.symbols and len(fresh) == len(books.symbols):
            self.stream_answers += 1
            return fresh
        self.rest_fallbacks += 1
        rest = await self.rest.fetch_best_quotes(kind)
        return {**rest, **fresh}

    async def fetch_order_book(self, symbol: str, depth: int = 20) -> OrderBook:
        books = await self.start()
        book = books.books.get(symbol)
        if book is None or self.quote_problem(symbol) is not None:
            return await self.rest.fetch_order_book(symbol, depth)
        return OrderBook(
            symbol, book.bids[:depth], book.asks[:depth],
            self._stamped(books, symbol, book.timestamp),
        )  # fmt: skip

    async def fetch_volumes_24h(self, kind: MarketKind) -> Mapping[str, Decimal]:
        return await self.rest.fetch_volumes_24h(kind)

    async def fetch_funding_snapshot(self) -> Mapping[str, FundingInfo]:
        return await self.rest.fetch_funding_snapshot()

    async def fetch_funding_history(
        self, symbol: str, since: datetime, until: datetime | None = None
    ) -> Sequence[SettledFunding]:
        return await self.rest.fetch_funding_history(symbol, since, until)

    # --- trading and account: REST ------------------------------------------------------
    @property
    def pacer(self) -> BitstampPacer:
        return self.rest.pacer

    async def minute_open(self, symbol: str, when: datetime) -> Decimal | None:
        return await self.rest.minute_open(symbol, when)

    async def taker_maker_fees(self) -> tuple[Decimal, Decimal]:
        return await self.rest.taker_maker_fees()

    async def create_order(self, request: OrderRequest) -> Order:
        """Send by REST; the first of its answer and the stream's final report wins.

        A lost POST is then known at once (the stream reports what Bitstamp received)
        instead of after the look-ups by client order id.
        """
        user = self.user
        if user is None or not user.live():
            return await self.rest.create_order(request)
        order, from_stream = await first_final(
            self.rest.create_order(request), user.wait_final(request.client_order_id)
        )
        if from_stream:
            self.stream_fills += 1
        return order

    async def fetch_order(self, symbol: str, client_order_id: str) -> Order:
        """The final state the user stream reported, else `order_status/`."""
        order = self.user.final_order(client_order_id) if self.user is not None else None
        if order is not None and order.symbol == symbol:
            self.stream_lookups += 1
            return order
        return await self.rest.fetch_order(symbol, client_order_id)

    async def cancel_order(self, symbol: str, client_order_id: str) -> Order:
        return await self.rest.cancel_order(symbol, client_order_id)

    async def fetch_my_trades(self, symbol: str, since: datetime | None = None) -> Sequence[Fill]:
        return await self.rest.fetch_my_trades(symbol, since)

    async def fetch_spot_balances(self) -> Mapping[str, Balance]:
        return await self.rest.fetch_spot_balances()


def _conforms(source: BitstampStreamingSource) -> tuple[MarketDataSource, SpotVenue]:
    """Let mypy check that the source stands where BitstampSpot stands."""
    return source, source
