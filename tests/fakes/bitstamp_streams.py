"""The WebSocket side of the fake Bitstamp (v2 protocol), on the fake's port at `/ws`.

Client → server: `{"event": "bts:subscribe", "data": {"channel": C}}` (private channels
add `"auth": token`, the token from `POST /api/v2/websockets_token/`), `bts:unsubscribe`,
`bts:heartbeat`. Server → client: `bts:subscription_succeeded` /
`bts:unsubscription_succeeded`, `bts:heartbeat` answers (`{"status": "success"}`),
`bts:request_reconnect`, `bts:error` (e.g. 4009 "Connection is unauthorized."), and data:
- `order_book_<pair>` (`data`): the top 100 levels, sent on subscribing and whenever the
  book changes (an unchanged book sends nothing, as Bitstamp);
- `live_trades_<pair>`, `live_orders_<pair>`: accepted, nothing published (the bot reads
  neither);
- `private-my_orders_<pair>-<user id>`: `order_created`, `order_changed` (a partial fill),
  `order_deleted` (filled or cancelled) for orders made through the fake's REST.
Controls: `drop_all`, `request_reconnect`, `silence` (no books, no heartbeat answers),
`refuse_for` (handshakes answered 503), `send_raw`, `push_now`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from bot.domain import Fill, Instrument, Order, OrderStatus, Side

if TYPE_CHECKING:
    from tests.fakes.bitstamp_server import FakeBitstamp

WS_PATH = "/ws"
USER_ID = 4848701
TOKEN_SECONDS = 60
BOOK_LEVELS = 100


@dataclass
class Connection:
    ws: web.WebSocketResponse
    channels: set[str] = field(default_factory=set)
    last_book: dict[str, Any] = field(default_factory=dict)  # channel -> levels last sent
    sent: int = 0


class FakeBitstampStreams:
    """Bitstamp's WebSocket endpoint and its failure modes, attached to one `FakeBitstamp`."""

    def __init__(self, fake: FakeBitstamp, *, book_interval: float = 0.05) -> None:
        self.fake = fake
        self.book_interval = book_interval
        self.connections: list[Connection] = []
        self.tokens: dict[str, float] = {}  # token -> expiry (fake clock, monotonic)
        self.accepted = 0
        self.refused = 0
        self.heartbeats = 0
        self.errors: list[str] = []
        self.silent = False
        self.hold_user_events = False  # True: no private events (a gap on the user stream)
        self.duplicate_user_events = False  # True: every private event is sent twice
        self._refuse_until = float("-inf")
        self._publisher: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    # --- lifecycle and controls ---------------------------------------------------------
    def start(self) -> None:
        if self._publisher is None:
            self._publisher = asyncio.create_task(self._publish_forever())

    async def stop(self) -> None:
        if self._publisher is not None:
            self._publisher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._publisher
            self._publisher = None
        await self.drop_all(code=1001)

    async def drop_all(self, *, code: int = 1006) -> int:
        """Close every connection (1006: as if the network dropped it)."""
        conns = list(self.connections)
        for conn in conns:
            with contextlib.suppress(Exception):
                await conn.ws.close(code=code)
        return len(conns)

    async def request_reconnect(self) -> int:
        """Send `bts:request_reconnect` on every connection (Bitstamp does, before upkeep)."""
        sent = 0
        for conn in list(self.connections):
            sent += await self._send(conn, {"event": "bts:request_reconnect", "channel": "",
                                            "data": ""}, force=True)  # fmt: skip
        return sent

    def refuse_for(self, seconds: float) -> None:
        self._refuse_until = self.fake.clock.monotonic() + seconds

    def silence(self, on: bool = True) -> None:
        self.silent = on

    async def send_raw(self, text: str) -> int:
        sent = 0
        for conn in list(self.connections):
            with contextlib.suppress(Exception):
                await conn.ws.send_str(text)
                sent += 1
        return sent

    def push_now(self) -> None:
        self._wake.set()

    def subscribed(self) -> set[str]:
        return {c for conn in self.connections for c in conn.channels}

    def issue_token(self) -> dict[str, Any]:
        """`POST websockets_token/`: a token valid for 60 s and the account's user id."""
        token = secrets.token_hex(16)
        self.tokens[token] = self.fake.clock.monotonic() + TOKEN_SECONDS
        return {"valid_sec": TOKEN_SECONDS, "token": token, "user_id": USER_ID}

    # --- order events -------------------------------------------------------------------
    def order_events(self, inst: Instrument, order: Order, fills: list[Fill]) -> None:
        """Publish `order_created`, each fill on `private-my_trades`, then the order's state."""
        if self.hold_user_events:
            return
        orders = f"private-my_orders_{inst.exchange_symbol}-{USER_ID}"
        trades = f"private-my_trades_{inst.exchange_symbol}-{USER_ID}"
        created = self._order_json(inst, order, order.quantity, Decimal(0))
        events = [(orders, "order_created", created)]
        for f in fills:
            micro = int(f.timestamp.timestamp() * 1_000_000)
            events.append((trades, "trade", {
                "id": int(f.trade_id), "amount": str(f.quantity), "price": str(f.price),
                "microtimestamp": str(micro), "fee": str(f.fee),
                "order_id": str(order.exchange_order_id), "trade_account_id": 0,
                "side": f.side.value,
            }))  # fmt: skip
        if order.filled > 0 or order.status.is_final:
            left = order.quantity - order.filled
            final = order.status in (OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.EXPIRED)
            kind = "order_deleted" if final else "order_changed"
            events.append((orders, kind, self._order_json(inst, order, left, order.filled)))
        for conn in list(self.connections):
            mine = [e for e in events if e[0] in conn.channels]
            if mine:
                self._spawn(self._send_all(conn, mine))

    async def _send_all(self, conn: Connection, events: list[tuple[str, str, Any]]) -> None:
        copies = 2 if self.duplicate_user_events else 1
        for channel, kind, data in events:
            for _ in range(copies):
                await self._send(conn, {"data": data, "channel": channel, "event": kind})

    def _order_json(
        self, inst: Instrument, order: Order, left: Decimal, traded: Decimal
    ) -> dict[str, Any]:
        micro = int(self.fake.clock.now().timestamp() * 1_000_000)
        return {
            "id": int(order.exchange_order_id or 0), "id_str": str(order.exchange_order_id),
            "order_type": 1 if order.side is Side.SELL else 0, "order_subtype": 2,
            "datetime": str(micro // 1_000_000), "microtimestamp": str(micro),
            "amount": float(left), "amount_str": str(left), "amount_traded": str(traded),
            "amount_at_create": str(order.quantity), "price": float(order.average_price or 0),
            "price_str": str(order.average_price or 0), "client_order_id": order.client_order_id,
        }  # fmt: skip

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    # --- the endpoint -------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self.fake.clock.monotonic() < self._refuse_until:
            self.refused += 1
            return web.Response(status=503, text="maintenance")
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return web.Response(status=400, text="WebSocket upgrade expected")
        ws = web.WebSocketResponse(autoping=True, heartbeat=None)
        await ws.prepare(request)
        conn = Connection(ws)
        self.connections.append(conn)
        self.accepted += 1
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await self._on_text(conn, msg.data)
        finally:
            if conn in self.connections:
                self.connections.remove(conn)
        return ws

    async def _on_text(self, conn: Connection, text: str) -> None:
        try:
            msg = json.loads(text)
        except ValueError:
            await self._error(conn, 4000, "Bad request: not JSON")
            return
        event = msg.get("event") if isinstance(msg, dict) else None
        data = msg.get("data") if isinstance(msg, dict) else None
        channel = str(data.get("channel", "")) if isinstance(data, dict) else ""
        if event == "bts:heartbeat":
            self.heartbeats += 1
            if not self.silent:
                await self._send(conn, {"event": "bts:heartbeat", "channel": "",
                                        "data": {"status": "success"}}, force=True)  # fmt: skip
        elif event == "bts:subscribe" and self._known(channel):
            if channel.startswith("private-") and not self._authorised(channel, data or {}):
                await self._error(conn, 4009, "Connection is unauthorized.")
                return
            conn.channels.add(channel)
            await self._send(conn, {"event": "bts:subscription_succeeded", "channel": channel,
                                    "data": {}}, force=True)  # fmt: skip
            self._wake.set()
        elif event == "bts:unsubscribe":
            conn.channels.discard(channel)
            conn.last_book.pop(channel, None)
            await self._send(conn, {"event": "bts:unsubscription_succeeded", "channel": channel,
                                    "data": {}}, force=True)  # fmt: skip
        else:
            await self._error(conn, 4000, f"Bad request: {event!r} {channel!r}")

    def _known(self, channel: str) -> bool:
        ids = {i.exchange_symbol for i in self.fake.instruments.values()}
        public = ("order_book_", "live_trades_", "live_orders_")
        for prefix in (*public, "private-my_orders_", "private-my_trades_"):
            if channel.startswith(prefix):
                rest = channel.removeprefix(prefix)
                return (rest.rpartition("-")[0] if prefix.startswith("private") else rest) in ids
        return False

    def _authorised(self, channel: str, data: dict[str, Any]) -> bool:
        expiry = self.tokens.get(str(data.get("auth", "")))
        fresh = expiry is not None and self.fake.clock.monotonic() <= expiry
        return fresh and channel.endswith(f"-{USER_ID}")

    async def _error(self, conn: Connection, code: int, message: str) -> None:
        self.errors.append(message)
        await self._send(conn, {"event": "bts:error", "channel": "",
                                "data": {"code": code, "message": message}}, force=True)  # fmt: skip

    async def _send(self, conn: Connection, payload: Any, *, force: bool = False) -> int:
        if (self.silent and not force) or conn.ws.closed:
            return 0
        try:
            await conn.ws.send_str(json.dumps(payload, separators=(",", ":")))
        except Exception:
            return 0
        conn.sent += 1
        return 1

    # --- publisher ----------------------------------------------------------------------
    async def _publish_forever(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.book_interval)
            self._wake.clear()
            for conn in list(self.connections):
                for channel in sorted(conn.channels):
                    if channel.startswith("order_book_"):
                        await self._publish_book(conn, channel)

    async def _publish_book(self, conn: Connection, channel: str) -> None:
        pair = channel.removeprefix("order_book_")
        inst = next(i for i in self.fake.instruments.values() if i.exchange_symbol == pair)
        book = self.fake.books.get(inst.symbol)
        if book is None:
            return
        levels = {
            "bids": [[str(p), str(q)] for p, q in book.bids[:BOOK_LEVELS]],
            "asks": [[str(p), str(q)] for p, q in book.asks[:BOOK_LEVELS]],
        }
        if conn.last_book.get(channel) == levels:
            return  # unchanged: Bitstamp sends nothing
        micro = int(time.time() * 1_000_000)
        sent = await self._send(conn, {"data": {"timestamp": str(micro // 1_000_000),
                                                "microtimestamp": str(micro), **levels},
                                       "channel": channel, "event": "data"})  # fmt: skip
        if sent:
            conn.last_book[channel] = levels
