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
import logging
from collections.abc import Mapping, Sequence
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
        self._tasks: list[asyncio.Task[None]] = []
        client.tap = self._tap

    # --- lifecycle ----------------------------------------------------------------------
    def start(self, spot_symbols: Sequence[str], perp_symbols: Sequence[str]) -> None:
        """Subscribe the book tickers of these symbols and the mark-price stream."""
        size = self.config.symbols_per_connection
        spot_urls, futures_urls = self.config.spot_endpoints(), self.config.futures_endpoints()
        subs: list[tuple[Subscription, list[str]]] = []
        for kind, symbols, urls, label in (
            ("spot", sorted(spot_symbols), spot_urls, "spot"),
            ("linear", sorted(perp_symbols), futures_urls, "perp"),
        ):
            for n, first in enumerate(range(0, len(symbols), size)):
                chunk = symbols[first : first + size]
                subs.append(
                    (
                        Subscription(
                            f"{label}-{n}",
                            kind,
                            urls,
                            lambda chunk=chunk: self.client.watch_bids_asks(chunk),  # type: ignore[misc]
                            f"bidask:bookTicker@{chunk[0]}",
                        ),
                        chunk,
                    )
                )
        if perp_symbols:
            subs.append(
                (
                    Subscription(
                        MARK_STREAM,
                        "linear",
                        futures_urls,
                        lambda: self.client.watch_mark_prices(
                            None, {"type": "swap", "subType": "linear"}
                        ),
                        "markPrices:markPrice",
                    ),
                    [],
                )
            )
        for sub, chunk in subs:
            sup = Supervisor(
                self.client,
                sub,
                self.health.add(sub.name),
                self._clock,
                max_backoff_seconds=self.config.reconnect_max_backoff_seconds,
                on_live=self._live,
            )
            self.supervisors.append(sup)
            for symbol in chunk:
                self.stream_of[symbol] = sup
            self._tasks.append(asyncio.create_task(sup.run(), name=f"stream-{sub.name}"))
        self._tasks.append(asyncio.create_task(self._watchdog(), name="stream-watchdog"))

    async def stop(self) -> None:
        """Cancel the supervisors and close every connection."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
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
