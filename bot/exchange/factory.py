"""The only place that chooses between the live and the paper adapter, and the venues.

`[venues] spot = "binance"` (the default): one Binance adapter for both legs, as always.
`spot = "bitstamp"`: a VenueRouter over a Bitstamp spot adapter and the Binance adapter
(live), or over two paper accounts fed by their public data (paper). With streams on, the
spot venue's market data comes from Bitstamp's streams and the perpetuals' from Binance's
(`bot.streams.cross`), under the router.
"""

from __future__ import annotations

import logging

from bot.clock import Clock
from bot.config import Config, PaperConfig
from bot.domain import EventSink, PositionMode
from bot.exchange.bitstamp_live import BitstampSpot
from bot.exchange.ccxt_live import LiveExchange
from bot.exchange.paper import PaperExchange, StateStore
from bot.exchange.port import ExchangePort, MarketDataSource
from bot.exchange.venues import VenueRouter
from bot.settings import Mode, Settings, require_venue_keys
from bot.streams.cross import CrossSources, CrossVenueStreams, cross_streams
from bot.streams.exchange import StreamedExchange
from bot.streams.factory import streaming_source, streams_off_reason, with_streams

log = logging.getLogger(__name__)

CROSS_VENUE_LIVE = "bitstamp+binance"
CROSS_VENUE_PAPER = "paper:bitstamp+binance"
SPOT_PAPER_STATE_KEY = "paper-bitstamp"
FUTURES_PAPER_STATE_KEY = "paper-futures"


def public_source(config: Config, clock: Clock, events: EventSink | None = None) -> ExchangePort:
    """Return keyless live adapters: public market data, honouring URL overrides."""
    binance = LiveExchange(config.exchange, clock=clock, events=events, coinm=_coinm(config))
    if not config.venues.cross_venue:
        return binance
    spot = BitstampSpot(config.venues, config.exchange, clock=clock)
    return VenueRouter(spot, binance, venue=CROSS_VENUE_LIVE, clock=clock)


def paper_spot_asset(config: Config) -> str:
    """Return the quote asset a cross-venue paper spot account is funded in.

    The quote of the first `universe.symbols` entry (e.g. USD for `BTC/USD`), else
    `universe.quote`.
    """
    symbols = config.universe.symbols
    if symbols:
        return symbols[0].partition("/")[2] or config.universe.quote
    return config.universe.quote


async def build_exchange(
    mode: Mode,
    settings: Settings,
    config: Config,
    clock: Clock,
    events: EventSink | None = None,
    paper_store: StateStore | None = None,
) -> ExchangePort:
    """Return the live adapter (real orders) or the paper adapter over live public data."""
    if mode is Mode.LIVE:
        assert settings.binance_api_key is not None and settings.binance_api_secret is not None
        require_venue_keys(settings, config.venues.spot)
        binance = LiveExchange(
            config.exchange,
            api_key=settings.binance_api_key.get_secret_value(),
            api_secret=settings.binance_api_secret.get_secret_value(),
            clock=clock,
            events=events,
            coinm=_coinm(config),
        )
        if not config.venues.cross_venue:
            return with_streams(
                binance,
                config,
                clock,
                api_key=settings.binance_api_key.get_secret_value(),
                api_secret=settings.binance_api_secret.get_secret_value(),
            )
        assert settings.bitstamp_api_key is not None and settings.bitstamp_api_secret is not None
        spot = BitstampSpot(
            config.venues,
            config.exchange,
            api_key=settings.bitstamp_api_key.get_secret_value(),
            api_secret=settings.bitstamp_api_secret.get_secret_value(),
            clock=clock,
        )
        sources = _cross_sources(
            spot, binance, config, clock,
            api_key=settings.binance_api_key.get_secret_value(),
            api_secret=settings.binance_api_secret.get_secret_value(),
            bitstamp_key=settings.bitstamp_api_key.get_secret_value(),
            bitstamp_secret=settings.bitstamp_api_secret.get_secret_value(),
        )  # fmt: skip
        router = VenueRouter(
            spot if sources is None else sources.spot,
            binance if sources is None else StreamedExchange(binance, sources.perp),
            venue=CROSS_VENUE_LIVE,
            align_arrivals=config.venues.align_arrivals,
            clock=clock,
        )
        return _with_cross_streams(router, sources)
    wanted = config.exchange.position_mode
    position_mode = PositionMode.HEDGE if wanted == "hedge" else PositionMode.ONE_WAY
    if config.venues.cross_venue:
        return await _cross_venue_paper(config, clock, events, paper_store, position_mode)
    rest = public_source(config, clock, events)
    source: MarketDataSource = streaming_source(rest, config, clock) or rest
    try:
        return await PaperExchange.open(
            source,
            clock=clock,
            fees=config.fees,
            paper=config.paper,
            store=paper_store,
            position_mode=position_mode,
        )
    except BaseException:
        await source.close()  # release its HTTP session before the caller retries
        raise


