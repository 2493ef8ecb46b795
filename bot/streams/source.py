"""`StreamingSource`: a `MarketDataSource` that answers from the streams, REST as fallback.

`fetch_best_quotes` returns the stream quotes of the subscribed symbols when every one of
them is fresh (no request); otherwise one REST request for the market, with the fresh
stream quotes laid over it. `fetch_funding_snapshot` lays the mark-price stream (mark,
index, funding estimate, next funding time) over a REST premiumIndex snapshot that is
fetched again every `FUNDING_REST_SECONDS` (interest rate, intervals and caps are not on
the stream), or at every call while the stream is stale. Everything else is REST.

Subscriptions start on the first call: the pairs of an explicit `[universe] symbols` list,
else every spot/perpetual pair; in live mode (a keyed `user_client`) the user-data streams
start with them. They follow the pairs afterwards: each `pairs()` call (the snapshot's
instrument refresh) subscribes pairs that were listed and unsubscribes those that left.

Across venues (`[venues] spot = "bitstamp"`) this source streams the perpetual side only
(`spot_streams=False`: the spot leg's books are Bitstamp's, `bitstamp_source.py`) and
takes its pairs from `pair_source` (the router's cross-venue pairs).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal

from bot.clock import Clock
from bot.domain import FundingInfo, Instrument, MarketKind, OrderBook, Pair, Quote, SettledFunding
from bot.exchange.port import MarketDataSource, refresh_status_of
from bot.exchange.translate import translate
from bot.streams.config import StreamsConfig
from bot.streams.health import HealthBoard, StreamState
from bot.streams.market import MarketStreams
from bot.streams.pro_client import CarryBinancePro
from bot.streams.user import UserStreams

log = logging.getLogger(__name__)

FUNDING_REST_SECONDS = 300.0


class StreamingSource:
    """Market data from ccxt.pro streams over a REST `MarketDataSource`."""

    def __init__(
        self,
        rest: MarketDataSource,
        client: CarryBinancePro,
        config: StreamsConfig,
        clock: Clock,
        *,
        universe_symbols: Sequence[str] = (),
        user_client: CarryBinancePro | None = None,
        coinm_client: CarryBinancePro | None = None,
        spot_streams: bool = True,
    ) -> None:
        self.rest = rest
        self.spot_streams = spot_streams
        self.pair_source: Callable[[], Awaitable[Sequence[Pair]]] | None = None
        self.client = client
        self.user_client = user_client
        self.coinm_client = coinm_client  # COIN-M user data (dapi listenKey), live with "coinm"
        self.user: UserStreams | None = None
        self.on_user_resync: Callable[[], None] | None = None
        self.config = config
        self._clock = clock
        self._universe = set(universe_symbols)
        self.health = HealthBoard(clock)
        self.streams: MarketStreams | None = None
        self.pairs_by_key: dict[str, Pair] = {}
        self._spot: list[str] = []
        self._perp: list[str] = []
        self._funding_base: Mapping[str, FundingInfo] | None = None
        self._funding_base_at = float("-inf")
        self.stream_answers = 0
        self.rest_fallbacks = 0
        self._start_lock = asyncio.Lock()

    async def start(self) -> MarketStreams:
        """Subscribe (once); later calls return the running streams."""
        if self.streams is not None:
            return self.streams
        async with self._start_lock:  # a snapshot asks for quotes and funding at once
            return self.streams or await self._start()

    def _take_universe(self, all_pairs: Sequence[Pair]) -> bool:
        """Set the streamed pairs from the exchange's pairs; True when they changed."""
        pairs = [p for p in all_pairs if not self._universe or p.key in self._universe]
        spot = sorted({p.spot.symbol for p in pairs}) if self.spot_streams else []
        perp = sorted({p.perp.symbol for p in pairs})
        self.pairs_by_key = {p.key: p for p in pairs}
        changed = (spot, perp) != (self._spot, self._perp)
        self._spot, self._perp = spot, perp
        return changed

    async def _pairs(self) -> Sequence[Pair]:
        return await (self.pair_source or self.rest.pairs)()

    async def _start(self) -> MarketStreams:
        instruments = await self.rest.load_instruments()
        self._take_universe(await self._pairs())
        try:
            await self.client.load_markets()  # ccxt.pro maps symbols to stream names with them
        except Exception as exc:
            raise translate(exc, self._clock.now()) from exc
        streams = MarketStreams(self.client, self.config, self._clock, self.health, instruments)
        streams.start(self._spot, self._perp)
        self.streams = streams
        if self.user_client is not None:
            await self.user_client.load_markets()
            if self.coinm_client is not None:
                await self.coinm_client.load_markets()  # dapi's markets: its own symbols
            self.user = UserStreams(
                self.user_client, self.config, self._clock, self.health, instruments,
                spot=self.spot_streams, coinm_client=self.coinm_client,
            )  # fmt: skip
            self.user.on_resync = self._user_resync
            self.user.start()
        log.info(
            "Streams: %d spot and %d perpetual book tickers, mark prices; endpoints %s / %s",
            len(self._spot),
            len(self._perp),
            ", ".join(self.config.spot_endpoints()),
            ", ".join(self.config.futures_endpoints()),
        )
        return streams

    def _user_resync(self) -> None:
        if self.on_user_resync is not None:
            self.on_user_resync()

    # --- freshness ----------------------------------------------------------------------
    def quote_problem(self, symbol: str) -> str | None:
        """Why the stream quote of `symbol` cannot be used now (None: it can)."""
        streams = self.streams
        if streams is None:
            return "streams not started"
        sup = streams.stream_of.get(symbol)
        if sup is None:
            return f"{symbol} is not subscribed"
        if sup.health.state is not StreamState.LIVE:
            return f"stream {sup.sub.name} is {sup.health.state.value}"
        age = streams.confirmed_age(symbol)
        if age is None:
            return f"no stream quote of {symbol} yet"
        if age > self.config.max_quote_age_seconds:
            return f"stream quote of {symbol} is {age:.1f}s old"
        return None

    def mark_problem(self, symbol: str) -> str | None:
        """Why the stream mark price of `symbol` cannot be used now (None: it can)."""
        streams = self.streams
        if streams is None:
            return "streams not started"
        sup = streams.mark_supervisor()
        if sup is None or sup.health.state is not StreamState.LIVE:
            return f"mark-price stream is {sup.health.state.value if sup else 'absent'}"
        age = streams.mark_age(symbol)
        if age is None:
            return f"no stream mark price of {symbol} yet"
        if age > self.config.max_quote_age_seconds:
            return f"stream mark price of {symbol} is {age:.1f}s old"
        return None

    def live_since(self, symbols: Sequence[str]) -> float | None:
        """The latest time one of the streams carrying `symbols` (or marks) went live."""
        streams = self.streams
        if streams is None:
            return None
        sups = [streams.stream_of[s] for s in symbols if s in streams.stream_of]
        mark = streams.mark_supervisor()
        if mark is not None:
            sups.append(mark)
        times = [s.health.live_since for s in sups if s.health.live_since is not None]
        return max(times) if times else None

    # --- MarketDataSource ---------------------------------------------------------------
    async def load_instruments(self, *, reload: bool = False) -> Mapping[str, Instrument]:
        return await self.rest.load_instruments(reload=reload)

    async def pairs(self) -> Sequence[Pair]:
        """The exchange's pairs; the subscriptions follow them (listings, delistings)."""
        pairs = await self.rest.pairs()
        if self.streams is not None:
            await self.follow(pairs if self.pair_source is None else await self.pair_source())
        return pairs

    async def follow(self, pairs: Sequence[Pair]) -> None:
        """Let the running subscriptions follow `pairs` (nothing before the start)."""
        streams = self.streams
        if streams is not None and self._take_universe(pairs):
            async with self._start_lock:
                instruments = await self.rest.load_instruments()
                await streams.follow(self._spot, self._perp, instruments)

    async def refresh_status(self, spot_symbols: Collection[str]) -> list[Instrument]:
        return await refresh_status_of(self.rest, spot_symbols)

    def stream_quote(self, symbol: str) -> Quote | None:
        """The last stream quote of `symbol` (the entry gate reads its spread)."""
        return self.streams.quotes.get(symbol) if self.streams is not None else None

    async def fetch_best_quotes(self, kind: MarketKind) -> Mapping[str, Quote]:
        if kind is MarketKind.SPOT and not self.spot_streams:
            return await self.rest.fetch_best_quotes(kind)
        streams = await self.start()
        symbols = self._spot if kind is MarketKind.SPOT else self._perp
        fresh = self._fresh_quotes(streams, symbols)
        if len(fresh) == len(symbols):
            self.stream_answers += 1
            return fresh
        self.rest_fallbacks += 1
        asked_at = self._clock.monotonic()
        rest = await self.rest.fetch_best_quotes(kind)
        streams.adopt({s: q for s, q in rest.items() if s not in fresh}, asked_at)
        return {**rest, **fresh}

    def _fresh_quotes(self, streams: MarketStreams, symbols: Sequence[str]) -> dict[str, Quote]:
        """Usable stream quotes, each stamped with the time the stream last vouched for it."""
        out = {}
        now, mono = self._clock.now(), self._clock.monotonic()
        for symbol in symbols:
            if self.quote_problem(symbol) is not None:
                continue
            quote = streams.quotes[symbol]
            confirmed = streams.confirmed_age(symbol)
            if confirmed is not None and confirmed < mono - streams.quote_at[symbol]:
                quote = dataclasses.replace(quote, timestamp=now - timedelta(seconds=confirmed))
            out[symbol] = quote
        return out

    async def fetch_funding_snapshot(self) -> Mapping[str, FundingInfo]:
        streams = await self.start()
        fresh = {s for s in self._perp if self.mark_problem(s) is None}
        due = self._clock.monotonic() - self._funding_base_at >= FUNDING_REST_SECONDS
        if self._funding_base is None or due or len(fresh) < len(self._perp):
            self._funding_base = await self.rest.fetch_funding_snapshot()
            self._funding_base_at = self._clock.monotonic()
            if len(fresh) < len(self._perp):
                self.rest_fallbacks += 1
        out = dict(self._funding_base)
        for symbol in fresh:
            info, tick = out.get(symbol), streams.marks[symbol]
            if info is None:
                continue
            out[symbol] = dataclasses.replace(
                info,
                funding_rate=tick.funding_rate,
                next_funding_time=tick.next_funding_time,
                mark_price=tick.mark_price,
                index_price=tick.index_price,
                timestamp=tick.event_time,
            )
        return out

    async def fetch_order_book(self, symbol: str, depth: int = 20) -> OrderBook:
        return await self.rest.fetch_order_book(symbol, depth)

    async def fetch_volumes_24h(self, kind: MarketKind) -> Mapping[str, Decimal]:
        return await self.rest.fetch_volumes_24h(kind)

    async def fetch_funding_history(
        self, symbol: str, since: datetime, until: datetime | None = None
    ) -> Sequence[SettledFunding]:
        return await self.rest.fetch_funding_history(symbol, since, until)

    async def close(self) -> None:
        """Stop the streams, close the stream client, then the REST source."""
        try:
            if self.streams is not None:
                await self.streams.stop()
            if self.user is not None:
                await self.user.stop()
            await self.client.close()
            if self.user_client is not None:
                await self.user_client.close()
            if self.coinm_client is not None:
                await self.coinm_client.close()
        finally:
            await self.rest.close()
