"""Bitstamp's user data: our order and trade events, kept by client order id.

One keyed connection subscribes `private-my_orders_<pair>-<user id>` and
`private-my_trades_<pair>-<user id>` of every traded pair (ccxt.pro's `websockets_token/`
token; a new one at each dial). An order is known final from the stream when its
`order_deleted` arrived and the trades seen add up to its `amount_traded`: its fills (price,
amount, fee) are then all there, so `final_order` gives what `order_status/` would (average
price, fee in the quote currency). Anything else, and anything after a gap, is REST's: a
reconnect calls `on_resync` (the bot reconciles by client order id at once, as for Binance).
A `bts:error` on the connection (a refused subscription) drops it to dial again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from bot.clock import Clock
from bot.domain import Instrument, Order, OrderStatus, OrderType, Side
from bot.streams.bitstamp_pro import CarryBitstampPro
from bot.streams.bitstamp_wire import (
    ErrorEvent,
    OrderEvent,
    TradeEvent,
    parse_bitstamp_frame,
)
from bot.streams.config import StreamsConfig
from bot.streams.health import HealthBoard, StreamState
from bot.streams.market import WATCHDOG_SECONDS
from bot.streams.supervisor import Subscription, Supervisor
from bot.streams.wire import BadFrame, Notice

log = logging.getLogger(__name__)

USER_STREAM = "bitstamp-user"


@dataclass
class _Tracked:
    symbol: str
    order_id: str
    client_order_id: str | None = None
    side: Side | None = None
    quantity: Decimal | None = None
    traded: Decimal | None = None
    deleted: bool = False
    at: datetime | None = None
    trades: dict[str, TradeEvent] = field(default_factory=dict)


class BitstampUserStreams:
    """Order and trade events of our Bitstamp account, by client order id."""

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
        self._instruments = {i.exchange_symbol: i for i in instruments.values()}
        self._orders: dict[str, _Tracked] = {}  # Bitstamp order id -> what we saw
        self._by_cid: dict[str, str] = {}  # client order id -> order id
        self._waiters: dict[str, list[asyncio.Future[Order]]] = {}
        self._frame_at: float | None = None
        self.supervisor: Supervisor | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.events = 0
        self.on_resync: Callable[[], None] | None = None
        self.symbols: list[str] = []
        client.tap = self._tap

    def start(self, symbols: Sequence[str]) -> None:
        chunk = sorted(set(symbols))
        self.symbols = chunk
        if not chunk:
            return
        # The channels name the user id, known only after the token request; the probe
        # matches any URL instead: this keyed client holds this one connection only.
        sub = Subscription(
            USER_STREAM, "ws", self.endpoints, lambda: self.client.watch_user(chunk),
            "://", live_when_connected=True,
        )  # fmt: skip
        self.supervisor = Supervisor(
            self.client, sub, self.health.add(sub.name), self._clock,
            max_backoff_seconds=self.config.reconnect_max_backoff_seconds, on_live=self._live,
        )  # fmt: skip
        self._tasks.append(asyncio.create_task(self.supervisor.run(), name="stream-bitstamp-user"))
        self._tasks.append(asyncio.create_task(self._watchdog(), name="bitstamp-user-watchdog"))

    async def follow(
        self, symbols: Sequence[str], instruments: Mapping[str, Instrument]
    ) -> tuple[set[str], set[str]]:
        """Subscribe the private channels of pairs that entered the universe, unsubscribe
        those of leaving ones, on the running connection. Returns (added, removed)."""
        wanted = sorted(set(symbols))
        added, removed = set(wanted) - set(self.symbols), set(self.symbols) - set(wanted)
        if not added and not removed:
            return added, removed
        self._instruments = {i.exchange_symbol: i for i in instruments.values()}
        if added - set(self.client.markets or {}):
            await self.client.load_markets(True)
        sup = self.supervisor
        if sup is None:
            self.start(wanted)
            return added, removed
        ws = sup.connection()
        self.symbols = wanted
        sup.sub.watch = lambda: self.client.watch_user(wanted)
        if removed:
            await self.client.unsubscribe(self.client.user_channels(sorted(removed)))
        if added and ws is not None and ws.isConnected:
            await self.client.subscribe_user_now(sorted(added))
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

    def live(self) -> bool:
        sup = self.supervisor
        return sup is not None and sup.health.state is StreamState.LIVE

    def _live(self, sup: Supervisor) -> None:
        if sup.health.reconnects > 0 and self.on_resync is not None:
            log.info("Bitstamp user stream back: checking orders in flight by REST")
            self.on_resync()

    # --- orders -------------------------------------------------------------------------
    def final_order(self, client_order_id: str) -> Order | None:
        """The order's final state with its fills, once the stream has all of it."""
        order_id = self._by_cid.get(client_order_id)
        tracked = self._orders.get(order_id or "")
        if tracked is None or not tracked.deleted or tracked.quantity is None:
            return None
        filled = sum((t.amount for t in tracked.trades.values()), Decimal(0))
        if tracked.traded is None or filled != tracked.traded or tracked.side is None:
            return None  # a trade of it not seen (yet): REST knows
        cost = sum((t.price * t.amount for t in tracked.trades.values()), Decimal(0))
        inst = self._instruments.get(self.client.market(tracked.symbol)["id"])
        return Order(
            symbol=tracked.symbol,
            client_order_id=client_order_id,
            exchange_order_id=tracked.order_id,
            side=tracked.side,
            type=OrderType.MARKET,
            status=OrderStatus.FILLED if filled >= tracked.quantity else OrderStatus.CANCELED,
            quantity=tracked.quantity,
            filled=filled,
            average_price=cost / filled if filled > 0 else None,
            price=None,
            created_at=tracked.at,
            updated_at=tracked.at,
            fee=sum((t.fee for t in tracked.trades.values()), Decimal(0)),
            fee_asset=inst.quote if inst is not None else None,
        )

    async def wait_final(self, client_order_id: str) -> Order:
        """Wait until the stream has the order's final state and every fill of it."""
        known = self.final_order(client_order_id)
        if known is not None:
            return known
        waiter: asyncio.Future[Order] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(client_order_id, []).append(waiter)
        try:
            return await waiter
        finally:
            waiters = self._waiters.get(client_order_id, [])
            if waiter in waiters:
                waiters.remove(waiter)
            if not waiters:
                self._waiters.pop(client_order_id, None)

    # --- frames -------------------------------------------------------------------------
    def _tap(self, url: str, message: Any) -> None:
        sup = self.supervisor
        self._frame_at = self._clock.monotonic()
        if sup is not None:
            sup.health.messages += 1
            sup.health.last_message_at = self._frame_at
        try:
            frame = parse_bitstamp_frame(message)
        except BadFrame as exc:
            if sup is not None:
                sup.health.bad_messages += 1
            log.warning("Bad Bitstamp user event ignored: %s", exc)
            return
        if isinstance(frame, Notice | ErrorEvent) and sup is not None:
            why = frame.kind if isinstance(frame, Notice) else f"bts:error {frame.code}"
            asyncio.get_running_loop().call_soon(sup.drop, f"server sent {why}")
            return
        if isinstance(frame, OrderEvent | TradeEvent):
            self.events += 1
            tracked = self._take(frame)
            if tracked is not None and tracked.client_order_id is not None:
                self._wake(tracked.client_order_id)

    def _take(self, event: OrderEvent | TradeEvent) -> _Tracked | None:
        inst = self._instruments.get(event.pair_id)
        if inst is None:
            return None
        tracked = self._orders.get(event.order_id)
        if tracked is None:
            tracked = self._orders[event.order_id] = _Tracked(inst.symbol, event.order_id)
        if isinstance(event, TradeEvent):
            tracked.trades[event.trade_id] = event
            return tracked
        if event.client_order_id:
            tracked.client_order_id = event.client_order_id
            self._by_cid[event.client_order_id] = event.order_id
        tracked.side = Side.SELL if event.side_sell else Side.BUY
        tracked.quantity = event.amount_at_create or tracked.quantity
        if event.amount_traded is not None:
            tracked.traded = max(event.amount_traded, tracked.traded or Decimal(0))
        tracked.deleted = tracked.deleted or event.event == "order_deleted"
        tracked.at = event.at or tracked.at
        return tracked

    def _wake(self, client_order_id: str) -> None:
        final = self.final_order(client_order_id)
        if final is None:
            return
        for waiter in self._waiters.get(client_order_id, []):
            if not waiter.done():
                waiter.set_result(final)

    # --- watchdog -----------------------------------------------------------------------
    async def _watchdog(self) -> None:
        while True:
            await self._clock.sleep(WATCHDOG_SECONDS)
            sup = self.supervisor
            if sup is None or not self.live() or sup.connected_at is None:
                continue
            last = max(self._frame_at or sup.connected_at, sup.connected_at)
            if self._clock.monotonic() - last > self.config.silence_seconds:
                sup.drop(f"no message for {self._clock.monotonic() - last:.1f}s")
