"""Binance request weights, per endpoint, as documented by Binance (not ccxt's costs).

ccxt names an endpoint by its `api` key (`public`, `fapiPrivateV3`, ...) and a relative path;
`endpoint` turns that into the Binance path this table is keyed by.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any


class Venue(StrEnum):
    """One Binance system with its own weight and order-count budgets."""

    SPOT = "spot"
    FUTURES = "futures"
    COINM = "coinm"  # COIN-M futures (dapi): its own 2400/min weight budget


_API_PREFIX = {
    "public": "/api/v3/",
    "private": "/api/v3/",
    "v1": "/api/v1/",
    "sapi": "/sapi/v1/",
    "sapiV2": "/sapi/v2/",
    "sapiV3": "/sapi/v3/",
    "sapiV4": "/sapi/v4/",
    "fapiPublic": "/fapi/v1/",
    "fapiPublicV2": "/fapi/v2/",
    "fapiPublicV3": "/fapi/v3/",
    "fapiPrivate": "/fapi/v1/",
    "fapiPrivateV2": "/fapi/v2/",
    "fapiPrivateV3": "/fapi/v3/",
    "fapiData": "/futures/data/",
    "dapiPublic": "/dapi/v1/",
    "dapiPrivate": "/dapi/v1/",
    "dapiPrivateV2": "/dapi/v2/",
}


def endpoint(api: Any, path: str) -> str:
    """Return the Binance path of a ccxt (api, path) pair, e.g. ('fapiPublic', 'time')."""
    key = api[0] if isinstance(api, list | tuple) else str(api)
    return _API_PREFIX.get(key, f"/{key}/") + path


def venue_of(path: str) -> Venue:
    """Return the venue serving a Binance path (a URL path with a base prefix works too)."""
    if "/dapi/" in path:
        return Venue.COINM
    return Venue.FUTURES if "/fapi/" in path or "/futures/data/" in path else Venue.SPOT


def is_order_endpoint(path: str) -> bool:
    """Order placement, lookup and cancel: the traffic that never waits behind market data."""
    return path.endswith(("/api/v3/order", "/fapi/v1/order"))


def _by_limit(steps: tuple[tuple[int, int], ...], default_limit: int) -> Callable[..., int]:
    def weight(params: Mapping[str, Any]) -> int:
        limit = int(params.get("limit", default_limit))
        for upto, w in steps:
            if limit <= upto:
                return w
        return steps[-1][1]

    return weight


def _symbol(with_symbol: int, without: int) -> Callable[..., int]:
    return lambda params: with_symbol if "symbol" in params else without


def _symbols(one: int, by_count: tuple[tuple[int, int], ...], every: int) -> Callable[..., int]:
    """Spot tickers: `symbol` weighs `one`, a `symbols` list by its length, none `every`."""

    def weight(params: Mapping[str, Any]) -> int:
        if "symbol" in params:
            return one
        raw = str(params.get("symbols", ""))
        count = raw.count(",") + 1 if raw.strip("[]") else 0
        for upto, w in by_count:
            if 0 < count <= upto:
                return w
        return every

    return weight


def _const(w: int) -> Callable[..., int]:
    return lambda params: w


_FUTURES_KLINES = ((99, 1), (499, 2), (1000, 5), (1500, 10))

# Binance's documented IP weights (spot REST API, USDⓈ-M futures); unlisted endpoints weigh 1.
_WEIGHTS: dict[tuple[str, str], Callable[[Mapping[str, Any]], int]] = {
    ("GET", "/api/v3/exchangeInfo"): _const(20),
    ("GET", "/api/v3/depth"): _by_limit(((100, 5), (500, 25), (1000, 50), (5000, 250)), 100),
    ("GET", "/api/v3/ticker/bookTicker"): _symbols(2, (), 4),
    ("GET", "/api/v3/ticker/24hr"): _symbols(2, ((20, 2), (100, 40)), 80),
    ("GET", "/api/v3/klines"): _const(2),
    ("GET", "/api/v3/account"): _const(20),
    ("GET", "/api/v3/order"): _const(4),
    ("GET", "/api/v3/openOrders"): _symbol(6, 80),
    ("GET", "/api/v3/myTrades"): _const(20),
    ("GET", "/fapi/v1/depth"): _by_limit(((50, 2), (100, 5), (500, 10), (1000, 20)), 500),
    ("GET", "/fapi/v1/ticker/bookTicker"): _symbol(2, 5),
    ("GET", "/fapi/v1/ticker/24hr"): _symbol(1, 40),
    ("GET", "/fapi/v1/premiumIndex"): _symbol(1, 10),
    ("GET", "/fapi/v1/klines"): _by_limit(_FUTURES_KLINES, 500),
    ("GET", "/fapi/v1/markPriceKlines"): _by_limit(_FUTURES_KLINES, 500),
    ("GET", "/fapi/v1/continuousKlines"): _by_limit(_FUTURES_KLINES, 500),
    ("GET", "/dapi/v1/continuousKlines"): _by_limit(_FUTURES_KLINES, 500),
    ("GET", "/fapi/v2/account"): _const(5),
    ("GET", "/fapi/v3/account"): _const(5),
    ("GET", "/fapi/v2/balance"): _const(5),
    ("GET", "/fapi/v3/balance"): _const(5),
    ("GET", "/fapi/v2/positionRisk"): _const(5),
    ("GET", "/fapi/v3/positionRisk"): _const(5),
    ("POST", "/fapi/v1/order"): _const(0),
    ("GET", "/fapi/v1/openOrders"): _symbol(1, 40),
    ("GET", "/fapi/v1/userTrades"): _const(5),
    ("GET", "/fapi/v1/positionSide/dual"): _const(30),
    ("GET", "/fapi/v1/income"): _const(30),
    ("GET", "/futures/data/delivery-price"): _const(1),
    ("GET", "/dapi/v1/exchangeInfo"): _const(1),
    ("GET", "/dapi/v1/depth"): _by_limit(((50, 2), (100, 5), (500, 10), (1000, 20)), 500),
    ("GET", "/dapi/v1/ticker/bookTicker"): _symbol(2, 5),
}


def request_weight(method: str, path: str, params: Mapping[str, Any]) -> int:
    """Return Binance's IP weight of one request (1 for endpoints not listed)."""
    fn = _WEIGHTS.get((method, path))
    return fn(params) if fn is not None else 1
