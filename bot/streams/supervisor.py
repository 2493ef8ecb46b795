"""Keep one ccxt.pro subscription alive: reconnect timing, endpoint failover, watchdog.

ccxt.pro reconnects only when the next watch call is made, with its own dial backoff
(0.2 s doubling to 30 s after refused handshakes). The supervisor owns the timing instead:
the first attempt after a drop goes out at once to the same endpoint, later ones rotate
through the endpoint list with a short capped backoff. `watchdog_pass` drops a connection
that has gone silent, one whose server announced `serverShutdown`, and one older than the
recycle age (Binance cuts connections at 24 h), so each is replaced before it fails.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.clock import Clock
from bot.streams.health import StreamHealth, StreamState
from bot.streams.pro_client import CarryBinancePro, set_stream_url

if TYPE_CHECKING:
    from bot.streams.bitstamp_pro import CarryBitstampPro

log = logging.getLogger(__name__)

FIRST_BACKOFF_SECONDS = 0.1


class StreamDropped(Exception):
    """Raised into a watch call when the supervisor closes its connection on purpose."""


@dataclass
class Subscription:
    """One watch call of ccxt.pro and how to recognise its connection.

    `kind` is ccxt's URL key (`spot` or `linear`); `probe` is one of the message hashes the
    call subscribes, found in the connection's `subscriptions` (or a part of its URL).
    """

    name: str
    kind: str
    endpoints: list[str]
    watch: Callable[[], Awaitable[Any]]
    probe: str
    live_when_connected: bool = False  # user data: quiet until an order event


class Supervisor:
    """Run one subscription until stopped, reconnecting it as described above."""

    def __init__(
        self,
        client: CarryBinancePro | CarryBitstampPro,
        subscription: Subscription,
        health: StreamHealth,
        clock: Clock,
        *,
        max_backoff_seconds: float,
        on_live: Callable[[Supervisor], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.client = client
        self.sub = subscription
        self.health = health
        self._clock = clock
        self._max_backoff = max_backoff_seconds
        self._on_live = on_live
        self._rng = rng or random.Random()
        self._failures = 0
        self._index = 0
        self._was_live = False
        self.connected_at: float | None = None
        self.attempt_at: float | None = None

    def _point(self, url: str) -> None:
        """Point the client's next dial of this kind at `url` (a Bitstamp client knows how)."""
        point = getattr(self.client, "point_stream", None)
        if callable(point):
            point(self.sub.kind, url)
        else:
            set_stream_url(self.client, self.sub.kind, url)

    def connection(self) -> Any | None:
        """The ccxt client (one WebSocket) carrying this subscription, if any."""
        for ws in list((self.client.clients or {}).values()):
            if self.sub.probe in ws.subscriptions or self.sub.probe in ws.url:
                return ws
        return None

    def drop(self, reason: str, *, reconnect: bool = True) -> bool:
        """Close this subscription's connection; the run loop reconnects. False if none.

        `reconnect=False` only changes the log line (the caller has stopped the run loop).
        """
        ws = self.connection()
        if ws is None:
            return False
        if reconnect:
            log.warning("Stream %s: %s; reconnecting", self.sub.name, reason)
        else:
            log.info("Stream %s closed: %s", self.sub.name, reason)
        ws.on_error(StreamDropped(reason))
        return True

    async def run(self) -> None:
        while True:
            url = self.sub.endpoints[self._index % len(self.sub.endpoints)]
            self.health.endpoint = url
            self.health.state = StreamState.CONNECTING
            self.attempt_at = self._clock.monotonic()
            try:
                await self._session(url)
            except asyncio.CancelledError:
                self.health.state = StreamState.STOPPED
                raise
            except Exception as exc:
                await self._after_failure(url, exc)

    async def _session(self, url: str) -> None:
        live = False
        while True:
            if self.sub.live_when_connected and not live:
                await self._until_connected(url)
                live = True
                continue
            self._point(url)  # no await between this and the dial
            await self.sub.watch()
            if not live:
                live = True
                self._mark_live(url)

    async def _until_connected(self, url: str) -> None:
        """Start the watch; return once its connection is open (or the watch returned)."""

        async def watch() -> Any:
            self._point(url)
            return await self.sub.watch()

        task = asyncio.ensure_future(watch())
        try:
            while not task.done():
                await asyncio.wait({task}, timeout=0.05)
                ws = self.connection()
                if not task.done() and ws is not None and ws.isConnected and not ws.closed():
                    break
            if task.done():
                task.result()  # a failed dial raises here and the run loop reconnects
            self._mark_live(url)
            await task
        except asyncio.CancelledError:
            task.cancel()
            raise

    def _mark_live(self, url: str) -> None:
        now = self._clock.monotonic()
        self.connected_at = now
        self.health.state = StreamState.LIVE
        self.health.live_since = now
        self.health.down_since = None
        if self._was_live:
            self.health.reconnects += 1
            log.info("Stream %s live again on %s", self.sub.name, url)
        self._was_live = True
        self._failures = 0
        if self._on_live is not None:
            self._on_live(self)

    async def _after_failure(self, url: str, exc: Exception) -> None:
        now = self._clock.monotonic()
        if self.health.state is not StreamState.DOWN:
            self.health.down_since = now
        self.health.state = StreamState.DOWN
        self.health.last_error = f"{type(exc).__name__}: {exc}"[:200]
        self.connected_at = None
        self._failures += 1
        if self._failures == 1:
            delay = 0.0  # the first attempt at once, to the same endpoint
        else:
            self._index += 1  # then fail over through the list
            delay = min(self._max_backoff, FIRST_BACKOFF_SECONDS * 2 ** (self._failures - 2))
            delay *= 0.8 + 0.4 * self._rng.random()
        if self._failures <= 3 or self._failures % 20 == 0:
            log.warning(
                "Stream %s down on %s (%s); attempt %d in %.2fs",
                self.sub.name,
                url,
                self.health.last_error,
                self._failures,
                delay,
            )
        if delay:
            await self._clock.sleep(delay)
        else:
            await asyncio.sleep(0)
