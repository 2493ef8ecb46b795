"""The WebSocket side of the fake Binance: market streams, user-data streams, listenKeys.

Served by `FakeBinance` on the same port as its REST API:

| path | what |
|---|---|
| `/stream/ws/N`, `/alt/stream/ws/N` | spot raw streams (`SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`) |
| `/stream?streams=a/b` | spot combined streams (each event wrapped as `{"stream", "data"}`) |
| `/f/ws`, `/f/{market,public}/ws/N`, `/alt/f/...` | USDⓈ-M raw streams (ccxt rewrites `/ws` per category) |
| `/f/private/ws?listenKey=K` | USDⓈ-M user data (`ORDER_TRADE_UPDATE` on fills) |
| `/d/ws/K` | COIN-M user data, as `dstream.binance.com/ws/<listenKey>` (`ORDER_TRADE_UPDATE` in contracts, fees in the coin; `ACCOUNT_UPDATE` with the coin wallet and every COIN-M position) |
| `/ws-api/v3` | spot WebSocket API: `userDataStream.subscribe.signature` → `executionReport` |
| `POST/PUT/DELETE /fapi/v1/listenKey` | create, keep alive, close the USDⓈ-M listenKey |
| `POST/PUT/DELETE /dapi/v1/listenKey` | the same for COIN-M (its own key) |

Spot paths contain `/stream` as Binance's do (ccxt tells spot from futures connections by
it). Streams: `<sym>@bookTicker` (spot and futures), `!markPrice@arr@1s`, `!markPrice@arr`,
`<sym>@markPrice@1s`. A publisher sends every subscribed book ticker each
`book_interval` seconds and mark prices each `mark_interval` seconds, from the fake's market
state. Controls for tests (also under `/_fake/streams/...`, see control.py): `drop_all`,
`refuse_for` (on the fake's clock, so a test with an injected clock can jump through a
window), `silence`, `delay`, `server_shutdown`, `expire_listen_key`, `send_raw`;
`changes_only` sends a book ticker only when the top of book changed, as Binance does.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from aiohttp import WSMsgType, web

from bot.domain import Fill, Instrument, Order
from tests.fakes import wire
from tests.fakes.market import best

if TYPE_CHECKING:
    from tests.fakes.binance_server import FakeBinance

LISTEN_KEY_PATH = "/fapi/v1/listenKey"
COINM_LISTEN_KEY_PATH = "/dapi/v1/listenKey"
COINM_USER_PREFIX = "/d/ws/"


def is_stream_path(path: str) -> bool:
    """Tell whether a request path belongs to the WebSocket side."""
    return path in (LISTEN_KEY_PATH, COINM_LISTEN_KEY_PATH) or path.startswith(
        ("/ws-api", "/stream", "/alt/", "/f/", "/d/")
    )


@dataclass
class Connection:
    """One accepted WebSocket connection."""

    ws: web.WebSocketResponse
    path: str
    futures: bool
    combined: bool
    subscriptions: set[str] = field(default_factory=set)
    listen_key: str | None = None
    wsapi: bool = False
    coinm: bool = False  # a COIN-M (dapi) user-data connection
    user_subscription: int | None = None
    opened_at: float = field(default_factory=time.monotonic)
    sent: int = 0
    last_top: dict[str, tuple[str, ...]] = field(default_factory=dict)  # changes_only


@dataclass
class ListenKey:
    key: str
    api_key: str
    created_at: float
    kept_alive_at: float
    keepalives: int = 0
    closed: bool = False
    market: str = "fapi"  # or "dapi": Binance keeps one listenKey per product


class FakeStreams:
    """Stream endpoints and their failure modes, attached to one `FakeBinance`."""

    def __init__(
        self, fake: FakeBinance, *, book_interval: float = 0.1, mark_interval: float = 1.0
    ) -> None:
        self.fake = fake
        self.book_interval = book_interval
        self.mark_interval = mark_interval
        self.connections: list[Connection] = []
        self.listen_keys: dict[str, ListenKey] = {}
        self.accepted = 0  # handshakes accepted, in total
        self.refused = 0  # handshakes refused, in total
        self.subscribe_messages = 0
        self.listen_key_requests: list[tuple[str, float]] = []
        self.coinm_listen_key_requests: list[tuple[str, float]] = []
        self._refuse_until: dict[str, float] = {}  # path prefix -> monotonic time
        self._silent: set[str] = set()  # path prefixes that get no events
        self.delay_seconds = 0.0
        # Binance sends a book ticker on every change only: with `changes_only` an unchanged
        # top of book is sent once per connection, then not again until it changes.
        self.changes_only = False
        self.first_book_on_subscribe = True  # False: not even once until it changes
        self._publisher: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._last_mark = 0.0
        self._pending: set[asyncio.Future[Any]] = set()

    # --- lifecycle ----------------------------------------------------------------------
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

    # --- controls -----------------------------------------------------------------------
    async def drop_all(self, *, code: int = 1006, prefix: str = "") -> int:
        """Close every connection (whose path starts with `prefix`); return how many."""
        victims = [c for c in self.connections if c.path.startswith(prefix)]
        for conn in victims:
            self._forget(conn)
            if code == 1006 and conn.ws._req is not None and conn.ws._req.transport is not None:
                conn.ws._req.transport.abort()  # no close frame: a dropped TCP connection
            else:
                with contextlib.suppress(Exception):
                    await conn.ws.close(code=code, message=b"server restart")
        return len(victims)

    def refuse_for(self, seconds: float, *, prefix: str = "") -> None:
        """Refuse new handshakes (HTTP 503) on paths starting with `prefix` for `seconds`."""
        self._refuse_until[prefix] = self.fake.clock.monotonic() + seconds

    def accept_again(self) -> None:
        self._refuse_until.clear()

    def silence(self, on: bool = True, *, prefix: str = "") -> None:
        """Stop (or resume) sending events on paths starting with `prefix`; sockets stay up."""
        if on:
            self._silent.add(prefix)
        else:
            self._silent.discard(prefix)

    async def server_shutdown(self, *, prefix: str = "") -> int:
        """Send Binance's `serverShutdown` notice to every connection; return how many."""
        notice = {"e": "serverShutdown", "E": self.fake.market_ms()}
        sent = 0
        for conn in [c for c in self.connections if c.path.startswith(prefix)]:
            payload = {"event": notice} if conn.wsapi else notice
            if await self._send(conn, payload, force=True):
                sent += 1
        return sent

    async def send_raw(self, text: str, *, prefix: str = "") -> int:
        """Send `text` as-is to every connection (bad-message tests)."""
        sent = 0
        for conn in [c for c in self.connections if c.path.startswith(prefix)]:
            with contextlib.suppress(Exception):
                await conn.ws.send_str(text)
                sent += 1
        return sent

    def expire_listen_key(self, key: str | None = None, *, market: str | None = None) -> int:
        """Expire listenKeys (all, one, or one product's: `market` "fapi" / "dapi"):
        `listenKeyExpired` is sent, the stream stops."""
        expired = 0
        for lk in list(self.listen_keys.values()):
            if (key is None or lk.key == key) and market in (None, lk.market):
                lk.closed = True
                expired += 1
                for conn in [c for c in self.connections if c.listen_key == lk.key]:
                    event = {
                        "e": "listenKeyExpired",
                        "E": self.fake.market_ms(),
                        "listenKey": lk.key,
                    }
                    self._spawn(self._send(conn, event, force=True))
        return expired

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def open_count(self, prefix: str = "") -> int:
        return sum(1 for c in self.connections if c.path.startswith(prefix))

    def subscribed(self) -> set[str]:
        return {s for c in self.connections for s in c.subscriptions}

    def push_now(self) -> None:
        """Wake the publisher: send book tickers and mark prices at once."""
        self._last_mark = 0.0
        self._wake.set()

    # --- orders → user-data events ------------------------------------------------------
    def order_event(self, inst: Instrument, order: Order, fills: list[Fill]) -> None:
        """Publish an order's update (one event per fill, else one NEW) to its user streams."""
        pending: list[Fill | None] = list(fills) or [None]
        for fill in pending:
            if inst.is_inverse:
                event = self._coinm_event(inst, order, fill)
                targets = [c for c in self.connections if c.coinm]
            elif inst.is_derivative:
                event = self._futures_event(inst, order, fill)
                targets = [c for c in self.connections if c.listen_key and not c.coinm]
            else:
                event = self._spot_event(inst, order, fill)
                targets = [c for c in self.connections if c.user_subscription is not None]
            for conn in targets:
                payload = (
                    {"subscriptionId": conn.user_subscription, "event": event}
                    if conn.wsapi
                    else event
                )
                self._spawn(self._send(conn, payload))
        if inst.is_inverse and fills:
            update = self._coinm_account_update(inst.settle or inst.base)
            for conn in [c for c in self.connections if c.coinm]:
                self._spawn(self._send(conn, update))

    def _coinm_event(self, inst: Instrument, order: Order, fill: Fill | None) -> dict[str, Any]:
        """dapi's ORDER_TRADE_UPDATE: quantities in contracts, `ma` and the fee in the coin."""
        event = self._futures_event(inst, order, fill)
        coin = inst.settle or inst.base
        o = event["o"]
        o.pop("cp", None)
        o.update(ma=coin, N=fill.fee_asset if fill else coin, pP=False, si=0, ss=0)
        event["i"] = "fake"
        return event

    def _coinm_account_update(self, coin: str) -> dict[str, Any]:
        """dapi's ACCOUNT_UPDATE after a fill: the coin's wallet and every COIN-M position."""
        now = self.fake.market_ms()
        acct = self.fake.account.coinm_account(coin)
        positions = []
        for pos in self.fake.account.coinm_positions():
            pi = self.fake.market.instruments.get(pos.symbol)
            if pi is None:
                continue
            positions.append(
                {
                    "s": pi.exchange_symbol,
                    "pa": wire.num(pos.signed_size),
                    "ep": wire.num(pos.entry_price),
                    "bep": wire.num(pos.entry_price),
                    "cr": "0",
                    "up": wire.num(pos.unrealized_pnl),
                    "mt": pos.margin_mode.value.lower(),
                    "iw": "0",
                    "ps": pos.position_side.value,
                }
            )
        balance = {
            "a": coin,
            "wb": wire.num(acct.wallet_balance),
            "cw": wire.num(acct.wallet_balance),
            "bc": "0",
        }
        return {
            "e": "ACCOUNT_UPDATE",
            "E": now,
            "T": now,
            "i": "fake",
            "a": {"m": "ORDER", "B": [balance], "P": positions},
        }

    def _futures_event(self, inst: Instrument, order: Order, fill: Fill | None) -> dict[str, Any]:
        now = self.fake.market_ms()
        body = wire.futures_order(order, inst)
        o = {
            "s": inst.exchange_symbol,
            "c": order.client_order_id,
            "S": body["side"],
            "o": body["type"],
            "f": "GTC",
            "q": body["origQty"],
            "p": body["price"],
            "ap": body["avgPrice"],
            "sp": "0",
            "x": "TRADE" if fill else "NEW",
            "X": body["status"],
            "i": body["orderId"],
            "l": wire.num(fill.quantity) if fill else "0",
            "z": body["executedQty"],
            "L": wire.num(fill.price) if fill else "0",
            "N": fill.fee_asset if fill else "USDT",
            "n": wire.num(fill.fee) if fill else "0",
            "T": now,
            "t": int(fill.trade_id) if fill and fill.trade_id.isdigit() else 0,
            "b": "0",
            "a": "0",
            "m": False,
            "R": body["reduceOnly"],
            "wt": "CONTRACT_PRICE",
            "ot": body["type"],
            "ps": body["positionSide"],
            "cp": False,
            "rp": wire.num(fill.realized_pnl or 0) if fill else "0",
        }
        return {"e": "ORDER_TRADE_UPDATE", "E": now, "T": now, "o": o}

    def _spot_event(self, inst: Instrument, order: Order, fill: Fill | None) -> dict[str, Any]:
        now = self.fake.market_ms()
        body = wire.spot_order(order, inst, None)
        return {
            "e": "executionReport",
            "E": now,
            "s": inst.exchange_symbol,
            "c": order.client_order_id,
            "S": body["side"],
            "o": body["type"],
            "f": "GTC",
            "q": body["origQty"],
            "p": body["price"],
            "P": "0",
            "F": "0",
            "g": -1,
            "C": "",
            "x": "TRADE" if fill else "NEW",
            "X": body["status"],
            "r": "NONE",
            "i": body["orderId"],
            "l": wire.num(fill.quantity) if fill else "0",
            "z": body["executedQty"],
            "L": wire.num(fill.price) if fill else "0",
            "n": wire.num(fill.fee) if fill else "0",
            "N": fill.fee_asset if fill else None,
            "T": now,
            "t": int(fill.trade_id) if fill and fill.trade_id.isdigit() else -1,
            "w": body["status"] in {"NEW", "PARTIALLY_FILLED"},
            "m": False,
            "O": now,
            "Z": body["cummulativeQuoteQty"],
            "Y": "0",
            "Q": "0",
        }

    # --- HTTP entry points --------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.path == LISTEN_KEY_PATH:
            return self._listen_key(request, "fapi")
        if request.path == COINM_LISTEN_KEY_PATH:
            return self._listen_key(request, "dapi")
        if self._refusing(request.path):
            self.refused += 1
            return web.Response(status=503, text="maintenance", headers={"Retry-After": "1"})
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return web.Response(status=400, text="WebSocket upgrade expected")
        futures = request.path.startswith(("/f/", "/alt/f/", "/d/"))
        coinm = request.path.startswith(COINM_USER_PREFIX)
        listen_key = (
            request.path.removeprefix(COINM_USER_PREFIX)
            if coinm
            else request.query.get("listenKey")
        )
        if "/private/" in request.path or coinm:
            lk = self.listen_keys.get(listen_key or "")
            if lk is None or lk.closed or lk.market != ("dapi" if coinm else "fapi"):
                return web.json_response(
                    {"code": -1125, "msg": "This listenKey does not exist."}, status=400
                )
        ws = web.WebSocketResponse(autoping=True, heartbeat=None, max_msg_size=4 * 1024 * 1024)
        await ws.prepare(request)
        conn = Connection(
            ws,
            request.path,
            futures,
            combined=request.path == "/stream",
            listen_key=listen_key if "/private/" in request.path or coinm else None,
            wsapi=request.path.startswith("/ws-api"),
            coinm=coinm,
        )
        if conn.combined and request.query.get("streams"):
            conn.subscriptions.update(request.query["streams"].split("/"))
        self.connections.append(conn)
        self.accepted += 1
        self._wake.set()
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await self._on_text(conn, msg.data)
        finally:
            self._forget(conn)
        return ws

    def _listen_key(self, request: web.Request, market: str) -> web.Response:
        api_key = request.headers.get("X-MBX-APIKEY")
        if api_key not in self.fake.keys:
            return web.json_response(
                {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."},
                status=401,
            )
        now = time.monotonic()
        self.listen_key_requests.append((request.method, now))
        if market == "dapi":
            self.coinm_listen_key_requests.append((request.method, now))
        keys = [k for k in self.listen_keys.values() if k.market == market]
        if request.method == "POST":
            live = next((k for k in keys if not k.closed), None)
            if live is None:
                live = ListenKey(secrets.token_hex(32), api_key, now, now, market=market)
                self.listen_keys[live.key] = live
            live.kept_alive_at = now
            return web.json_response({"listenKey": live.key})
        live = next((k for k in keys if not k.closed), None)
        if live is None:
            return web.json_response(
                {"code": -1125, "msg": "This listenKey does not exist."}, status=400
            )
        if request.method == "PUT":
            live.kept_alive_at = now
            live.keepalives += 1
            return web.json_response({"listenKey": live.key})
        if request.method == "DELETE":
            live.closed = True
            return web.json_response({})
        return web.json_response({"code": -1000, "msg": "method"}, status=405)

    def _refusing(self, path: str) -> bool:
        now = self.fake.clock.monotonic()  # the fake's clock: a test may jump it
        return any(path.startswith(p) and until > now for p, until in self._refuse_until.items())

    def _forget(self, conn: Connection) -> None:
        if conn in self.connections:
            self.connections.remove(conn)

    async def _on_text(self, conn: Connection, text: str) -> None:
        try:
            msg = json.loads(text)
        except ValueError:
            await self._send(conn, {"error": {"code": 2, "msg": "Invalid JSON"}}, force=True)
            return
        if conn.wsapi:
            await self._on_wsapi(conn, msg)
            return
        method, params, rid = msg.get("method"), msg.get("params") or [], msg.get("id")
        self.subscribe_messages += 1
        if method == "SUBSCRIBE":
            conn.subscriptions.update(str(p) for p in params)
            if self.changes_only and not self.first_book_on_subscribe:
                for stream in params:  # Binance: nothing until the book changes
                    name, _, channel = str(stream).partition("@")
                    event = (
                        self._book_ticker(conn.futures, name) if channel == "bookTicker" else None
                    )
                    if event is not None:
                        conn.last_top[str(stream)] = _top(event)
            await self._send(conn, {"result": None, "id": rid}, force=True)
            self._wake.set()
        elif method == "UNSUBSCRIBE":
            conn.subscriptions.difference_update(str(p) for p in params)
            await self._send(conn, {"result": None, "id": rid}, force=True)
        elif method == "LIST_SUBSCRIPTIONS":
            await self._send(conn, {"result": sorted(conn.subscriptions), "id": rid}, force=True)
        else:
            await self._send(
                conn, {"error": {"code": 1, "msg": "Invalid request"}, "id": rid}, force=True
            )

    async def _on_wsapi(self, conn: Connection, msg: dict[str, Any]) -> None:
        rid, method, params = msg.get("id"), msg.get("method"), msg.get("params") or {}
        if method == "userDataStream.subscribe.signature":
            secret = self.fake.keys.get(str(params.get("apiKey")))
            unsigned = {k: v for k, v in params.items() if k != "signature"}
            query = urlencode(sorted(unsigned.items()))
            expected = (
                hmac.new(secret.encode(), query.encode(), hashlib.sha256).hexdigest()
                if secret
                else None
            )
            if expected is None or expected != params.get("signature"):
                await self._send(
                    conn,
                    {
                        "id": rid,
                        "status": 400,
                        "error": {"code": -1022, "msg": "Signature for this request is not valid."},
                    },
                    force=True,
                )
                return
            conn.user_subscription = 0
            await self._send(
                conn, {"id": rid, "status": 200, "result": {"subscriptionId": 0}}, force=True
            )
            return
        await self._send(
            conn,
            {"id": rid, "status": 400, "error": {"code": -1000, "msg": f"unknown method {method}"}},
            force=True,
        )

    async def _send(self, conn: Connection, payload: Any, *, force: bool = False) -> bool:
        """Send one event; `force` sends it even while the path is silenced (replies)."""
        if not force and any(conn.path.startswith(p) for p in self._silent):
            return False
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        if conn.ws.closed:
            return False
        try:
            await conn.ws.send_str(json.dumps(payload, separators=(",", ":")))
        except Exception:
            return False
        conn.sent += 1
        return True

    # --- publisher ----------------------------------------------------------------------
    async def _publish_forever(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.book_interval)
            self._wake.clear()
            marks_due = time.monotonic() - self._last_mark >= self.mark_interval
            if marks_due:
                self._last_mark = time.monotonic()
            for conn in list(self.connections):
                if conn.subscriptions:
                    await self._publish(conn, marks_due)

    async def _publish(self, conn: Connection, marks_due: bool) -> None:
        for stream in sorted(conn.subscriptions):
            name, _, channel = stream.partition("@")
            if channel == "bookTicker":
                event = self._book_ticker(conn.futures, name)
            elif name == "!markPrice" and marks_due:
                event = self._mark_prices(None)
            elif channel.startswith("markPrice") and marks_due:
                event = self._mark_prices(name)
            else:
                continue
            if event is None:
                continue
            if channel == "bookTicker" and self.changes_only:
                top = _top(event)
                if conn.last_top.get(stream) == top:
                    continue
                conn.last_top[stream] = top
            await self._send(conn, {"stream": stream, "data": event} if conn.combined else event)

    def _book_ticker(self, futures: bool, stream_symbol: str) -> dict[str, Any] | None:
        inst = self.fake.market.find(futures, stream_symbol.upper())
        book = self.fake.market.books.get(inst.symbol) if inst is not None else None
        top = best(book) if book is not None else None
        if inst is None or top is None:
            return None
        event: dict[str, Any] = {
            "u": self.fake.next_update_id(),
            "s": inst.exchange_symbol,
            "b": wire.num(top[0]),
            "B": wire.num(top[1]),
            "a": wire.num(top[2]),
            "A": wire.num(top[3]),
        }
        if futures:
            now = self.fake.market_ms()
            event = {"e": "bookTicker", **event, "E": now, "T": now}
        return event

    def _mark_prices(self, stream_symbol: str | None) -> Any:
        now = self.fake.market_ms()
        rows = []
        for symbol, state in self.fake.market.funding.items():
            inst = self.fake.market.instruments.get(symbol)
            if inst is None:
                continue
            if stream_symbol is not None and inst.exchange_symbol.lower() != stream_symbol:
                continue
            rows.append(
                {
                    "e": "markPriceUpdate",
                    "E": now,
                    "s": inst.exchange_symbol,
                    "p": wire.num(state.mark),
                    "i": wire.num(state.index),
                    "P": wire.num(state.index),
                    "r": wire.num(state.rate),
                    "T": wire.ms(state.next_funding_time),
                }
            )
        if not rows:
            return None
        return rows if stream_symbol is None else rows[0]


def _top(event: dict[str, Any]) -> tuple[str, ...]:
    return tuple(str(event[k]) for k in ("b", "B", "a", "A"))
