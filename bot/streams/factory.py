"""Wire the streams from `[streams]`: whether they run, and the source or exchange they wrap.

Backtests never come here (their source is the replay); live and paper runs do.
"""

from __future__ import annotations

import logging

from bot.clock import Clock
from bot.config import Config
from bot.exchange.port import ExchangePort, MarketDataSource
from bot.streams.cross import CrossVenueStreams, bitstamp_off_reason
from bot.streams.exchange import StreamedExchange
from bot.streams.gate import StreamView
from bot.streams.pro_client import CarryBinancePro, build_coinm_pro_client, build_pro_client
from bot.streams.source import StreamingSource

log = logging.getLogger(__name__)


def streams_off_reason(config: Config) -> str | None:
    """Why streams do not run with this config (None: they run)."""
    streams, exchange = config.streams, config.exchange
    if not streams.enabled:
        return "[streams] enabled = false"
    if config.venues.cross_venue:
        return _cross_venue_off_reason(config)
    if exchange.spot_api_url is not None and streams.spot_ws_url is None:
        return (
            "exchange.spot_api_url points at another server but streams.spot_ws_url is not "
            "set (streams from Binance would mix two venues); set it, or enabled = false"
        )
    if exchange.futures_api_url is not None and streams.futures_ws_url is None:
        return (
            "exchange.futures_api_url points at another server but streams.futures_ws_url "
            "is not set; set it, or enabled = false"
        )
    if exchange.environment != "production" and (
        streams.spot_ws_url is None or streams.futures_ws_url is None
    ):
        return (
            f"exchange.environment = {exchange.environment!r}: set streams.spot_ws_url and "
            "streams.futures_ws_url for it"
        )
    return None


def _cross_venue_off_reason(config: Config) -> str | None:
    """Across venues: Bitstamp's streams for the spot leg, Binance USDⓈ-M's for the short."""
    streams, exchange = config.streams, config.exchange
    reason = bitstamp_off_reason(config)
    if reason is not None:
        return reason
    if exchange.futures_api_url is not None and streams.futures_ws_url is None:
        return (
            "exchange.futures_api_url points at another server but streams.futures_ws_url "
            "is not set; set it, or enabled = false"
        )
    if exchange.environment != "production" and streams.futures_ws_url is None:
        return f"exchange.environment = {exchange.environment!r}: set streams.futures_ws_url for it"
    return None


def streaming_source(
    rest: MarketDataSource,
    config: Config,
    clock: Clock,
    *,
    api_key: str | None = None,
    api_secret: str | None = None,
) -> StreamingSource | None:
    """Return a `StreamingSource` over `rest`, or None (logged) when streams are off."""
    reason = streams_off_reason(config)
    if reason is not None:
        log.info("Streams off (%s): market data by REST polling", reason)
        return None
    client = build_pro_client(
        config.exchange,
        config.streams,
        spot_url=config.streams.spot_endpoints()[0],
        futures_url=config.streams.futures_endpoints()[0],
    )
    user_client = None
    if api_key and api_secret and config.streams.user_data:
        user_client = build_pro_client(
            config.exchange,
            config.streams,
            api_key=api_key,
            api_secret=api_secret,
            spot_url=config.streams.spot_endpoints()[0],
            futures_url=config.streams.futures_endpoints()[0],
        )
    coinm_client: CarryBinancePro | None = None
    trades_coinm = "coinm" in config.strategy.instruments
    if user_client is not None and api_key and api_secret and trades_coinm:
        reason = coinm_user_off_reason(config)
        if reason is None:
            coinm_client = build_coinm_pro_client(
                config.exchange,
                config.streams,
                api_key=api_key,
                api_secret=api_secret,
                coinm_url=config.streams.coinm_endpoints()[0],
            )
        else:
            log.info("COIN-M user stream off (%s): COIN-M orders resolved by REST", reason)
    return StreamingSource(
        rest,
        client,
        config.streams,
        clock,
        universe_symbols=config.universe.symbols,
        user_client=user_client,
        coinm_client=coinm_client,
    )


def coinm_user_off_reason(config: Config) -> str | None:
    """Why the COIN-M user-data stream does not run beside the others (None: it runs)."""
    streams, exchange = config.streams, config.exchange
    if streams.coinm_ws_url is not None:
        return None
    if exchange.futures_api_url is not None:
        return (
            "exchange.futures_api_url points at another server but streams.coinm_ws_url is "
            "not set; set it (e.g. ws://HOST:PORT/d/ws)"
        )
    if exchange.environment != "production":
        return f"exchange.environment = {exchange.environment!r}: set streams.coinm_ws_url for it"
    return None


def with_streams(
    live: ExchangePort,
    config: Config,
    clock: Clock,
    *,
    api_key: str | None = None,
    api_secret: str | None = None,
) -> ExchangePort:
    """The live adapter with stream market (and user) data, or itself when streams are off."""
    source = streaming_source(live, config, clock, api_key=api_key, api_secret=api_secret)
    return live if source is None else StreamedExchange(live, source)


def find_streaming_source(exchange: object) -> StreamView | None:
    """The streams behind an exchange built by the factory, if any (across venues: both)."""
    if isinstance(exchange, StreamedExchange):
        return exchange.source
    streams = getattr(exchange, "streams", None)
    if isinstance(streams, CrossVenueStreams):
        return streams
    source = getattr(exchange, "source", None)
    return source if isinstance(source, StreamingSource) else None
