"""Market-data streams: book tickers of the traded symbols and the all-market mark prices.

Subscriptions (ccxt.pro): `<symbol>@bookTicker` for each spot and perpetual symbol, in
chunks of `symbols_per_connection` (each chunk is one connection: Binance allows 1024
streams per spot connection, 200 per USDⓈ-M one, and 5 / 10 incoming messages per second,
so one SUBSCRIBE per connection), and `!markPrice@arr@1s` (mark, index, funding estimate
and next funding time of every perpetual, once a second) on one more connection.

Frames are read from ccxt's tap (`pro_client.py`): exact Decimals, stamped with the
injected clock on arrival. A bad frame is logged as one line and ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from bot.clock import Clock
from bot.domain import Instrument, Quote
from bot.streams.config import StreamsConfig
from bot.streams.health import HealthBoard, StreamState
from bot.streams.pro_client import CarryBinancePro
from bot.streams.supervisor import Subscription, Supervisor
from bot.streams.wire import BadFrame, BookTick, MarkTick, Notice, parse_frame

log = logging.getLogger(__name__)

WATCHDOG_SECONDS = 0.25
MARK_STREAM = "mark"
MARK_SILENCE_FLOOR_SECONDS = 2.5  # the mark-price stream sends once a second
CONNECT_LIMIT_SECONDS = 5.0  # a subscription that brings no data this long is retried


class MarketStreams:
    """Latest stream quotes and marks per unified symbol, with their arrival times."""

    def __init__(
        self,
        client: CarryBinancePro,
        config: StreamsConfig,
        clock: Clock,
        health: HealthBoard,
        instruments: Mapping[str, Instrument],
    ) -> None:
        self.client = client
        self.config = config
        self._clock = clock
        self.health = health
        self.quotes: dict[str, Quote] = {}
        self.quote_at: dict[str, float] = {}
        self.marks: dict[str, MarkTick] = {}
        self.mark_at: dict[str, float] = {}
        self.bad_frames = 0
        self._by_id = {(i.is_derivative, i.exchange_symbol): s for s, i in instruments.items()}
        self._frame_at: dict[str, float] = {}
        self._by_url: dict[str, Supervisor] = {}
        self.supervisors: list[Supervisor] = []
        self.stream_of: dict[str, Supervisor] = {}  # unified symbol -> its book stream
        self._chunks: dict[Supervisor, list[str]] = {}
        self._serial = {"spot": itertools.count(), "perp": itertools.count()}
        self._request_id = 10**9  # ids of our own UNSUBSCRIBE requests, apart from ccxt's
        self._tasks: dict[Supervisor | None, asyncio.Task[None]] = {}
        client.tap = self._tap

    # --- lifecycle ----------------------------------------------------------------------
    def start(self, spot_symbols: Sequence[str], perp_symbols: Sequence[str]) -> None:
        """Subscribe the book tickers of these symbols and the mark-price stream."""
        for kind, symbols in (("spot", spot_symbols), ("linear", perp_symbols)):
            self._add_chunks(kind, sorted(symbols))
        if perp_symbols:
            self._launch(
                Subscription(
                    MARK_STREAM,
                    "linear",
                    self.config.futures_endpoints(),
                    lambda: self.client.watch_mark_prices(
                        None, {"type": "swap", "subType": "linear"}
                    ),
                    "markPrices:markPrice",
                ),
                [],
            )
        self._tasks[None] = asyncio.create_task(self._watchdog(), name="stream-watchdog")

    def _add_chunks(self, kind: str, symbols: Sequence[str]) -> None:
        """One book-ticker connection per `symbols_per_connection` of `symbols`."""
        size = self.config.symbols_per_connection
        for first in range(0, len(symbols), size):
            chunk = list(symbols[first : first + size])
            label = "spot" if kind == "spot" else "perp"
            name = f"{label}-{next(self._serial[label])}"
            urls = (
                self.config.spot_endpoints() if kind == "spot" else self.config.futures_endpoints()
            )
            sub = Subscription(name, kind, urls, self._book_watch(chunk), _probe(chunk))
            self._launch(sub, chunk)

    def _book_watch(self, chunk: list[str]) -> Callable[[], Awaitable[Any]]:
        return lambda: self.client.watch_bids_asks(chunk)

    def _launch(self, sub: Subscription, chunk: list[str]) -> None:
        sup = Supervisor(
            self.client,
            sub,
            self.health.add(sub.name),
            self._clock,
            max_backoff_seconds=self.config.reconnect_max_backoff_seconds,
            on_live=self._live,
        )
        self.supervisors.append(sup)
        self._chunks[sup] = chunk
        for symbol in chunk:
            self.stream_of[symbol] = sup
        self._tasks[sup] = asyncio.create_task(sup.run(), name=f"stream-{sub.name}")

    async def follow(
        self,
        spot_symbols: Sequence[str],
        perp_symbols: Sequence[str],
        instruments: Mapping[str, Instrument],
    ) -> tuple[set[str], set[str]]:
        """Subscribe symbols that entered the universe, unsubscribe those that left it.

        New symbols get connections of their own (the running ones are not disturbed);
        leaving symbols are unsubscribed on their connection with one `UNSUBSCRIBE`, and a
        connection left with none is closed. Returns (added, removed).
        """
        ids = {symbol: exchange_id for (_, exchange_id), symbol in self._by_id.items()}
        self._by_id = {(i.is_derivative, i.exchange_symbol): s for s, i in instruments.items()}
        ids.update({s: i.exchange_symbol for s, i in instruments.items()})
        wanted = {"spot": set(spot_symbols), "linear": set(perp_symbols)}
        added: set[str] = set()
        removed: set[str] = set()
        for kind, symbols in wanted.items():
            have = {s for s, sup in self.stream_of.items() if sup.sub.kind == kind}
            added |= symbols - have
            removed |= have - symbols
        if added - set(self.client.markets or {}):
            await self.client.load_markets(True)  # ccxt.pro needs the new markets' ids
        by_sup: dict[Supervisor, list[str]] = {}
        for symbol in removed:
            by_sup.setdefault(self.stream_of.pop(symbol), []).append(symbol)
            for table in (self.quotes, self.quote_at):
                table.pop(symbol, None)
        for sup, gone in by_sup.items():
            await self._shrink(sup, gone, [f"{ids[s].lower()}@bookTicker" for s in gone])
        for kind, symbols in wanted.items():
            self._add_chunks(kind, sorted(s for s in symbols if s in added))
        if added or removed:
            log.info(
                "Streams follow the universe: %d symbols subscribed, %d unsubscribed",
                len(added),
                len(removed),
            )
        return added, removed

    async def _shrink(self, sup: Supervisor, gone: list[str], streams: list[str]) -> None:
        ws = sup.connection()
        old = self._chunks[sup]
        chunk = [s for s in old if s not in set(gone)]
        self._chunks[sup] = chunk
        if not chunk:
            task = self._tasks.pop(sup, None)
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            sup.drop("its symbols left the universe", reconnect=False)
            self.supervisors.remove(sup)
            del self._chunks[sup]
            self.health.remove(sup.sub.name)
            return
        # ccxt.pro picks a connection by the watched symbol list: keep the shorter list on
        # the running connection (its symbols are subscribed there, no new SUBSCRIBE).
        streams_by_hash = self.client.options.setdefault("streamBySubscriptionsHash", {})
        stream = streams_by_hash.get("bookTicker::" + ",".join(old))
        if stream is not None:
            streams_by_hash["bookTicker::" + ",".join(chunk)] = stream
        sup.sub.watch = self._book_watch(chunk)
        sup.sub.probe = _probe(chunk)
        if ws is not None and ws.isConnected:
            self._request_id += 1
            with contextlib.suppress(Exception):  # a closed socket resubscribes the new chunk
                await ws.send(
                    {"method": "UNSUBSCRIBE", "params": sorted(streams), "id": self._request_id}
                )

    async def stop(self) -> None:
        """Cancel the supervisors and close every connection."""
        for task in self._tasks.values():
            task.cancel()
        for task in self._tasks.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        with contextlib.suppress(Exception):
            await self.client.close_ws_clients()
        for sup in self.supervisors:
            sup.health.state = StreamState.STOPPED

    # --- queries ------------------------------------------------------------------------
    def mark_supervisor(self) -> Supervisor | None:
        return next((s for s in self.supervisors if s.sub.name == MARK_STREAM), None)

    def quote_age(self, symbol: str) -> float | None:
        at = self.quote_at.get(symbol)
        return None if at is None else self._clock.monotonic() - at

    def confirmed_age(self, symbol: str) -> float | None:
        """Seconds since the stream last vouched for `symbol`'s quote (None: no quote).

        Binance sends a book ticker on every change only, so an unchanged book sends
        nothing. Its last quote stays current while the connection that brought it has
        stayed up since and keeps delivering (other symbols, or any frame): the age is then
        that of the connection's last frame, not of the quote.
        """
        at = self.quote_at.get(symbol)
        if at is None:
            return None
        sup = self.stream_of.get(symbol)
        if (
            sup is not None
            and sup.health.state is StreamState.LIVE
            and sup.connected_at is not None
            and at >= sup.connected_at
        ):
            ws = sup.connection()
            if ws is not None:
                at = max(at, self._frame_at.get(ws.url, at))
        return self._clock.monotonic() - at

    def adopt(self, quotes: Mapping[str, Quote], asked_at: float) -> int:
        """Take REST quotes asked for at `asked_at` as the current book of quiet symbols.

        Only for symbols whose stream was live before the request and brought nothing
        since (after a reconnect Binance does not resend an unchanged book). Returns how
        many were adopted.
        """
        adopted = 0
        for symbol, quote in quotes.items():
            sup = self.stream_of.get(symbol)
            if sup is None or sup.health.state is not StreamState.LIVE:
                continue
            if sup.connected_at is None or sup.connected_at > asked_at:
                continue
            if self.quote_at.get(symbol, float("-inf")) >= asked_at:
                continue
            self.quotes[symbol] = quote
            self.quote_at[symbol] = asked_at
            adopted += 1
        return adopted

    def mark_age(self, symbol: str) -> float | None:
        at = self.mark_at.get(symbol)
        return None if at is None else self._clock.monotonic() - at

    # --- frames -------------------------------------------------------------------------
    def _tap(self, url: str, message: Any) -> None:
        now = self._clock.monotonic()
        self._frame_at[url] = now
        sup = self._supervisor_of(url)
        if sup is not None:
            sup.health.messages += 1
            sup.health.last_message_at = now
        try:
            ticks = parse_frame(message)
        except BadFrame as exc:
            self.bad_frames += 1
            if sup is not None:
                sup.health.bad_messages += 1
            log.warning("Bad stream frame from %s ignored: %s", url, exc)
            return
        stamp = None
        for tick in ticks:
            if isinstance(tick, BookTick):
                symbol = self._by_id.get((tick.futures, tick.exchange_symbol))
                if symbol is None:
                    continue
                stamp = stamp or self._clock.now()
                self.quotes[symbol] = Quote(
                    symbol, tick.bid, tick.ask, tick.bid_qty, tick.ask_qty, stamp
                )
                self.quote_at[symbol] = now
            elif isinstance(tick, MarkTick):
                symbol = self._by_id.get((True, tick.exchange_symbol))
                if symbol is not None:
                    self.marks[symbol] = tick
                    self.mark_at[symbol] = now
            elif isinstance(tick, Notice) and sup is not None:
                reason = f"server sent {tick.kind}"
                asyncio.get_running_loop().call_soon(sup.drop, reason)

    def _supervisor_of(self, url: str) -> Supervisor | None:
        sup = self._by_url.get(url)
        if sup is not None:
            ws = sup.connection()
            if ws is not None and ws.url == url:
                return sup
        for candidate in self.supervisors:
            ws = candidate.connection()
            if ws is not None and ws.url == url:
                self._by_url[url] = candidate
                return candidate
        return None

    def _live(self, sup: Supervisor) -> None:
        ws = sup.connection()
        if ws is not None:
            self._by_url[ws.url] = sup

    # --- watchdog -----------------------------------------------------------------------
    async def _watchdog(self) -> None:
        while True:
            await self._clock.sleep(WATCHDOG_SECONDS)
            self.watchdog_pass()

    def watchdog_pass(self) -> None:
        """Drop silent connections and those due for recycling (one pass)."""
        now = self._clock.monotonic()
        recycle = self.config.recycle_hours * 3600
        for sup in self.supervisors:
            ws = sup.connection()
            if ws is None:
                continue
            limit = self.config.silence_seconds
            if sup.sub.name == MARK_STREAM:
                limit = max(limit, MARK_SILENCE_FLOOR_SECONDS)
            if sup.health.state is StreamState.CONNECTING and sup.attempt_at is not None:
                if now - sup.attempt_at > max(limit, CONNECT_LIMIT_SECONDS):
                    sup.drop(f"no data {now - sup.attempt_at:.1f}s after subscribing")
                continue
            if sup.health.state is not StreamState.LIVE or sup.connected_at is None:
                continue
            last = max(self._frame_at.get(ws.url, sup.connected_at), sup.connected_at)
            if now - last > limit:
                sup.drop(f"no message for {now - last:.1f}s")
            elif now - sup.connected_at > recycle:
                sup.drop(f"connection {now - sup.connected_at:.0f}s old, recycled before 24 h")


def _probe(chunk: list[str]) -> str:
    """A message hash of the chunk's watch call, found in its connection's subscriptions."""
    return f"bidask:bookTicker@{chunk[0]}"