async def _cross_venue_paper(
    config: Config,
    clock: Clock,
    events: EventSink | None,
    store: StateStore | None,
    position_mode: PositionMode,
) -> ExchangePort:
    """Two paper accounts: spot on Bitstamp's public data, futures on Binance's."""
    spot_rest = BitstampSpot(config.venues, config.exchange, clock=clock)
    binance_rest = LiveExchange(config.exchange, clock=clock, events=events, coinm=_coinm(config))
    sources = _cross_sources(spot_rest, binance_rest, config, clock)
    spot_source: MarketDataSource = spot_rest if sources is None else sources.spot
    binance: MarketDataSource = binance_rest if sources is None else sources.perp
    try:
        spot = await PaperExchange.open(
            spot_source,
            clock=clock,
            fees=config.fees,
            paper=config.paper.model_copy(update={"initial_futures_quote": 0}),
            store=store,
            state_key=SPOT_PAPER_STATE_KEY,
            spot_quote_asset=paper_spot_asset(config),
            spot_fee_in_quote=True,
        )
        futures = await PaperExchange.open(
            binance,
            clock=clock,
            fees=config.fees,
            paper=PaperConfig.model_validate(
                {**config.paper.model_dump(), "initial_spot_quote": 0}
            ),
            store=store,
            state_key=FUTURES_PAPER_STATE_KEY,
            position_mode=position_mode,
        )
    except BaseException:
        await spot_source.close()
        await binance.close()
        raise
    router = VenueRouter(spot, futures, venue=CROSS_VENUE_PAPER, clock=clock)
    return _with_cross_streams(router, sources)


def _cross_sources(
    spot: BitstampSpot,
    binance: LiveExchange,
    config: Config,
    clock: Clock,
    *,
    api_key: str | None = None,
    api_secret: str | None = None,
    bitstamp_key: str | None = None,
    bitstamp_secret: str | None = None,
) -> CrossSources | None:
    """Both venues' stream sources, or None (logged) when streams are off."""
    reason = streams_off_reason(config)
    if reason is not None:
        log.info("Streams off (%s): market data by REST polling", reason)
        return None
    return cross_streams(
        spot, binance, config, clock, api_key=api_key, api_secret=api_secret,
        bitstamp_key=bitstamp_key, bitstamp_secret=bitstamp_secret,
    )  # fmt: skip


def _with_cross_streams(router: VenueRouter, sources: CrossSources | None) -> VenueRouter:
    """Let both sources stream the router's pairs; hang their combined view on it."""
    if sources is not None:
        sources.spot.pair_source = router.pairs
        sources.perp.pair_source = router.pairs
        router.streams = CrossVenueStreams(sources.spot, sources.perp)
    return router


def _coinm(config: Config) -> bool:
    """Whether COIN-M (dapi) markets are loaded: only when `"coinm"` is an instrument."""
    return "coinm" in config.strategy.instruments
