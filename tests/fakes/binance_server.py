"""A fake Binance (spot /api/v3 + USDⓈ-M /fapi) speaking the real REST protocol, for tests.

In-process:

    async with FakeBinance(instruments) as fake:   # fake.url == "http://127.0.0.1:PORT"
        fake.set_quote("BTC/USDT", bid, ask)
        ...

As a process: `python -m tests.fakes.binance_server --port 0 [--universe N]` prints its URL
on the first line of stdout and serves the control API under `/_fake/...` (see control.py).

Signed endpoints check the API key, the HMAC-SHA256 signature and timestamp vs recvWindow.
Each market (spot, futures) has a rolling one-minute weight window with Binance's endpoint
weights; over budget → 429 + Retry-After (-1003); requests during a Retry-After → 418 ban
after `Limits.ban_after` of them. Faults (faults.py) are injected per endpoint and symbol.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import signal
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from bot.clock import Clock, SystemClock
from bot.domain import (
    FundingPayment,
    Instrument,
    Order,
    OrderBook,
    PositionMode,
    PositionSide,
    Quote,
    SettledFunding,
)
from bot.domain.params import FeeParams
from bot.exchange.simulator import SimulatedExchange
from bot.exchange.weights import request_weight
from tests.fakes import control, routes_account, routes_coinm, routes_market, streams, wire
from tests.fakes.auth import BinanceError, check_signed
from tests.fakes.faults import Fault, FaultBook, FaultKind
from tests.fakes.market import FundingState, Kline, MarketState, quote_book, universe
from tests.fakes.weights import (
    WINDOW_SECONDS,
    Market,
    RollingWindow,
    is_order_post,
    market_of,
)

DEFAULT_API_KEY = "fake-api-key"
DEFAULT_API_SECRET = "fake-api-secret"
_JSON_TYPES = ("application/json",)


@dataclass
class Limits:
    """Budgets the fake enforces (Binance's by default)."""

    spot_weight: int = 6000
    futures_weight: int = 2400
    spot_orders_10s: int = 100
    futures_orders_1m: int = 1200
    ban_after: int = 2  # requests sent during a running Retry-After before a 418 ban
    ban_seconds: int = 120


@dataclass
class LoggedRequest:
    """One request as it arrived. `at` is `time.perf_counter()`; `clock_at` the fake's clock."""

    at: float
    clock_at: float
    method: str
    path: str
    params: dict[str, str]
    api_key: str | None
    weight: int = 0
    status: int = 0  # 0: no answer (the connection was dropped)
    dropped: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Guard:
    retry_until: float = -math.inf
    banned_until: float = -math.inf
    violations: int = 0


@dataclass
class _Budget:
    weight: RollingWindow
    orders: RollingWindow
    guard: _Guard = field(default_factory=_Guard)


class FakeBinance:
    """The fake exchange: HTTP server, public market state and one simulated account."""

    def __init__(
        self,
        instruments: Iterable[Instrument] = (),
        *,
        api_key: str = DEFAULT_API_KEY,
        api_secret: str = DEFAULT_API_SECRET,
        clock: Clock | None = None,
        limits: Limits | None = None,
        fees: FeeParams | None = None,
        position_mode: PositionMode = PositionMode.ONE_WAY,
        maintenance_rate: Decimal = Decimal("0.004"),
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.clock: Clock = clock or SystemClock()
        self.limits = limits or Limits()
        self.keys: dict[str, str] = {api_key: api_secret}
        self.maintenance_rate = maintenance_rate
        # The account's fee schedule, served by the fee endpoints: the rates before any BNB
        # discount, the VIP tier, and whether BNB pays spot / futures fees.
        self.fees = fees or FeeParams()
        self.bnb_burn: tuple[bool, bool] = (self.fees.bnb_discount, self.fees.bnb_discount)
        self.market = MarketState()
        self.faults = FaultBook()
        self.requests: list[LoggedRequest] = []
        self.skew_ms = 0
        self.market_lag_ms = 0  # market data stamped this much in the past (stale feed)
        self.order_ids: dict[tuple[bool, str], str] = {}
        self.order_sides: dict[str, PositionSide | None] = {}
        self._row_patches: dict[tuple[str, bool, str], dict[str, Any]] = {}
        self._income_ids: dict[tuple[str, datetime], int] = {}
        self._ids = itertools.count(1)
        self._fill_ratio: Decimal | None = None
        self._budgets = {
            Market.SPOT: _Budget(
                RollingWindow(WINDOW_SECONDS, self.clock.monotonic),
                RollingWindow(10.0, self.clock.monotonic),
            ),
            Market.FUTURES: _Budget(
                RollingWindow(WINDOW_SECONDS, self.clock.monotonic),
                RollingWindow(WINDOW_SECONDS, self.clock.monotonic),
            ),
        }
        self.market.set_instruments(instruments)
        self.account = SimulatedExchange(
            self.market.instruments,
            clock=self.clock,
            fees=fees,
            position_mode=position_mode,
            maintenance_rate=maintenance_rate,
        )
        self._host, self._port = host, port
        self._runner: web.AppRunner | None = None
        self.url = ""
        self.transfers = 0
        self.streams = streams.FakeStreams(self)

    # --- lifecycle ----------------------------------------------------------------------
    async def start(self) -> str:
        """Start serving; return the base URL."""
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        port = sockets[0].getsockname()[1]
        self.url = f"http://{self._host}:{port}"
        self.streams.start()
        return self.url

    @property
    def spot_ws_url(self) -> str:
        """Spot stream base, like Binance's `wss://stream.binance.com:9443/ws`."""
        return self.url.replace("http://", "ws://", 1) + "/stream/ws"

    @property
    def futures_ws_url(self) -> str:
        """USDⓈ-M stream base, like Binance's `wss://fstream.binance.com/ws`."""
        return self.url.replace("http://", "ws://", 1) + "/f/ws"

    @property
    def coinm_ws_url(self) -> str:
        """COIN-M stream base, like Binance's `wss://dstream.binance.com/ws`."""
        return self.url.replace("http://", "ws://", 1) + "/d/ws"

    @property
    def ws_api_url(self) -> str:
        """Spot WebSocket API, like Binance's `wss://ws-api.binance.com:443/ws-api/v3`."""
        return self.url.replace("http://", "ws://", 1) + "/ws-api/v3"

    async def stop(self) -> None:
        await self.streams.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeBinance:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- market state -------------------------------------------------------------------
    def set_instruments(self, instruments: Iterable[Instrument]) -> None:
        self.market.set_instruments(instruments)
        self.account.set_instruments(self.market.instruments)

    def load_universe(self, n: int, *, at: datetime | None = None, dated: int = 2) -> None:
        """Replace the market with `n` generated spot+perpetual pairs (bases X000...)."""
        instruments, books, funding = universe(n, at=at or self.clock.now(), dated=dated)
        self.set_instruments(instruments)
        for book in books.values():
            self.set_book(book)
        for symbol, state in funding.items():
            self.market.funding[symbol] = state
            self.account.set_mark(symbol, state.mark)

    def set_book(self, book: OrderBook) -> None:
        self.market.books[book.symbol] = book
        self.account.set_book(book)

    def set_quote(
        self,
        symbol: str,
        bid: Decimal | str,
        ask: Decimal | str,
        bid_qty: Decimal | str = "10",
        ask_qty: Decimal | str = "10",
    ) -> None:
        """Set the best bid/ask of one symbol (a one-level book)."""
        now = self.clock.now()
        q = Quote(symbol, Decimal(bid), Decimal(ask), Decimal(bid_qty), Decimal(ask_qty), now)
        self.market.books[symbol] = quote_book(symbol, q.bid, q.ask, q.bid_qty, q.ask_qty, now)
        self.account.set_quote(q)

    def set_volume(self, symbol: str, quote_volume: Decimal | str) -> None:
        self.market.volumes[symbol] = Decimal(quote_volume)

    def set_funding(
        self,
        symbol: str,
        *,
        rate: Decimal | str | None = None,
        next_funding_time: datetime | None = None,
        mark: Decimal | str | None = None,
        index: Decimal | str | None = None,
        interest: Decimal | str | None = None,
        interval_hours: int | None = None,
        cap: Decimal | str | None = None,
        floor: Decimal | str | None = None,
    ) -> FundingState:
        """Set (part of) what premiumIndex/fundingInfo report for one perpetual."""
        state = self.market.funding.get(symbol)
        if state is None:
            if mark is None or next_funding_time is None:
                raise ValueError(
                    f"{symbol}: the first set_funding needs mark and next_funding_time"
                )
            state = FundingState(
                rate=Decimal(rate or 0),
                next_funding_time=next_funding_time,
                mark=Decimal(mark),
                index=Decimal(index or mark),
            )
            self.market.funding[symbol] = state
        if rate is not None:
            state.rate = Decimal(rate)
        if next_funding_time is not None:
            state.next_funding_time = next_funding_time
        if mark is not None:
            state.mark = Decimal(mark)
        if index is not None:
            state.index = Decimal(index)
        if interest is not None:
            state.interest = Decimal(interest)
        if interval_hours is not None:
            state.interval_hours = interval_hours
        if cap is not None:
            state.cap = Decimal(cap)
        if floor is not None:
            state.floor = Decimal(floor)
        self.account.set_mark(symbol, state.mark)
        return state

    def settle_funding(
        self,
        symbol: str,
        *,
        funding_time: datetime | None = None,
        rate: Decimal | str | None = None,
        mark: Decimal | str | None = None,
    ) -> FundingPayment | None:
        """Settle one funding period: write the history row and pay the simulated account.

        Defaults come from the symbol's funding state; its next funding time moves on by one
        interval when that time is the one settled.
        """
        state = self.market.funding[symbol]
        when = funding_time or state.next_funding_time
        r = Decimal(rate) if rate is not None else state.rate
        m = Decimal(mark) if mark is not None else state.mark
        self.market.add_history(symbol, [SettledFunding(symbol, when, r, m)])
        payment = self.account.settle_funding(symbol, when, r, m)
        if when == state.next_funding_time:
            state.next_funding_time = when + timedelta(hours=state.interval_hours)
        return payment

    def deliver(self, symbol: str, price: Decimal | str) -> Decimal:
        """Deliver a dated future at `price`: publish the price, settle the account's positions."""
        inst = self.market.instruments[symbol]
        assert inst.expiry is not None, f"{symbol} is not a dated future"
        self.market.delivery_prices[(f"{inst.base}{inst.quote}", wire.ms(inst.expiry))] = Decimal(
            price
        )
        return self.account.deliver(symbol, Decimal(price))

    def add_funding_history(self, symbol: str, rows: Iterable[SettledFunding]) -> None:
        self.market.add_history(symbol, rows)

    def add_klines(
        self, symbol: str, rows: Iterable[Kline], *, interval: str = "1h", price: str = "last"
    ) -> None:
        """Add candles; `price` is `last` (klines) or `mark` (markPriceKlines)."""
        self.market.add_klines(symbol, price, interval, rows)

    def patch_row(self, endpoint: str, futures: bool, exchange_symbol: str, **fields: Any) -> None:
        """Corrupt one row of a list endpoint (`bookTicker`, `24hr`, `premiumIndex`,
        `fundingInfo`): set fields, or delete them when the value is None."""
        self._row_patches[(endpoint, futures, exchange_symbol)] = fields

    def clear_row_patches(self) -> None:
        self._row_patches.clear()

    def patch_rows(
        self, endpoint: str, futures: bool, rows: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        if not self._row_patches:
            return rows
        out = []
        for row in rows:
            patch = self._row_patches.get((endpoint, futures, str(row.get("symbol"))))
            if patch:
                row = {k: v for k, v in (row | patch).items() if v is not None}
            out.append(row)
        return out

    # --- faults, clock, limits ----------------------------------------------------------
    def add_fault(self, kind: FaultKind | str, path: str, **options: Any) -> Fault:
        """Inject a fault on `path` (see Fault for options: method, symbol, times, ...)."""
        if "ratio" in options:
            options["ratio"] = Decimal(str(options["ratio"]))
        return self.faults.add(Fault(FaultKind(kind), path, **options))

    def set_clock_skew(self, ms: int) -> None:
        """Make the server's clock run `ms` milliseconds ahead (negative: behind) of real time."""
        self.skew_ms = ms

    def server_ms(self) -> int:
        """Return the server's wall time (signatures, /time): real time plus the skew."""
        return int(time.time() * 1000) + self.skew_ms

    def market_ms(self) -> int:
        """Return the time stamped on market and account data: the fake's clock."""
        return wire.ms(self.clock.now())

    def data_ms(self) -> int:
        """Return the time stamped on market data (`time`, `E`, `T`): lagging when stale."""
        return self.market_ms() - self.market_lag_ms

    def consume_weight(self, market: Market | str, weight: int) -> None:
        """Count `weight` as used by someone else on the same IP (another process)."""
        self._budgets[Market(market)].weight.add(weight)

    def used_weight(self, market: Market | str) -> int:
        return self._budgets[Market(market)].weight.used()

    def reset_limits(self) -> None:
        """Forget used weight, order counts, Retry-After and bans."""
        for budget in self._budgets.values():
            budget.weight.clear()
            budget.orders.clear()
            budget.guard = _Guard()

    # --- request log --------------------------------------------------------------------
    def requests_to(self, path: str, method: str | None = None) -> list[LoggedRequest]:
        return [
            r for r in self.requests if r.path == path and (method is None or r.method == method)
        ]

    def clear_requests(self) -> None:
        self.requests.clear()

    # --- helpers used by the route modules ----------------------------------------------
    def next_update_id(self) -> int:
        return next(self._ids)

    def generate_client_id(self) -> str:
        return f"fake-{next(self._ids)}"

    def remember_order(self, inst: Instrument, order: Order) -> None:
        if order.exchange_order_id is not None:
            self.order_ids[(inst.is_derivative, order.exchange_order_id)] = order.client_order_id
            self.order_sides[order.exchange_order_id] = order.position_side

    def count_order(self, futures: bool) -> None:
        self._budgets[Market.FUTURES if futures else Market.SPOT].orders.add(1)

    def pending_fill_ratio(self) -> Decimal | None:
        """Return the fill ratio a partial-fill fault set for the order being processed."""
        return self._fill_ratio

    def income_id(self, symbol: str, when: datetime) -> int:
        return self._income_ids.setdefault((symbol, when), 1_000_000 + len(self._income_ids))

    # --- HTTP ---------------------------------------------------------------------------
    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        arrival = time.perf_counter()
        if request.path.startswith("/_fake/"):
            return await control.handle(self, request)
        if streams.is_stream_path(request.path):
            return await self.streams.handle(request)
        body = await request.text() if request.can_read_body else ""
        query = request.query_string
        params = dict(parse_qsl(query, keep_blank_values=True))
        if body and request.content_type not in _JSON_TYPES:
            params.update(parse_qsl(body, keep_blank_values=True))
        entry = LoggedRequest(
            arrival,
            self.clock.monotonic(),
            request.method,
            request.path,
            params,
            request.headers.get("X-MBX-APIKEY"),
        )
        self.requests.append(entry)
        response = await self._serve(request, entry, query, body)
        entry.status = 0 if entry.dropped else response.status
        return response

    async def _serve(
        self, request: web.Request, entry: LoggedRequest, query: str, body: str
    ) -> web.StreamResponse:
        method, path, params = entry.method, entry.path, entry.params
        key = (method, path)
        handler = routes_market.ROUTES.get(key)
        signed = False
        if handler is None:
            handler = routes_account.ROUTES.get(key) or routes_coinm.ROUTES.get(key)
            signed = handler is not None
        if handler is None:
            return _error(404, -5000, f"Path {method} {path} not found.")
        market = market_of(path)
        budget = self._budgets[market]
        refused = self._refuse(market, budget, request_weight(method, path, params), entry)
        if refused is not None:
            return refused
        if is_order_post(method, path):
            refused = self._refuse_orders(market, budget)
            if refused is not None:
                return refused
        fault = self.faults.take(method, path, params.get("symbol"))
        early = self._early_fault(fault, market, budget)
        if early is not None:
            return early
        self._fill_ratio = fault.ratio if fault and fault.kind is FaultKind.PARTIAL_FILL else None
        try:
            if signed:
                check_signed(
                    api_key=entry.api_key,
                    keys=self.keys,
                    query=query,
                    body=body,
                    params=params,
                    server_ms=self.server_ms(),
                )
            status, data = 200, handler(self, params)
        except BinanceError as exc:
            status, data = exc.status, {"code": exc.code, "msg": exc.msg}
        finally:
            self._fill_ratio = None
        if fault is not None and fault.kind is FaultKind.DELAY:
            await asyncio.sleep(fault.delay_ms / 1000)
        if fault is not None and fault.kind is FaultKind.DROP:
            if request.transport is not None:
                request.transport.abort()
            entry.dropped = True
            return web.Response(status=200)
        if fault is not None and fault.kind is FaultKind.SERVER_ERROR:
            return _server_error(fault)
        return web.json_response(
            data, status=status, headers=self._headers(market, budget, method, path), dumps=_dumps
        )

    def _refuse(
        self, market: Market, budget: _Budget, weight: int, entry: LoggedRequest
    ) -> web.Response | None:
        """Apply bans, Retry-After and the weight budget; count the weight when admitted."""
        now = self.clock.monotonic()
        guard = budget.guard
        if guard.banned_until > now:
            return _banned(math.ceil(guard.banned_until - now), self.server_ms())
        if guard.retry_until > now:
            guard.violations += 1
            if guard.violations >= self.limits.ban_after:
                guard.banned_until = now + self.limits.ban_seconds
                return _banned(self.limits.ban_seconds, self.server_ms())
            return _too_many(math.ceil(guard.retry_until - now), self._limit(market), budget)
        limit = self._limit(market)
        if budget.weight.used() + weight > limit:
            retry_after = max(1, math.ceil(budget.weight.seconds_until_below(limit - weight)))
            guard.retry_until, guard.violations = now + retry_after, 0
            return _too_many(retry_after, limit, budget)
        budget.weight.add(weight)
        entry.weight = weight
        return None

    def _refuse_orders(self, market: Market, budget: _Budget) -> web.Response | None:
        limit = (
            self.limits.futures_orders_1m
            if market is Market.FUTURES
            else self.limits.spot_orders_10s
        )
        if budget.orders.used() + 1 > limit:
            per = "1 MINUTE" if market is Market.FUTURES else "10 SECOND"
            return _error(
                429,
                -1015,
                f"Too many new orders; current limit is {limit} orders per {per}.",
                {"Retry-After": "10"},
            )
        return None

    def _early_fault(
        self, fault: Fault | None, market: Market, budget: _Budget
    ) -> web.Response | None:
        if fault is None:
            return None
        now = self.clock.monotonic()
        if fault.kind is FaultKind.REJECT:
            return _error(fault.status or 400, fault.code, fault.msg)
        if fault.kind is FaultKind.RATE_LIMIT:
            budget.guard.retry_until, budget.guard.violations = now + fault.retry_after, 0
            return _too_many(fault.retry_after, self._limit(market), budget)
        if fault.kind is FaultKind.BAN:
            budget.guard.banned_until = now + fault.retry_after
            return _banned(fault.retry_after, self.server_ms())
        if fault.kind is FaultKind.SERVER_ERROR and not fault.accept:
            return _server_error(fault)
        if fault.kind is FaultKind.BODY:
            return web.json_response(fault.body, status=fault.status or 200, dumps=_dumps)
        return None

    def _limit(self, market: Market) -> int:
        return self.limits.futures_weight if market is Market.FUTURES else self.limits.spot_weight

    def _headers(self, market: Market, budget: _Budget, method: str, path: str) -> dict[str, str]:
        headers = {"X-MBX-USED-WEIGHT-1M": str(budget.weight.used())}
        if is_order_post(method, path):
            if market is Market.FUTURES:
                headers["X-MBX-ORDER-COUNT-1M"] = str(budget.orders.used())
            else:
                headers["X-MBX-ORDER-COUNT-10S"] = str(budget.orders.used())
        return headers


def _dumps(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"))


def _error(
    status: int, code: int, msg: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.json_response(
        {"code": code, "msg": msg}, status=status, headers=headers, dumps=_dumps
    )


def _too_many(retry_after: int, limit: int, budget: _Budget) -> web.Response:
    return _error(
        429,
        -1003,
        f"Too many requests; current limit of IP(127.0.0.1) request weight is {limit} per "
        "1 MINUTE. Please use WebSocket Streams for live updates to avoid polling the API.",
        {
            "Retry-After": str(max(1, retry_after)),
            "X-MBX-USED-WEIGHT-1M": str(budget.weight.used()),
        },
    )


def _banned(retry_after: int, server_ms: int) -> web.Response:
    until = server_ms + retry_after * 1000
    return _error(
        418,
        -1003,
        f"Way too many requests; IP(127.0.0.1) banned until {until}. Please use WebSocket "
        "Streams for live updates to avoid bans.",
        {"Retry-After": str(max(1, retry_after))},
    )


def _server_error(fault: Fault) -> web.Response:
    return _error(
        fault.status or 503,
        -1001,
        "Internal error; unable to process your request. Please try again.",
    )


async def _serve_forever(args: argparse.Namespace) -> None:
    fake = FakeBinance(
        api_key=args.api_key, api_secret=args.api_secret, host=args.host, port=args.port
    )
    fake.streams.book_interval = args.book_interval
    if args.universe:
        fake.load_universe(args.universe)
    if args.standard:
        from tests.fakes.fixtures import seed, standard_instruments

        fake.set_instruments(standard_instruments(fake.clock.now()))
        seed(fake)
    url = await fake.start()
    print(url, flush=True)
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
    parser = argparse.ArgumentParser(description="Fake Binance REST server for carrybot tests")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api-key", default=DEFAULT_API_KEY)
    parser.add_argument("--api-secret", default=DEFAULT_API_SECRET)
    parser.add_argument("--universe", type=int, default=0, help="generate N spot+perp pairs")
    parser.add_argument(
        "--book-interval", type=float, default=0.1, help="seconds between stream book tickers"
    )
    parser.add_argument(
        "--standard", action="store_true", help="BTC and ETH with deep books, funded account"
    )
    args = parser.parse_args(argv)
    asyncio.run(_serve_forever(args))


if __name__ == "__main__":
    main(sys.argv[1:])
