"""Streams across venues: Bitstamp's books for the spot leg, Binance's for the perpetual.

`cross_streams(...)` builds the two sources the factory puts under the VenueRouter: a
`BitstampStreamingSource` (the spot venue) and a perpetual-only `StreamingSource` over
Binance (book tickers and mark prices of the cross-venue pairs' perpetuals), on one health
board. `CrossVenueStreams` is what the entry gate, heartbeat and dashboard read: each
symbol's freshness from the venue that streams it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from bot.clock import Clock
from bot.config import Config
from bot.domain import Pair, Quote
from bot.exchange.bitstamp_live import BitstampSpot
from bot.exchange.port import MarketDataSource
from bot.streams.bitstamp_pro import build_bitstamp_pro_client
from bot.streams.bitstamp_source import BitstampStreamingSource
from bot.streams.health import HealthBoard
from bot.streams.pro_client import build_pro_client
from bot.streams.source import StreamingSource

log = logging.getLogger(__name__)

BITSTAMP_STREAMS = "wss://ws.bitstamp.net"


def bitstamp_off_reason(config: Config) -> str | None:
    """Why Bitstamp's streams do not run with this config (None: they run)."""
    venues = config.venues
    if venues.bitstamp_api_url is not None and venues.bitstamp_ws_url is None:
        return (
            "venues.bitstamp_api_url points at another server but venues.bitstamp_ws_url is "
            "not set (Bitstamp's streams next to another server's REST would mix two venues)"
        )
    return None


def bitstamp_source(
    rest: BitstampSpot,
    config: Config,
    clock: Clock,
    health: HealthBoard | None = None,
    *,
    api_key: str | None = None,
    api_secret: str | None = None,
) -> BitstampStreamingSource:
    """Bitstamp's book streams over the REST adapter; with keys its user data too."""
    streams = config.streams
    # Bitstamp sends a book only when it changes: heartbeats keep a quiet connection
    # provably alive, so they go out more often than the silence limit.
    ping = min(streams.ping_seconds, streams.silence_seconds / 2)
    client = build_bitstamp_pro_client(
        config.venues, config.exchange, clock=clock, ping_seconds=ping
    )
    user_client = None
    if api_key and api_secret and streams.user_data:
        user_client = build_bitstamp_pro_client(
            config.venues, config.exchange, clock=clock, ping_seconds=ping,
            api_key=api_key, api_secret=api_secret,
        )  # fmt: skip
    return BitstampStreamingSource(
        rest,
        client,
        streams,
        clock,
        endpoints=[config.venues.bitstamp_ws_url or BITSTAMP_STREAMS],
        universe_symbols=config.universe.symbols,
        health=health,
        user_client=user_client,
    )


@dataclass
class CrossSources:
    spot: BitstampStreamingSource
    perp: StreamingSource


def cross_streams(
    spot_rest: BitstampSpot,
    perp_rest: MarketDataSource,
    config: Config,
    clock: Clock,
    *,
    api_key: str | None = None,
    api_secret: str | None = None,
    bitstamp_key: str | None = None,
    bitstamp_secret: str | None = None,
) -> CrossSources:
    """The two stream sources of a cross-venue run (the caller checked they may run).

    `api_key`/`api_secret` are Binance's, `bitstamp_key`/`bitstamp_secret` Bitstamp's
    (live mode: both user-data streams).
    """
    binance = config.streams
    client = build_pro_client(
        config.exchange, binance,
        spot_url=binance.spot_endpoints()[0], futures_url=binance.futures_endpoints()[0],
    )  # fmt: skip
    user_client = None
    if api_key and api_secret and binance.user_data:
        user_client = build_pro_client(
            config.exchange, binance, api_key=api_key, api_secret=api_secret,
            spot_url=binance.spot_endpoints()[0], futures_url=binance.futures_endpoints()[0],
        )  # fmt: skip
    perp = StreamingSource(
        perp_rest, client, binance, clock, universe_symbols=config.universe.symbols,
        user_client=user_client, spot_streams=False,
    )  # fmt: skip
    spot = bitstamp_source(
        spot_rest, config, clock, perp.health, api_key=bitstamp_key, api_secret=bitstamp_secret
    )
    return CrossSources(spot, perp)


class CrossVenueStreams:
    """The stream view across venues: spot symbols from Bitstamp, the rest from Binance."""

    def __init__(self, spot: BitstampStreamingSource, perp: StreamingSource) -> None:
        self.spot = spot
        self.perp = perp
        self.health = perp.health

    @property
    def on_user_resync(self) -> Callable[[], None] | None:
        return self.perp.on_user_resync

    @on_user_resync.setter
    def on_user_resync(self, callback: Callable[[], None] | None) -> None:
        self.perp.on_user_resync = callback
        self.spot.on_user_resync = callback

    async def follow(self, pairs: Sequence[Pair]) -> None:
        """Both venues' subscriptions follow the router's pairs (listings, delistings)."""
        await self.spot.follow(pairs)
        await self.perp.follow(pairs)

    @property
    def pairs_by_key(self) -> Mapping[str, Pair]:
        return self.perp.pairs_by_key

    def _is_spot(self, symbol: str) -> bool:
        return ":" not in symbol

    def quote_problem(self, symbol: str) -> str | None:
        if self._is_spot(symbol):
            return self.spot.quote_problem(symbol)
        return self.perp.quote_problem(symbol)

    def mark_problem(self, symbol: str) -> str | None:
        return self.perp.mark_problem(symbol)

    def live_since(self, symbols: Sequence[str]) -> float | None:
        spot = self.spot.live_since([s for s in symbols if self._is_spot(s)])
        perp = self.perp.live_since([s for s in symbols if not self._is_spot(s)])
        times = [t for t in (spot, perp) if t is not None]
        return max(times) if times else None

    def stream_quote(self, symbol: str) -> Quote | None:
        if self._is_spot(symbol):
            return self.spot.stream_quote(symbol)
        return self.perp.stream_quote(symbol)
