"""The only place that chooses between the live and the paper adapter."""

from __future__ import annotations

from bot.clock import Clock
from bot.config import Config
from bot.domain import EventSink, PositionMode
from bot.exchange.ccxt_live import LiveExchange
from bot.exchange.paper import PaperExchange, StateStore
from bot.exchange.port import ExchangePort, MarketDataSource
from bot.settings import Mode, Settings
from bot.streams.factory import streaming_source, with_streams


def public_source(config: Config, clock: Clock, events: EventSink | None = None) -> LiveExchange:
    """Return a keyless live adapter: Binance public market data, honouring URL overrides."""
    return LiveExchange(config.exchange, clock=clock, events=events)


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
        live = LiveExchange(
            config.exchange,
            api_key=settings.binance_api_key.get_secret_value(),
            api_secret=settings.binance_api_secret.get_secret_value(),
            clock=clock,
            events=events,
        )
        return with_streams(live, config, clock)
    wanted = config.exchange.position_mode
    rest = public_source(config, clock, events)
    source: MarketDataSource = streaming_source(rest, config, clock) or rest
    try:
        return await PaperExchange.open(
            source,
            clock=clock,
            fees=config.fees,
            paper=config.paper,
            store=paper_store,
            position_mode=PositionMode.HEDGE if wanted == "hedge" else PositionMode.ONE_WAY,
        )
    except BaseException:
        await source.close()  # release its HTTP session before the caller retries
        raise
