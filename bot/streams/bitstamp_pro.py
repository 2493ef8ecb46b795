"""The ccxt.pro Bitstamp client of the streams: carrybot's REST hooks, a frame tap, heartbeats.

`CarryBitstampPro` is `ccxt.pro.bitstamp` with the pacing, error tagging and signatures of
`CarryBitstamp` (its `websockets_token/` call is a paced private POST) and:
- every decoded frame goes first to `tap(client_url, frame)`, then to ccxt, whose handling
  can no longer break the receive loop (an exception there is one logged line);
- `watch_books(symbols)`: the `order_book_<pair>` channels (top 100 levels, sent whole on
  every change) on one connection, resolved on every book frame. ccxt.pro's own
  `watch_order_book` rebuilds the book from `diff_order_book` deltas and a delayed REST
  snapshot, in floats; the whole-book channel needs no synchronisation;
- `watch_user(symbols)`: `private-my_orders_<pair>-<user id>` and `private-my_trades_…`
  of each symbol (with a `websockets_token/` token, renewed by ccxt when it has expired),
  resolved on every private event (carrybot reads them from the tap, exactly);
- ccxt's keep-alive sends Bitstamp's application heartbeat (`bts:heartbeat`) and counts
  the server's answer as the pong, so a quiet but healthy connection is told apart from a
  dead one (two missed answers drop it).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import ccxt.pro as ccxtpro

from bot.clock import Clock
from bot.config import ExchangeConfig, VenuesConfig
from bot.exchange.bitstamp_client import CarryBitstamp, build_bitstamp_client
from bot.streams.bitstamp_wire import BOOK_PREFIX, HEARTBEAT, ORDERS_PREFIX, TRADES_PREFIX
from bot.streams.pro_client import Tap

log = logging.getLogger(__name__)

BOOKS = "carrybot:books"  # the message hash every order_book_<pair> frame resolves
USER = "carrybot:user"  # ... and every private order or trade event
PRIVATE = (ORDERS_PREFIX, TRADES_PREFIX)


class CarryBitstampPro(CarryBitstamp, ccxtpro.bitstamp):  # type: ignore[misc]
    """ccxt.pro's Bitstamp with carrybot's pacing, a frame tap and application heartbeats."""

    tap: Tap | None = None
    _ccxt_errors: set[str]

    def ping(self, client: Any) -> dict[str, str]:
        return {"event": HEARTBEAT}

    def point_stream(self, kind: str, url: str) -> None:
        """Point the next connection at `url` (failover); Bitstamp has one URL for all."""
        self.urls["api"]["ws"] = url
        backoff = getattr(self, "ws_dial_backoff", None)
        if backoff and url in backoff:  # the supervisor owns the reconnect timing
            del backoff[url]

    def watch_books(self, symbols: Sequence[str]) -> Any:
        """Subscribe `order_book_<pair>` of each symbol; resolves with the next book frame."""
        url = self.urls["api"]["ws"]
        future = None
        for symbol in symbols:
            channel = BOOK_PREFIX + self.market(symbol)["id"]
            request = {"event": "bts:subscribe", "data": {"channel": channel}}
            future = self.watch(url, BOOKS, request, channel)
        return future

    async def watch_user(self, symbols: Sequence[str]) -> Any:
        """Subscribe our order and trade channels of each symbol; resolves with the next event."""
        url = self.urls["api"]["ws"]
        client = (self.clients or {}).get(url)
        if client is None or not any(str(k).startswith(PRIVATE) for k in client.subscriptions):
            self.options["expiresIn"] = ""  # a new dial: a new token (valid 60 s)
            await self.authenticate()
        return await self._subscribe_user(url, symbols)

    def _subscribe_user(self, url: str, symbols: Sequence[str]) -> Any:
        token = self.options["wsSessionToken"]
        future: Any = None
        for symbol in symbols:
            for channel in self.user_channels([symbol]):
                request = {"event": "bts:subscribe", "data": {"channel": channel, "auth": token}}
                future = self.watch(url, USER, request, channel, {"symbol": symbol})
        return future

    def user_channels(self, symbols: Sequence[str]) -> list[str]:
        """Our order and trade channels of `symbols` (the user id known from the token)."""
        user = self.options.get("userId")
        return [f"{p}{self.market(s)['id']}-{user}" for s in symbols for p in PRIVATE]

    async def subscribe_user_now(self, symbols: Sequence[str]) -> None:
        """Subscribe more symbols' private channels on the running connection (new token:
        Bitstamp checks it at each subscription and it is valid for 60 s only)."""
        self.options["expiresIn"] = ""
        await self.authenticate()
        self._subscribe_user(self.urls["api"]["ws"], symbols)

    async def unsubscribe(self, channels: Sequence[str]) -> None:
        """Send `bts:unsubscribe` of each channel on the running connection and forget it
        (subscribing it again later sends a new `bts:subscribe`)."""
        client = (self.clients or {}).get(self.urls["api"]["ws"])
        if client is None:
            return
        for channel in channels:
            client.subscriptions.pop(channel, None)
            if client.isConnected:
                await client.send({"event": "bts:unsubscribe", "data": {"channel": channel}})

    def handle_message(self, client: Any, message: Any) -> None:
        if self.tap is not None:
            self.tap(client.url, message)
        if not isinstance(message, dict):
            return
        event, channel = message.get("event"), message.get("channel")
        if event == HEARTBEAT:
            client.lastPong = self.milliseconds()
            return
        if event == "data" and isinstance(channel, str) and channel.startswith(BOOK_PREFIX):
            client.resolve(message, BOOKS)
            return
        if (
            isinstance(channel, str)
            and channel.startswith(PRIVATE)
            and event != "bts:subscription_succeeded"
        ):
            client.resolve(message, USER)
            return
        try:
            super().handle_message(client, message)
        except Exception as exc:
            errors = self.__dict__.setdefault("_ccxt_errors", set())
            key = f"{type(exc).__name__}: {exc}"[:200]
            if key not in errors:  # once per distinct error, not once per frame
                errors.add(key)
                log.warning("ccxt could not handle a frame from %s (%s); ignored", client.url, key)


def build_bitstamp_pro_client(
    venues: VenuesConfig,
    exchange: ExchangeConfig,
    *,
    clock: Clock,
    ping_seconds: float,
    api_key: str | None = None,
    api_secret: str | None = None,
) -> CarryBitstampPro:
    """Create the Bitstamp stream client: REST as `[venues]` says, the WebSocket URL too."""
    client = build_bitstamp_client(
        venues, exchange, clock=clock, api_key=api_key, api_secret=api_secret,
        cls=CarryBitstampPro,
    )  # fmt: skip
    assert isinstance(client, CarryBitstampPro)
    client.streaming = {**client.streaming, "keepAlive": int(ping_seconds * 1000)}
    client.options["ws"] = {**client.options.get("ws", {}), "compress": 0}
    return client
