"""The only place that chooses between the live and the paper adapter, and the venues.

`[venues] spot = "binance"` (the default): one Binance adapter for both legs, as always.
`spot = "bitstamp"`: a VenueRouter over a Bitstamp spot adapter and the Binance adapter
(live), or over two paper accounts fed by their public data (paper).
"""

from __future__ import annotations

from bot.clock import Clock
from bot.config import Config, PaperConfig
from bot.domain import EventSink, PositionMode
from bot.exchange.bitstamp_live import BitstampSpot
from bot.exchange.ccxt_live import LiveExchange
from bot.exchange.paper import PaperExchange, StateStore
from bot.exchange.port import ExchangePort, MarketDataSource
from bot.exchange.venues import VenueRouter
from bot.settings import Mode, Settings, require_venue_keys
from bot.streams.factory import streaming_source, with_streams

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
        return VenueRouter(
            spot,
            binance,
            venue=CROSS_VENUE_LIVE,
            align_arrivals=config.venues.align_arrivals,
            clock=clock,
        )
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
    spot_source = BitstampSpot(config.venues, config.exchange, clock=clock)
    binance = LiveExchange(config.exchange, clock=clock, events=events, coinm=_coinm(config))
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
    return VenueRouter(spot, futures, venue=CROSS_VENUE_PAPER, clock=clock)


def _coinm(config: Config) -> bool:
    """Whether COIN-M (dapi) markets are loaded: only when `"coinm"` is an instrument."""
    return "coinm" in config.strategy.instruments
