"""A rolling one-minute weight window per market, charging Binance's documented weights.

The weights themselves are the product's table (`bot.exchange.weights`): one source.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from enum import StrEnum

WINDOW_SECONDS = 60.0


class Market(StrEnum):
    SPOT = "spot"
    FUTURES = "futures"


def market_of(path: str) -> Market:
    """Return which Binance system (and so which weight budget) serves `path`."""
    # COIN-M (dapi) has its own budget at Binance; the fake counts it with USDⓈ-M.
    return Market.FUTURES if path.startswith(("/fapi/", "/futures/", "/dapi/")) else Market.SPOT


def is_order_post(method: str, path: str) -> bool:
    return method == "POST" and path in ("/api/v3/order", "/fapi/v1/order", "/dapi/v1/order")


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
