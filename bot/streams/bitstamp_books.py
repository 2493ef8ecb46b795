"""Bitstamp's book streams: `order_book_<pair>` of the traded spot pairs on one connection.

Each frame is the pair's top 100 levels, read exactly from ccxt.pro's tap and stamped with
the injected clock on arrival. The connection is supervised like Binance's (`Supervisor`:
reconnect at once, then with a capped backoff through the endpoints); the watchdog drops
it when nothing arrived for `silence_seconds` (ccxt's keep-alive sends `bts:heartbeat`
more often than that, so a healthy connection always has frames), when its subscription
brought no book 5 s after dialling, and at once on the server's `bts:request_reconnect`.
A bad frame is one logged line and ignored: no book changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from bot.clock import Clock
from bot.domain import Instrument, OrderBook, Quote
from bot.streams.bitstamp_pro import CarryBitstampPro
from bot.streams.bitstamp_wire import BOOK_PREFIX, BookSnapshot, parse_bitstamp_frame
from bot.streams.config import StreamsConfig
from bot.streams.health import HealthBoard, StreamState
from bot.streams.market import CONNECT_LIMIT_SECONDS, WATCHDOG_SECONDS
from bot.streams.supervisor import Subscription, Supervisor
from bot.streams.wire import BadFrame, Notice

log = logging.getLogger(__name__)

BOOK_STREAM = "bitstamp-books"


class BitstampBooks:
    """The latest stream book and top of book per unified symbol, with arrival times."""

    def __init__(
        self,
        client: CarryBitstampPro,
        config: StreamsConfig,
        clock: Clock,
        health: HealthBoard,
        instruments: Mapping[str, Instrument],
        endpoints: Sequence[str],
    ) -> None:
        self.client = client
        self.config = config
        self._clock = clock
        self.health = health
        self.endpoints = list(endpoints)
        self.books: dict[str, OrderBook] = {}
        self.quotes: dict[str, Quote] = {}
        self.quote_at: dict[str, float] = {}
        self.bad_frames = 0
        self.symbols: list[str] = []
        self._by_id = {i.exchange_symbol: s for s, i in instruments.items()}
        self._frame_at: float | None = None
        self.supervisor: Supervisor | None = None
        self._tasks: list[asyncio.Task[None]] = []
        client.tap = self._tap

    def start(self, symbols: Sequence[str]) -> None:
        """Subscribe the books of `symbols` on one supervised connection."""
        self.symbols = sorted(set(symbols))
        if not self.symbols:
            return
        chunk = list(self.symbols)
        sub = Subscription(
            BOOK_STREAM, "ws", self.endpoints, lambda: self.client.watch_books(chunk),
            self._channel(chunk[0]),
        )  # fmt: skip
        self.supervisor = Supervisor(
            self.client,
            sub,
            self.health.add(sub.name),
            self._clock,
            max_backoff_seconds=self.config.reconnect_max_backoff_seconds,
        )
        self._tasks.append(asyncio.create_task(self.supervisor.run(), name="stream-bitstamp"))
        self._tasks.append(asyncio.create_task(self._watchdog(), name="bitstamp-watchdog"))

    def _channel(self, symbol: str) -> str:
        return BOOK_PREFIX + str(self.client.market(symbol)["id"])

    async def follow(
        self, symbols: Sequence[str], instruments: Mapping[str, Instrument]
    ) -> tuple[set[str], set[str]]:
        """Subscribe books that entered the universe and unsubscribe leaving ones, on the
        running connection (a reconnect subscribes the new set). Returns (added, removed).
        """
        wanted = sorted(set(symbols))
        added, removed = set(wanted) - set(self.symbols), set(self.symbols) - set(wanted)
        if not added and not removed:
            return added, removed
        self._by_id = {i.exchange_symbol: s for s, i in instruments.items()}
        if added - set(self.client.markets or {}):
            await self.client.load_markets(True)  # ccxt.pro needs the new markets' ids
        sup = self.supervisor
        if sup is None:
            self.start(wanted)
            return added, removed
        if not wanted:
            log.warning("No Bitstamp book left in the universe: keeping %s", self.symbols)
            return set(), set()
        ws = sup.connection()
        self.symbols = wanted
        chunk = list(wanted)
        sup.sub.watch = lambda: self.client.watch_books(chunk)
        sup.sub.probe = self._channel(chunk[0])
        for symbol in removed:
            for table in (self.books, self.quotes, self.quote_at):
                table.pop(symbol, None)
        if removed:
            await self.client.unsubscribe([self._channel(s) for s in sorted(removed)])
        if added and ws is not None and ws.isConnected:
            self.client.watch_books(sorted(added))  # the future is the connection's, awaited
        log.info(
            "Bitstamp books follow the universe: +%s -%s",
            ",".join(sorted(added)) or "none", ",".join(sorted(removed)) or "none",
        )  # fmt: skip
        return added, removed

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        with contextlib.suppress(Exception):
            await self.client.close_ws_clients()
        if self.supervisor is not None:
            self.supervisor.health.state = StreamState.STOPPED

    # --- queries ------------------------------------------------------------------------
    def confirmed_age(self, symbol: str) -> float | None:
        """Seconds since the stream last vouched for `symbol`'s book (None: no book).

        Bitstamp sends a book only when it changes: while the connection that brought it
        stayed up and keeps delivering (other books, heartbeat answers), it is current.
        A book that arrived after this connection's dial began came over it (the previous
        connection was closed before the dial), also the first book, which makes it live.
        """
        at = self.quote_at.get(symbol)
        if at is None:
            return None
        sup = self.supervisor
        if (
            sup is not None
            and sup.health.state is StreamState.LIVE
            and sup.attempt_at is not None
            and at >= sup.attempt_at
            and self._frame_at is not None
        ):
            at = max(at, self._frame_at)
        return self._clock.monotonic() - at

    # --- frames -------------------------------------------------------------------------
    def _tap(self, url: str, message: Any) -> None:
        now = self._clock.monotonic()
        sup = self.supervisor
        self._frame_at = now
        if sup is not None:
            sup.health.messages += 1
            sup.health.last_message_at = now
        try:
            frame = parse_bitstamp_frame(message)
        except BadFrame as exc:
            self.bad_frames += 1
            if sup is not None:
                sup.health.bad_messages += 1
            log.warning("Bad Bitstamp stream frame ignored: %s", exc)
            return
        if isinstance(frame, BookSnapshot):
            symbol = self._by_id.get(frame.pair_id)
            if symbol is None:
                return
            stamp = self._clock.now()
            self.books[symbol] = OrderBook(symbol, frame.bids, frame.asks, stamp)
            (bid, bid_qty), (ask, ask_qty) = frame.bids[0], frame.asks[0]
            self.quotes[symbol] = Quote(symbol, bid, ask, bid_qty, ask_qty, stamp)
            self.quote_at[symbol] = now
        elif isinstance(frame, Notice) and sup is not None:
            asyncio.get_running_loop().call_soon(sup.drop, f"server sent {frame.kind}")

    # --- watchdog -----------------------------------------------------------------------
    async def _watchdog(self) -> None:
        while True:
            await self._clock.sleep(WATCHDOG_SECONDS)
            self.watchdog_pass()

    def watchdog_pass(self) -> None:
        """Drop the connection when silent, or when its subscription brought no book."""
        sup = self.supervisor
        if sup is None or sup.connection() is None:
            return
        now = self._clock.monotonic()
        limit = self.config.silence_seconds
        if sup.health.state is StreamState.CONNECTING and sup.attempt_at is not None:
            if now - sup.attempt_at > max(limit, CONNECT_LIMIT_SECONDS):
                sup.drop(f"no book {now - sup.attempt_at:.1f}s after subscribing")
            return
        if sup.health.state is not StreamState.LIVE or sup.connected_at is None:
            return
        last = max(self._frame_at or sup.connected_at, sup.connected_at)
        if now - last > limit:
            sup.drop(f"no message for {now - last:.1f}s")
