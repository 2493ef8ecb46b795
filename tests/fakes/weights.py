"""Binance request weights per endpoint and a rolling one-minute weight window per market.

Weights are Binance's documented IP weights (spot REST API and USDⓈ-M futures docs), not
ccxt's costs. Unknown paths weigh 1.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from enum import StrEnum

WINDOW_SECONDS = 60.0


class Market(StrEnum):
    SPOT = "spot"
    FUTURES = "futures"


def market_of(path: str) -> Market:
    """Return which Binance system (and so which weight budget) serves `path`."""
    return Market.FUTURES if path.startswith(("/fapi/", "/futures/")) else Market.SPOT


def _spot_depth(limit: int) -> int:
    if limit <= 100:
        return 5
    if limit <= 500:
        return 25
    if limit <= 1000:
        return 50
    return 250


def _futures_depth(limit: int) -> int:
    if limit <= 50:
        return 2
    if limit <= 100:
        return 5
    if limit <= 500:
        return 10
    return 20


def _futures_klines(limit: int) -> int:
    if limit < 100:
        return 1
    if limit < 500:
        return 2
    if limit <= 1000:
        return 5
    return 10


def _symbols_count(params: Mapping[str, str]) -> int:
    raw = params.get("symbols", "")
    return raw.count(",") + 1 if raw.strip("[]") else 0


def _spot_multi(one: int, per_symbols: list[tuple[int, int]], all_: int) -> Callable[..., int]:
    def weight(params: Mapping[str, str]) -> int:
        if "symbol" in params:
            return one
        n = _symbols_count(params)
        if n == 0:
            return all_
        for upto, w in per_symbols:
            if n <= upto:
                return w
        return all_

    return weight


def _by_symbol(with_symbol: int, without: int) -> Callable[..., int]:
    return lambda params: with_symbol if "symbol" in params else without


def _const(w: int) -> Callable[..., int]:
    return lambda params: w


def _limit(fn: Callable[[int], int], default: int) -> Callable[..., int]:
    return lambda params: fn(int(params.get("limit", default)))


# (method, path) -> weight(params)
WEIGHTS: dict[tuple[str, str], Callable[[Mapping[str, str]], int]] = {
    ("GET", "/api/v3/ping"): _const(1),
    ("GET", "/api/v3/time"): _const(1),
    ("GET", "/api/v3/exchangeInfo"): _const(20),
    ("GET", "/api/v3/depth"): _limit(_spot_depth, 100),
    ("GET", "/api/v3/ticker/bookTicker"): _spot_multi(2, [], 4),
    ("GET", "/api/v3/ticker/24hr"): _spot_multi(2, [(20, 2), (100, 40)], 80),
    ("GET", "/api/v3/klines"): _const(2),
    ("GET", "/api/v3/account"): _const(20),
    ("POST", "/api/v3/order"): _const(1),
    ("GET", "/api/v3/order"): _const(4),
    ("DELETE", "/api/v3/order"): _const(1),
    ("GET", "/api/v3/openOrders"): _by_symbol(6, 80),
    ("GET", "/api/v3/myTrades"): _const(20),
    ("GET", "/fapi/v1/ping"): _const(1),
    ("GET", "/fapi/v1/time"): _const(1),
    ("GET", "/fapi/v1/exchangeInfo"): _const(1),
    ("GET", "/fapi/v1/depth"): _limit(_futures_depth, 500),
    ("GET", "/fapi/v1/ticker/bookTicker"): _by_symbol(2, 5),
    ("GET", "/fapi/v1/ticker/24hr"): _by_symbol(1, 40),
    ("GET", "/fapi/v1/premiumIndex"): _by_symbol(1, 10),
    ("GET", "/fapi/v1/fundingRate"): _const(1),
    ("GET", "/fapi/v1/fundingInfo"): _const(1),
    ("GET", "/fapi/v1/klines"): _limit(_futures_klines, 500),
    ("GET", "/fapi/v1/markPriceKlines"): _limit(_futures_klines, 500),
    ("GET", "/fapi/v2/account"): _const(5),
    ("GET", "/fapi/v3/account"): _const(5),
    ("GET", "/fapi/v2/balance"): _const(5),
    ("GET", "/fapi/v3/balance"): _const(5),
    ("GET", "/fapi/v2/positionRisk"): _const(5),
    ("GET", "/fapi/v3/positionRisk"): _const(5),
    ("GET", "/fapi/v1/leverageBracket"): _const(1),
    ("POST", "/fapi/v1/order"): _const(0),
    ("GET", "/fapi/v1/order"): _const(1),
    ("DELETE", "/fapi/v1/order"): _const(1),
    ("GET", "/fapi/v1/openOrders"): _by_symbol(1, 40),
    ("GET", "/fapi/v1/userTrades"): _const(5),
    ("GET", "/fapi/v1/positionSide/dual"): _const(30),
    ("POST", "/fapi/v1/positionSide/dual"): _const(1),
    ("POST", "/fapi/v1/leverage"): _const(1),
    ("POST", "/fapi/v1/marginType"): _const(1),
    ("GET", "/fapi/v1/income"): _const(30),
}


def request_weight(method: str, path: str, params: Mapping[str, str]) -> int:
    """Return Binance's IP weight of one request."""
    fn = WEIGHTS.get((method, path))
    return fn(params) if fn is not None else 1


def is_order_post(method: str, path: str) -> bool:
    return method == "POST" and path in ("/api/v3/order", "/fapi/v1/order")


class RollingWindow:
    """Sum of values added during the last `seconds` (an entry counts while age < seconds)."""

    def __init__(self, seconds: float, monotonic: Callable[[], float]) -> None:
        self.seconds = seconds
        self._monotonic = monotonic
        self._entries: deque[tuple[float, int]] = deque()
        self._total = 0

    def _expire(self) -> None:
        now = self._monotonic()
        while self._entries and now - self._entries[0][0] >= self.seconds:
            self._total -= self._entries.popleft()[1]

    def used(self) -> int:
        self._expire()
        return self._total

    def add(self, value: int) -> int:
        """Record `value` now and return the new total."""
        self._expire()
        if value:
            self._entries.append((self._monotonic(), value))
            self._total += value
        return self._total

    def seconds_until_below(self, level: int) -> float:
        """Return how long until the total drops to `level` or less (0 when it already is)."""
        self._expire()
        total = self._total
        if total <= level:
            return 0.0
        now = self._monotonic()
        for at, value in self._entries:
            total -= value
            if total <= level:
                return max(0.0, at + self.seconds - now)
        return self.seconds

    def clear(self) -> None:
        self._entries.clear()
        self._total = 0
