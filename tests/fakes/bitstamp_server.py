"""A fake Bitstamp (REST v2, spot) speaking the real protocol, for tests.

    async with FakeBitstamp(instruments) as fake:   # fake.url == "http://127.0.0.1:PORT"
        fake.set_book(book); fake.account.deposit("spot", "USD", D("10000"))

The client's REST base is `fake.url` (`[venues] bitstamp_api_url`); routes live under
`/api/v2/`. Private calls (POST) are checked as Bitstamp checks them: `X-Auth: BITSTAMP
<key>`, `X-Auth-Signature` = HMAC-SHA256(secret, X-Auth + method + host + path + query +
Content-Type + nonce + timestamp + version + body), a nonce never seen before, a
timestamp within 150 s of the server's clock and `X-Auth-Version: v2`. Errors have
Bitstamp's shape (`{"status": "error", "reason": ..., "code": ...}`). Requests are budgeted
per 10 minutes (HTTP 429 "Rate limit exceeded" beyond). Faults (faults.py) are injected per
path. Fills come from a spot `SimulatedExchange` that charges buys their fee in the quote
currency, as Bitstamp does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import itertools
import json
import signal
import sys
import time
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from bot.clock import Clock, SystemClock
from bot.domain import Instrument, Order, OrderBook, OrderRequest, OrderType, Quote, Side
from bot.domain.params import FeeParams
from bot.errors import ExchangeError, InsufficientFunds, OrderNotFound
from bot.exchange.bitstamp_client import TIMESTAMP_REASON
from bot.exchange.simulator import SimulatedExchange
from tests.fakes import bitstamp_ohlc
from tests.fakes.binance_server import LoggedRequest
from tests.fakes.bitstamp_streams import WS_PATH, FakeBitstampStreams
from tests.fakes.faults import Fault, FaultBook, FaultKind
from tests.fakes.market import quote_book
from tests.fakes.weights import RollingWindow

DEFAULT_API_KEY = "fake-bitstamp-key"
DEFAULT_API_SECRET = "fake-bitstamp-secret"
BITSTAMP_FEES = FeeParams(spot_taker=Decimal("0.004"), spot_maker=Decimal("0.004"))
TIMESTAMP_WINDOW_MS = 150_000
PREFIX = "/api/v2/"
_STATUS = {"new": "Open", "partially_filled": "Open", "filled": "Finished",
           "canceled": "Canceled", "expired": "Canceled", "rejected": "Canceled"}  # fmt: skip


def _decimals(value: Decimal) -> int:
    """Return the number of decimal places of a finite Decimal (0 for whole numbers)."""
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int), value
    return max(0, -exponent)


class BitstampError(Exception):
    """A Bitstamp error answer: HTTP `status` with `{"status": "error", ...}`."""

    def __init__(self, status: int, reason: Any, code: str) -> None:
        self.status, self.reason, self.code = status, reason, code
        super().__init__(f"{code} {reason}")

    def body(self) -> dict[str, Any]:
        return {"status": "error", "reason": self.reason, "code": self.code}


def _order_error(text: str) -> BitstampError:
    return BitstampError(400, {"__all__": [text]}, "400.002")


class FakeBitstamp:
    """The fake exchange: HTTP server, order books and one simulated spot account."""

    def __init__(
        self,
        instruments: Iterable[Instrument] = (),
        *,
        api_key: str = DEFAULT_API_KEY,
        api_secret: str = DEFAULT_API_SECRET,
        clock: Clock | None = None,
        requests_per_10_min: int = 8000,
        fees: FeeParams = BITSTAMP_FEES,
        host: str = "127.0.0.1",
    ) -> None:
        self.clock: Clock = clock or SystemClock()
        self.keys = {api_key: api_secret}
        self.instruments = {i.symbol: i for i in instruments}
        self.books: dict[str, OrderBook] = {}
        self.ohlc: dict[str, dict[int, dict[str, str]]] = {}  # symbol -> time -> bar
        self.volumes: dict[str, Decimal] = {}
        self.fees = fees
        self.account = SimulatedExchange(
            self.instruments, clock=self.clock, fees=fees, spot_fee_in_quote=True
        )
        self.faults = FaultBook()
        self.requests: list[LoggedRequest] = []
        self.skew_ms = 0
        self.down = False  # every request answers 503 (a venue down)
        self.limit = requests_per_10_min
        self.window = RollingWindow(600.0, self.clock.monotonic)
        self._nonces: set[str] = set()
        self._order_ids: dict[str, tuple[str, str]] = {}
        self._cid_symbols: dict[str, str] = {}
        self._ids = itertools.count(1_000_001)
        self._host = host
        self._runner: web.AppRunner | None = None
        self.url = ""
        self.streams = FakeBitstampStreams(self)

    # --- lifecycle ----------------------------------------------------------------------
    async def start(self) -> str:
        app = web.Application()
        app.router.add_get(WS_PATH, self.streams.handle)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://{self._host}:{port}"
        self.streams.start()
        return self.url

    @property
    def ws_url(self) -> str:
        """The WebSocket endpoint (`[venues] bitstamp_ws_url`)."""
        return self.url.replace("http://", "ws://", 1) + WS_PATH

    async def stop(self) -> None:
        await self.streams.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeBitstamp:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- market state -------------------------------------------------------------------
    def set_book(self, book: OrderBook) -> None:
        self.books[book.symbol] = book
        self.account.set_book(book)

    def set_quote(self, symbol: str, bid: Decimal | str, ask: Decimal | str) -> None:
        now = self.clock.now()
        q = Quote(symbol, Decimal(bid), Decimal(ask), Decimal(10), Decimal(10), now)
        self.books[symbol] = quote_book(symbol, q.bid, q.ask, q.bid_qty, q.ask_qty, now)
        self.account.set_quote(q)

    def add_fault(self, kind: FaultKind | str, path: str, **options: Any) -> Fault:
        """Inject a fault on `path` (e.g. `/api/v2/buy/market/btcusd/`)."""
        if "ratio" in options:
            options["ratio"] = Decimal(str(options["ratio"]))
        return self.faults.add(Fault(FaultKind(kind), path, **options))

    def requests_to(self, path: str, method: str | None = None) -> list[LoggedRequest]:
        return [r for r in self.requests if r.path == path and method in (None, r.method)]

    def clear_requests(self) -> None:
        self.requests.clear()

    def server_ms(self) -> int:
        return int(time.time() * 1000) + self.skew_ms

    # --- HTTP ---------------------------------------------------------------------------
    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        arrival = time.perf_counter()
        body = await request.text() if request.can_read_body else ""
        params = dict(parse_qsl(request.query_string, keep_blank_values=True))
        params.update(parse_qsl(body, keep_blank_values=True))
        entry = LoggedRequest(
            arrival, self.clock.monotonic(), request.method, request.path, params,
            request.headers.get("X-Auth"),
        )  # fmt: skip
        self.requests.append(entry)
        response = await self._serve(request, entry, body)
        entry.status = 0 if entry.dropped else response.status
        return response

    async def _serve(
        self, request: web.Request, entry: LoggedRequest, body: str
    ) -> web.StreamResponse:
        if self.down:
            return web.Response(status=503, text="<html>503 Service Unavailable</html>")
        if self.window.used() + 1 > self.limit:
            return _json(BitstampError(429, "Rate limit exceeded", "400.009").body(), 429)
        self.window.add(1)
        fault = self.faults.take(entry.method, entry.path, None)
        if fault is not None:
            early = _early(fault)
            if early is not None:
                return early
        try:
            if entry.method == "POST":
                self._check_auth(request, body)
            data = self._route(entry.method, entry.path, entry.params, fault)
            status = 200
        except BitstampError as exc:
            data, status = exc.body(), exc.status
        if fault is not None and fault.kind is FaultKind.DELAY:
            await asyncio.sleep(fault.delay_ms / 1000)
        if fault is not None and fault.kind is FaultKind.DROP:
            if request.transport is not None:
                request.transport.abort()
            entry.dropped = True
            return web.Response(status=200)
        if fault is not None and fault.kind is FaultKind.SERVER_ERROR:
            return web.Response(status=fault.status or 503, text="Service Unavailable")
        return _json(data, status)

    def _check_auth(self, request: web.Request, body: str) -> None:
        x_auth = request.headers.get("X-Auth", "")
        if not x_auth.startswith("BITSTAMP "):
            raise BitstampError(403, "Missing key, signature and nonce parameters", "API0001")
        secret = self.keys.get(x_auth.removeprefix("BITSTAMP "))
        if secret is None:
            raise BitstampError(403, "API key not found", "API0011")
        nonce = request.headers.get("X-Auth-Nonce", "")
        stamp = request.headers.get("X-Auth-Timestamp", "")
        version = request.headers.get("X-Auth-Version", "")
        if version != "v2":
            raise BitstampError(403, "Authentication failed", "API0006")
        content_type = request.headers.get("Content-Type", "") if body else ""
        text = (x_auth + request.method + request.host + request.path_qs + content_type
                + nonce + stamp + version + body)  # fmt: skip
        expected = hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()
        given = request.headers.get("X-Auth-Signature", "").lower()
        if not hmac.compare_digest(expected, given):
            raise BitstampError(403, "Invalid signature", "API0005")
        if not stamp.isdigit() or abs(int(stamp) - self.server_ms()) > TIMESTAMP_WINDOW_MS:
            raise BitstampError(403, TIMESTAMP_REASON, "API0016")
        if not nonce or nonce in self._nonces:
            raise BitstampError(403, "Invalid nonce", "API0004")
        self._nonces.add(nonce)

    def _route(self, method: str, path: str, params: dict[str, str], fault: Fault | None) -> Any:
        if not path.startswith(PREFIX):
            raise BitstampError(404, "Not found", "404.001")
        parts = path.removeprefix(PREFIX).strip("/").split("/")
        head = parts[0]
        if method == "GET" and head == "markets":
            return [self._market_json(i) for i in self.instruments.values()]
        if method == "GET" and head == "ticker" and len(parts) == 1:
            return [
                self._ticker_json(i) for i in self.instruments.values() if i.symbol in self.books
            ]
        if method == "GET" and head == "order_book" and len(parts) == 2:
            return self._book_json(self._by_id(parts[1]))
        if method == "GET" and head == "ohlc" and len(parts) == 2:
            try:
                return bitstamp_ohlc.answer(self, self._by_id(parts[1]).symbol, params)
            except bitstamp_ohlc.OhlcError as exc:
                raise BitstampError(400, str(exc), "400.002") from None
        if method != "POST":
            raise BitstampError(404, "Not found", "404.001")
        if head == "account_balances":
            return [
                {"currency": a.lower(), "total": str(b.total), "available": str(b.free),
                 "reserved": str(b.locked)}
                for a, b in self.account.spot_balances().items()
            ]  # fmt: skip
        if head == "fees" and parts[1:] == ["trading"]:
            pct = self.fees.spot_taker * 100, self.fees.spot_maker * 100
            return [{"currency_pair": i.exchange_symbol, "market": i.exchange_symbol,
                     "fees": {"taker": str(pct[0]), "maker": str(pct[1])}}
                    for i in self.instruments.values()]  # fmt: skip
        if head in ("buy", "sell") and len(parts) in (2, 3):
            market = len(parts) == 3 and parts[1] == "market"
            inst = self._by_id(parts[-1])
            ratio = fault.ratio if fault and fault.kind is FaultKind.PARTIAL_FILL else None
            return self._create(inst, Side.BUY if head == "buy" else Side.SELL, market, params,
                                ratio)  # fmt: skip
        if head == "websockets_token":
            return self.streams.issue_token()
        if head == "order_status":
            return self._status_json(*self._find(params))
        if head == "cancel_order":
            return self._cancel(params)
        if head == "user_transactions" and len(parts) == 2:
            return self._transactions(self._by_id(parts[1]), params)
        raise BitstampError(404, "Not found", "404.001")

    # --- helpers ------------------------------------------------------------------------
    def _by_id(self, pair: str) -> Instrument:
        for inst in self.instruments.values():
            if inst.exchange_symbol == pair:
                return inst
        raise BitstampError(404, "Invalid currency pair", "404.002")

    def _market_json(self, inst: Instrument) -> dict[str, Any]:
        return {
            "name": inst.symbol, "market_symbol": inst.exchange_symbol,
            "base_currency": inst.base, "base_decimals": _decimals(inst.step_size),
            "counter_currency": inst.quote,
            "counter_decimals": _decimals(inst.tick_size),
            "minimum_order_value": str(inst.min_notional),
            "minimum_order_amount": str(inst.min_qty),
            "trading": "Enabled" if inst.active else "Disabled",
            "instant_and_market_orders": "Enabled", "market_type": "SPOT",
            "description": f"{inst.base} / {inst.quote}",
        }  # fmt: skip

    def _ticker_json(self, inst: Instrument) -> dict[str, Any]:
        book = self.books[inst.symbol]
        bid, ask = book.bids[0][0], book.asks[0][0]
        mid = (bid + ask) / 2
        volume = self.volumes.get(inst.symbol, Decimal("1000000")) / mid
        return {
            "timestamp": str(int(self.clock.now().timestamp())), "open": str(mid),
            "high": str(ask), "low": str(bid), "last": str(mid), "volume": f"{volume:.8f}",
            "vwap": str(mid), "bid": str(bid), "ask": str(ask), "side": "0",
            "open_24": str(mid), "percent_change_24": "0.00", "pair": inst.symbol,
            "market_type": "SPOT",
        }  # fmt: skip

    def _book_json(self, inst: Instrument) -> dict[str, Any]:
        book = self.books.get(inst.symbol)
        if book is None:
            raise BitstampError(404, "Invalid currency pair", "404.002")
        micro = int(self.clock.now().timestamp() * 1_000_000)
        return {
            "timestamp": str(micro // 1_000_000), "microtimestamp": str(micro),
            "bids": [[str(p), str(q)] for p, q in book.bids],
            "asks": [[str(p), str(q)] for p, q in book.asks],
        }  # fmt: skip

    def _create(
        self, inst: Instrument, side: Side, market: bool, params: dict[str, str],
        ratio: Decimal | None,
    ) -> dict[str, Any]:  # fmt: skip
        try:
            amount = Decimal(params["amount"])
        except (KeyError, ArithmeticError):
            raise BitstampError(400, {"amount": ["This field is required."]}, "400.001") from None
        places = _decimals(inst.step_size)
        if amount <= 0 or not amount.is_finite() or _decimals(amount) > places:
            raise _order_error(f"Ensure that there are no more than {places} decimal places.")
        price = Decimal(params["price"]) if not market and "price" in params else None
        book = self.books.get(inst.symbol)
        reference = (
            price or (book.asks[0][0] if side is Side.BUY else book.bids[0][0]) if book else None
        )
        if reference is not None and amount * reference < inst.min_notional:
            raise _order_error(f"Minimum order size is {inst.min_notional} {inst.quote}.")
        cid = params.get("client_order_id") or f"bs-{next(self._ids)}"
        if len(cid) > 180:
            raise BitstampError(400, {"client_order_id": ["Too long."]}, "400.001")
        request = OrderRequest(inst.symbol, side, OrderType.MARKET if market else OrderType.LIMIT,
                               amount, cid, price=price)  # fmt: skip
        if ratio is not None:
            self.account.set_fill_ratio(inst.symbol, ratio)
        try:
            order = self.account.create_order(request)
        except InsufficientFunds:
            asset = inst.quote if side is Side.BUY else inst.base
            have = self.account.spot_balances().get(asset)
            raise _order_error(
                f"You have only {have.free if have else 0} {asset} available. "
                "Check your account balance for details."
            ) from None
        except ExchangeError as exc:
            raise _order_error(f"Order could not be placed: {exc}") from None
        finally:
            if ratio is not None:
                self.account.set_fill_ratio(inst.symbol, None)
        assert order.exchange_order_id is not None
        fills = [f for f in self.account.my_trades(inst.symbol)
                 if f.exchange_order_id == order.exchange_order_id]  # fmt: skip
        self.streams.order_events(inst, order, fills)
        self._order_ids[order.exchange_order_id] = (inst.symbol, cid)
        self._cid_symbols[cid] = inst.symbol
        return {
            "id": order.exchange_order_id, "market": inst.symbol,
            "datetime": _stamp(order.created_at or self.clock.now()),
            "type": "0" if side is Side.BUY else "1", "price": str(order.average_price or price or 0),
            "amount": str(amount), "client_order_id": cid,
        }  # fmt: skip

    def _find(self, params: dict[str, str]) -> tuple[Instrument, Order]:
        if params.get("client_order_id"):
            cid = params["client_order_id"]
            symbol = self._cid_symbols.get(cid)
        elif params.get("id"):
            symbol, cid = self._order_ids.get(params["id"], (None, ""))
        else:
            raise BitstampError(400, {"id": ["Missing id or client_order_id."]}, "400.001")
        if symbol is None:
            raise BitstampError(404, "Order not found.", "404.002")
        try:
            return self.instruments[symbol], self.account.fetch_order(symbol, cid)
        except OrderNotFound:
            raise BitstampError(404, "Order not found.", "404.002") from None

    def _status_json(self, inst: Instrument, order: Order) -> dict[str, Any]:
        base, quote = inst.base.lower(), inst.quote.lower()
        trades = [
            {"tid": int(f.trade_id), "price": str(f.price), base: str(f.quantity),
             quote: str(f.price * f.quantity), "fee": str(f.fee),
             "datetime": _stamp(f.timestamp), "type": 2}
            for f in self.account.my_trades(inst.symbol)
            if f.exchange_order_id == order.exchange_order_id
        ]  # fmt: skip
        return {
            "id": order.exchange_order_id, "datetime": _stamp(order.created_at or self.clock.now()),
            "type": "0" if order.side is Side.BUY else "1",
            "status": _STATUS[order.status.value], "market": inst.symbol,
            "transactions": trades, "amount_remaining": str(order.quantity - order.filled),
            "client_order_id": order.client_order_id,
        }  # fmt: skip

    def _cancel(self, params: dict[str, str]) -> dict[str, Any]:
        inst, order = self._find({"id": params.get("id", "")})
        if order.status.is_final:
            raise BitstampError(404, "Order not found.", "404.002")
        done = self.account.cancel_order(inst.symbol, order.client_order_id)
        return {"id": done.exchange_order_id, "amount": str(done.remaining),
                "price": str(done.price or 0), "type": 0 if done.side is Side.BUY else 1,
                "market": inst.symbol}  # fmt: skip

    def _transactions(self, inst: Instrument, params: dict[str, str]) -> list[dict[str, Any]]:
        base, quote = inst.base.lower(), inst.quote.lower()
        since = int(params.get("since_timestamp", "0") or 0)
        rows = []
        for f in self.account.my_trades(inst.symbol):
            if f.timestamp.timestamp() < since:
                continue
            sign = 1 if f.side is Side.BUY else -1
            rows.append({
                "id": int(f.trade_id), "datetime": _stamp(f.timestamp), "type": "2",
                "fee": str(f.fee), base: str(sign * f.quantity),
                quote: str(-sign * f.price * f.quantity), f"{base}_{quote}": str(f.price),
                "order_id": int(f.exchange_order_id),
            })  # fmt: skip
        if params.get("sort", "desc") == "desc":
            rows.reverse()
        offset, limit = int(params.get("offset", "0")), min(int(params.get("limit", "100")), 1000)
        return rows[offset : offset + limit]


def _stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M:%S.%f")


def _json(data: Any, status: int) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, default=str))


def _early(fault: Fault) -> web.Response | None:
    if fault.kind is FaultKind.REJECT:
        return _json(_order_error(fault.msg).body(), fault.status or 400)
    if fault.kind is FaultKind.RATE_LIMIT:
        return _json(BitstampError(429, "Rate limit exceeded", "400.009").body(), 429)
    if fault.kind is FaultKind.SERVER_ERROR and not fault.accept:
        return web.Response(status=fault.status or 503, text="Service Unavailable")
    if fault.kind is FaultKind.BODY:
        return _json(fault.body, fault.status or 200)
    return None


async def _serve_forever(args: argparse.Namespace) -> None:
    fake = FakeBitstamp(api_key=args.api_key, api_secret=args.api_secret, host=args.host)
    if args.standard:
        from tests.fakes.bitstamp_fixtures import bitstamp_instruments, seed_bitstamp

        fake = FakeBitstamp(
            bitstamp_instruments(), api_key=args.api_key, api_secret=args.api_secret,
            host=args.host,
        )  # fmt: skip
        seed_bitstamp(fake)
    print(await fake.start(), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await fake.stop()


def main(argv: list[str] | None = None) -> None:
    """Run the fake as a process: print the base URL, serve until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(description="Fake Bitstamp REST server for carrybot tests")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--api-key", default=DEFAULT_API_KEY)
    parser.add_argument("--api-secret", default=DEFAULT_API_SECRET)
    parser.add_argument("--standard", action="store_true", help="BTC/ETH books, funded account")
    asyncio.run(_serve_forever(parser.parse_args(argv)))


if __name__ == "__main__":
    main(sys.argv[1:])
