"""The ccxt.pro Binance client of the streams: carrybot's REST hooks plus a frame tap.

`CarryBinancePro` is `ccxt.pro.binance` with the REST pacing and error tagging of
`CarryBinance` (for the listenKey endpoints) and one change to how frames are handled:
every decoded frame goes first to `tap(client_url, frame)` (carrybot reads its data there,
exactly, and learns of `serverShutdown`), then to ccxt, whose own handling can no longer
break the receive loop: an exception from it is logged as one line and the frame ignored.

ccxt's own listenKey keep-alive is switched off (it schedules one keep-alive only, see the
README); `bot.streams.user` keeps the key alive instead.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

import ccxt.pro as ccxtpro

from bot.config import ExchangeConfig
from bot.exchange.ccxt_client import CarryBinance, build_client
from bot.streams.config import StreamsConfig

log = logging.getLogger(__name__)

Tap = Callable[[str, Any], "bool | None"]  # False: a bad frame, not handed to ccxt
_LISTEN_KEY = re.compile(r"(listenKey=|/ws/)[A-Za-z0-9]{32,}")
NEVER_MS = 10**12  # ccxt's listenKey refresh "rate": effectively never


class CarryBinancePro(CarryBinance, ccxtpro.binance):  # type: ignore[misc]
    """ccxt.pro's Binance with carrybot's pacing and a frame tap."""

    tap: Tap | None = None
    _ccxt_errors: set[str]

    async def ensure_user_data_stream_ws_subscribe_signature(self, marketType: str = "spot") -> Any:
        # ccxt 4.5 creates a future for this subscription that nobody awaits and rejects it
        # when the dial fails: asyncio then logs "Future exception was never retrieved" (3
        # ERROR lines a refused attempt, all through a maintenance window). Mark it seen.
        client = self.client(self.urls["api"]["ws"]["ws-api"][marketType])
        create = client.future

        def future(message_hash: str) -> Any:
            made = create(message_hash)
            if message_hash.startswith("authenticate:signature:"):
                made.add_done_callback(_retrieved)
            return made

        client.future = future
        try:
            return await super().ensure_user_data_stream_ws_subscribe_signature(marketType)
        finally:
            client.future = create

    def handle_message(self, client: Any, message: Any) -> None:
        if self.tap is not None and self.tap(client.url, message) is False:
            return  # carrybot logged it as malformed: ccxt would only fail on it again
        try:
            super().handle_message(client, message)
        except Exception as exc:
            errors = self.__dict__.setdefault("_ccxt_errors", set())
            key = f"{type(exc).__name__}: {exc}"[:200]
            if key not in errors:  # once per distinct error, not once per frame
                errors.add(key)
                url = redact_listen_key(client.url)
                log.warning("ccxt could not handle a frame from %s (%s); ignored", url, key)


class CarryBinanceCoinmPro(CarryBinancePro, ccxtpro.binancecoinm):  # type: ignore[misc]
    """ccxt.pro's `binancecoinm` (dapi: inverse markets, the COIN-M listenKey) with the tap."""


def redact_listen_key(url: str) -> str:
    """`url` without its listenKey (`…?listenKey=K`, COIN-M's `…/ws/K`), for logs."""
    return _LISTEN_KEY.sub(r"\1<listenKey>", url)


def _retrieved(future: Any) -> None:
    if not future.cancelled():
        future.exception()


def build_pro_client(
    exchange: ExchangeConfig,
    streams: StreamsConfig,
    *,
    api_key: str | None = None,
    api_secret: str | None = None,
    spot_url: str,
    futures_url: str,
) -> CarryBinancePro:
    """Create the stream client: REST overrides of `[exchange]`, stream URLs given here."""
    client = build_client(exchange, api_key=api_key, api_secret=api_secret, cls=CarryBinancePro)
    assert isinstance(client, CarryBinancePro)
    set_stream_url(client, "spot", spot_url)
    set_stream_url(client, "linear", futures_url)
    if streams.spot_ws_api_url is not None:
        client.urls["api"]["ws"]["ws-api"]["spot"] = streams.spot_ws_api_url
    client.streaming = {**client.streaming, "keepAlive": int(streams.ping_seconds * 1000)}
    client.options["listenKeyRefreshRate"] = NEVER_MS
    client.options["ws"] = {**client.options.get("ws", {}), "compress": 0}
    return client


def build_coinm_pro_client(
    exchange: ExchangeConfig,
    streams: StreamsConfig,
    *,
    api_key: str,
    api_secret: str,
    coinm_url: str,
) -> CarryBinancePro:
    """Create the COIN-M user-data client: ccxt.pro's `binancecoinm` on dapi's listenKey.

    Its markets are dapi's alone (inverse perpetuals and quarterlies); the listenKey is
    COIN-M's (`/dapi/v1/listenKey`), kept alive by `bot.streams.user` like USDⓈ-M's.
    """
    client = build_client(
        exchange, api_key=api_key, api_secret=api_secret, cls=CarryBinanceCoinmPro
    )
    assert isinstance(client, CarryBinanceCoinmPro)
    client.options["defaultType"] = "future"
    client.options["defaultSubType"] = "inverse"
    client.options["fetchMarkets"] = {"types": ["inverse"]}
    set_stream_url(client, "inverse", coinm_url)
    client.streaming = {**client.streaming, "keepAlive": int(streams.ping_seconds * 1000)}
    client.options["listenKeyRefreshRate"] = NEVER_MS
    client.options["ws"] = {**client.options.get("ws", {}), "compress": 0}
    # The bot reads positions from the frames; ccxt's REST snapshot would add requests.
    watch_positions = client.options.get("watchPositions") or {}
    client.options["watchPositions"] = {**watch_positions, "fetchPositionsSnapshot": False}
    return client


def set_stream_url(client: CarryBinancePro, kind: str, url: str) -> None:
    """Point the next subscription of `kind` (`spot`, `linear`, `inverse`, `ws-api`) at `url`.

    A watch call reads the URL before its first await, so setting it just before the call
    is safe with several supervisors of one kind on different endpoints.
    """
    ws = client.urls["api"]["ws"]
    if kind == "ws-api":
        ws["ws-api"]["spot"] = url
    else:
        ws[kind] = url
    if kind == "spot":
        ws["margin"] = url
    backoff = getattr(client, "ws_dial_backoff", None)
    if backoff:  # the supervisor owns the reconnect timing, not ccxt's dial backoff
        base = url.removesuffix("/ws") + "/"  # ccxt dials e.g. …/market/ws/0 under …/ws
        for dialled in [u for u in backoff if u.startswith(base) or u.startswith(url)]:
            del backoff[dialled]
