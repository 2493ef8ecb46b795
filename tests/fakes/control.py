"""The fake's control API (JSON under /_fake/...), for tests that run it as a subprocess.

| method + path | body / query | effect |
|---|---|---|
| GET /_fake/state | | instruments, used weights, skew, active faults |
| POST /_fake/instruments | {"instruments": [Instrument JSON]} | replace the instruments |
| POST /_fake/instrument/status | {"symbol", "status": "SETTLING", "delivery_date": ISO or null} | change one instrument's status at runtime (a delisting) |
| POST /_fake/universe | {"n": 300, "dated": 2} | generate n spot+perp pairs with books and funding |
| POST /_fake/book | {"symbol", "bids": [[p, q]], "asks": [[p, q]]} | set depth |
| POST /_fake/quote | {"symbol", "bid", "ask", "bid_qty", "ask_qty"} | set best bid/ask |
| POST /_fake/volume | {"symbol", "quote_volume"} | 24h quote volume |
| POST /_fake/funding | {"symbol", "rate", "next_funding_time", "mark", "index", "interest", "interval_hours", "cap", "floor"} | funding state |
| POST /_fake/funding/settle | {"symbol", "funding_time"?, "rate"?, "mark"?} | history row + payment; returns the payment |
| POST /_fake/funding/history | {"symbol", "rows": [{"funding_time", "rate", "mark"}]} | add settled rows |
| POST /_fake/klines | {"symbol", "interval", "price": "last"/"mark", "rows": [[t, o, h, l, c, v, qv]]} | add candles |
| GET/POST/DELETE /_fake/faults | Fault JSON (see faults.py) | list / add / clear faults |
| POST /_fake/clock | {"skew_ms": 2500, "market_lag_ms": 600000} | server clock skew; market data stamped that much in the past |
| POST /_fake/limits | any Limits field; {"reset": true} clears windows and bans | budgets |
| GET/DELETE /_fake/requests | ?path=&method= | request log (arrival perf_counter, params) |
| GET /_fake/account | | simulated account state (`SimulatedExchange.to_state`) |
| POST /_fake/account/deposit | {"wallet": "spot"/"futures", "asset", "amount"} | fund the account |
| GET /_fake/streams | | open stream connections and subscriptions, handshakes, listenKeys |
| POST /_fake/streams/drop | {"prefix"?, "code"?} | drop every (matching) connection; 1006 = no close frame |
| POST /_fake/streams/refuse | {"seconds", "prefix"?} | refuse new handshakes (HTTP 503) for that long |
| POST /_fake/streams/silence | {"on", "prefix"?} | stop / resume events, sockets stay open |
| POST /_fake/streams/delay | {"ms"} | delay every event |
| POST /_fake/streams/shutdown | {"prefix"?} | send Binance's `serverShutdown` notice |
| POST /_fake/streams/raw | {"text", "prefix"?} | send a raw frame (bad-message tests) |
| POST /_fake/streams/expire_listen_key | {"key"?, "market"?} | expire listenKeys (`listenKeyExpired`; `market` "fapi" or "dapi": one product's) |

Times are epoch ms or ISO-8601 with a timezone; numbers may be strings (kept exact).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from aiohttp import web

from bot.domain import OrderBook, SettledFunding
from bot.errors import ExchangeError
from tests.fakes import codec
from tests.fakes.market import Kline

if TYPE_CHECKING:
    from tests.fakes.binance_server import FakeBinance

Body = dict[str, Any]


def _ok(data: Any = None) -> web.Response:
    return web.json_response(codec.to_json(data if data is not None else {"ok": True}))


def _state(fake: FakeBinance, body: Body) -> Any:
    return {
        "url": fake.url,
        "instruments": len(fake.market.instruments),
        "used_weight": {"spot": fake.used_weight("spot"), "futures": fake.used_weight("futures")},
        "skew_ms": fake.skew_ms,
        "faults": [f.to_json() for f in fake.faults.active()],
        "requests": len(fake.requests),
    }


def _instruments(fake: FakeBinance, body: Body) -> Any:
    fake.set_instruments(codec.instrument(i) for i in body["instruments"])
    return None


def _status(fake: FakeBinance, body: Body) -> Any:
    """Change one instrument's status (and a perpetual's delivery date) at runtime."""
    inst = fake.market.instruments[body["symbol"]]
    status = str(body.get("status", inst.status or "TRADING"))
    delivery = body.get("delivery_date", inst.delist_at.isoformat() if inst.delist_at else None)
    fake.set_instruments(
        [
            *(i for i in fake.market.instruments.values() if i.symbol != inst.symbol),
            dataclasses.replace(
                inst,
                status=status,
                active=status == "TRADING",
                delist_at=codec.parse_time(delivery) if delivery else None,
            ),
        ]
    )
    return None


def _universe(fake: FakeBinance, body: Body) -> Any:
    at = codec.parse_time(body["at"]) if "at" in body else None
    fake.load_universe(int(body["n"]), at=at, dated=int(body.get("dated", 2)))
    return None


def _levels(rows: list[list[Any]]) -> tuple[tuple[Decimal, Decimal], ...]:
    return tuple((Decimal(str(p)), Decimal(str(q))) for p, q in rows)


def _book(fake: FakeBinance, body: Body) -> Any:
    fake.set_book(
        OrderBook(body["symbol"], _levels(body["bids"]), _levels(body["asks"]), fake.clock.now())
    )
    return None


def _quote(fake: FakeBinance, body: Body) -> Any:
    fake.set_quote(
        body["symbol"],
        str(body["bid"]),
        str(body["ask"]),
        str(body.get("bid_qty", "10")),
        str(body.get("ask_qty", "10")),
    )
    return None


def _volume(fake: FakeBinance, body: Body) -> Any:
    fake.set_volume(body["symbol"], str(body["quote_volume"]))
    return None


def _funding(fake: FakeBinance, body: Body) -> Any:
    args = {
        k: (str(v) if v is not None else None)
        for k, v in body.items()
        if k in ("rate", "mark", "index", "interest", "cap", "floor")
    }
    nft = body.get("next_funding_time")
    return fake.set_funding(
        body["symbol"],
        next_funding_time=codec.parse_time(nft) if nft is not None else None,
        interval_hours=body.get("interval_hours"),
        **args,
    )


def _settle(fake: FakeBinance, body: Body) -> Any:
    when = body.get("funding_time")
    payment = fake.settle_funding(
        body["symbol"],
        funding_time=codec.parse_time(when) if when is not None else None,
        rate=str(body["rate"]) if "rate" in body else None,
        mark=str(body["mark"]) if "mark" in body else None,
    )
    return {"payment": payment}


def _history(fake: FakeBinance, body: Body) -> Any:
    symbol = body["symbol"]
    fake.add_funding_history(
        symbol,
        [
            SettledFunding(
                symbol,
                codec.parse_time(r["funding_time"]),
                Decimal(str(r["rate"])),
                codec.optional_decimal(r.get("mark")),
            )
            for r in body["rows"]
        ],
    )
    return None


def _klines(fake: FakeBinance, body: Body) -> Any:
    rows = [Kline(codec.parse_time(r[0]), *(Decimal(str(x)) for x in r[1:7])) for r in body["rows"]]
    fake.add_klines(
        body["symbol"], rows, interval=body.get("interval", "1h"), price=body.get("price", "last")
    )
    return None


def _add_fault(fake: FakeBinance, body: Body) -> Any:
    options = dict(body)
    return fake.add_fault(options.pop("kind"), options.pop("path"), **options).to_json()


def _faults(fake: FakeBinance, body: Body) -> Any:
    return [f.to_json() for f in fake.faults.active()]


def _clear_faults(fake: FakeBinance, body: Body) -> Any:
    fake.faults.clear()
    fake.clear_row_patches()
    return None


def _clock(fake: FakeBinance, body: Body) -> Any:
    if "skew_ms" in body:
        fake.set_clock_skew(int(body["skew_ms"]))
    if "market_lag_ms" in body:
        fake.market_lag_ms = int(body["market_lag_ms"])
    return None


def _limits(fake: FakeBinance, body: Body) -> Any:
    for key, value in body.items():
        if key != "reset":
            setattr(fake.limits, key, int(value))
    if body.get("reset"):
        fake.reset_limits()
    return fake.limits


def _requests(fake: FakeBinance, body: Body) -> Any:
    path, method = body.get("path"), body.get("method")
    return [
        r.to_json()
        for r in fake.requests
        if (path is None or r.path == path) and (method is None or r.method == method)
    ]


def _clear_requests(fake: FakeBinance, body: Body) -> Any:
    fake.clear_requests()
    return None


def _account(fake: FakeBinance, body: Body) -> Any:
    return fake.account.to_state()


def _deposit(fake: FakeBinance, body: Body) -> Any:
    fake.account.deposit(body["wallet"], body["asset"], Decimal(str(body["amount"])))
    return None


def _streams(fake: FakeBinance, body: Body) -> Any:
    st = fake.streams
    return {
        "open": [
            {"path": c.path, "subscriptions": sorted(c.subscriptions)} for c in st.connections
        ],
        "accepted": st.accepted,
        "refused": st.refused,
        "listen_keys": [
            {"key": k.key, "keepalives": k.keepalives, "closed": k.closed}
            for k in st.listen_keys.values()
        ],
    }


def _stream_drop(fake: FakeBinance, body: Body) -> Any:
    return fake.streams.drop_all(code=int(body.get("code", 1006)), prefix=body.get("prefix", ""))


def _stream_refuse(fake: FakeBinance, body: Body) -> Any:
    fake.streams.refuse_for(float(body["seconds"]), prefix=body.get("prefix", ""))
    return None


def _stream_silence(fake: FakeBinance, body: Body) -> Any:
    fake.streams.silence(bool(body.get("on", True)), prefix=body.get("prefix", ""))
    return None


def _stream_delay(fake: FakeBinance, body: Body) -> Any:
    fake.streams.delay_seconds = float(body["ms"]) / 1000
    return None


def _stream_shutdown(fake: FakeBinance, body: Body) -> Any:
    return fake.streams.server_shutdown(prefix=body.get("prefix", ""))


def _stream_raw(fake: FakeBinance, body: Body) -> Any:
    return fake.streams.send_raw(str(body["text"]), prefix=body.get("prefix", ""))


def _stream_expire(fake: FakeBinance, body: Body) -> Any:
    market = body.get("market")
    if market not in (None, "fapi", "dapi"):
        raise ValueError(f"market = {market!r}: use 'fapi' or 'dapi'")
    return {"expired": fake.streams.expire_listen_key(body.get("key"), market=market)}


_ROUTES: dict[tuple[str, str], Callable[[FakeBinance, Body], Any]] = {
    ("GET", "/_fake/streams"): _streams,
    ("POST", "/_fake/streams/drop"): _stream_drop,
    ("POST", "/_fake/streams/refuse"): _stream_refuse,
    ("POST", "/_fake/streams/silence"): _stream_silence,
    ("POST", "/_fake/streams/delay"): _stream_delay,
    ("POST", "/_fake/streams/shutdown"): _stream_shutdown,
    ("POST", "/_fake/streams/raw"): _stream_raw,
    ("POST", "/_fake/streams/expire_listen_key"): _stream_expire,
    ("GET", "/_fake/state"): _state,
    ("POST", "/_fake/instruments"): _instruments,
    ("POST", "/_fake/universe"): _universe,
    ("POST", "/_fake/instrument/status"): _status,
    ("POST", "/_fake/book"): _book,
    ("POST", "/_fake/quote"): _quote,
    ("POST", "/_fake/volume"): _volume,
    ("POST", "/_fake/funding"): _funding,
    ("POST", "/_fake/funding/settle"): _settle,
    ("POST", "/_fake/funding/history"): _history,
    ("POST", "/_fake/klines"): _klines,
    ("GET", "/_fake/faults"): _faults,
    ("POST", "/_fake/faults"): _add_fault,
    ("DELETE", "/_fake/faults"): _clear_faults,
    ("POST", "/_fake/clock"): _clock,
    ("POST", "/_fake/limits"): _limits,
    ("GET", "/_fake/requests"): _requests,
    ("DELETE", "/_fake/requests"): _clear_requests,
    ("GET", "/_fake/account"): _account,
    ("POST", "/_fake/account/deposit"): _deposit,
}


async def handle(fake: FakeBinance, request: web.Request) -> web.Response:
    """Serve one control request; errors come back as HTTP 400 {"error": ...}."""
    route: Callable[[FakeBinance, Body], Any] | None = _ROUTES.get((request.method, request.path))
    if route is None:
        return web.json_response(
            {"error": f"no control route {request.method} {request.path}"}, status=404
        )
    body: Body = dict(request.query)
    if request.can_read_body:
        payload = await request.json()
        if isinstance(payload, dict):
            body.update(payload)
    try:
        result = route(fake, body)
        if inspect.isawaitable(result):
            result = await result
        return _ok(result)
    except (KeyError, ValueError, TypeError, ExchangeError) as exc:
        return web.json_response({"error": f"{type(exc).__name__}: {exc}"}, status=400)
