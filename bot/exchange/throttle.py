"""Pacing against Binance's budgets: request weight, order counts, Retry-After and bans.

ccxt's own limiter is off (its leaky bucket delays the second hedge leg by ~190 ms). Instead,
per venue (spot, USDⓈ-M):
- market data and account reads wait in a rolling one-minute weight window sized at
  budget × headroom; the exchange's `X-MBX-USED-WEIGHT-1M` is folded into that window, so
  traffic we did not send (another process on the same IP) slows us down too;
- order requests never wait for weight: they only count in the window (so market data
  leaves them room) and wait on the order-count budget;
- after HTTP 429 nothing is sent to that venue before `Retry-After` has passed: market data
  waits, orders raise `RateLimitedError`; after 418 nothing is sent until the ban ends.
All waiting uses the injected clock.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from asyncio_throttle.throttler import Throttler

from bot.clock import Clock
from bot.config import ExchangeConfig
from bot.errors import BannedError, RateLimitedError
from bot.exchange.translate import DEFAULT_RETRY_AFTER
from bot.exchange.weights import Venue, endpoint, is_order_endpoint, request_weight, venue_of


class WeightThrottler(Throttler):
    """asyncio-throttle's sliding-window log, counting weights and reading the injected clock."""

    def __init__(self, rate_limit: int, period: float, clock: Clock) -> None:
        super().__init__(rate_limit, period)
        self.period: float = period
        self._clock = clock
        self._log: deque[tuple[float, int]] = deque()
        self._used = 0

    def flush(self) -> None:
        now = self._clock.monotonic()
        while self._log and now - self._log[0][0] >= self.period:
            self._used -= self._log.popleft()[1]

    def used(self) -> int:
        self.flush()
        return self._used

    def record(self, weight: int) -> None:
        """Count `weight` now without waiting."""
        self.flush()
        if weight > 0:
            self._log.append((self._clock.monotonic(), weight))
            self._used += weight

    def wait_time(self, weight: int) -> float:
        """Return how long until `weight` more fits in the window (0: it fits now)."""
        self.flush()
        weight = min(weight, self.rate_limit)
        excess = self._used + weight - self.rate_limit
        if excess <= 0:
            return 0.0
        now = self._clock.monotonic()
        for at, w in self._log:
            excess -= w
            if excess <= 0:
                return max(at + self.period - now, 1e-3)
        return self.period

    async def acquire(self, weight: int = 1) -> None:
        """Wait until `weight` fits in the window, then count it."""
        while (wait := self.wait_time(weight)) > 0:
            await self._clock.sleep(wait)
        self.record(min(weight, self.rate_limit))


@dataclass(frozen=True, slots=True)
class Budget:
    """Binance's limits for one venue."""

    weight_per_minute: int
    orders: int
    orders_period_seconds: float


@dataclass(frozen=True, slots=True)
class BanNotice:
    """A 418 just received: the adapter turns it into an alert event."""

    venue: Venue
    retry_after: float


class VenueGate:
    """The budgets and blocks of one venue."""

    def __init__(self, venue: Venue, budget: Budget, headroom: Decimal, clock: Clock) -> None:
        self.venue = venue
        self._clock = clock
        self.weight = WeightThrottler(max(1, int(budget.weight_per_minute * headroom)), 60.0, clock)
        self.orders = WeightThrottler(budget.orders, budget.orders_period_seconds, clock)
        self._blocked_until = -math.inf
        self._banned_until = -math.inf

    def _check_ban(self) -> None:
        remaining = self._banned_until - self._clock.monotonic()
        if remaining > 0:
            raise BannedError(
                f"{self.venue} API banned (HTTP 418); nothing is sent for {remaining:.0f} s",
                until=self._clock.now() + timedelta(seconds=remaining),
                retry_after=remaining,
            )

    async def before_data(self, weight: int) -> None:
        """Wait for Retry-After and for room in the weight window; raise during a ban."""
        self._check_ban()
        while (remaining := self._blocked_until - self._clock.monotonic()) > 0:
            await self._clock.sleep(remaining)
            self._check_ban()
        await self.weight.acquire(weight)

    async def before_order(self, weight: int, *, counts_as_order: bool) -> None:
        """Raise during a ban or Retry-After; wait only for the order-count budget."""
        self._check_ban()
        remaining = self._blocked_until - self._clock.monotonic()
        if remaining > 0:
            raise RateLimitedError(
                f"{self.venue} API rate-limited (HTTP 429); retry in {remaining:.1f} s",
                retry_after=remaining,
            )
        if counts_as_order:
            await self.orders.acquire(1)
        self.weight.record(weight)

    def observe_used_weight(self, used: int) -> None:
        """Fold the exchange's count into the window: what we did not send still counts."""
        missing = used - self.weight.used()
        if missing > 0:
            self.weight.record(missing)

    def observe_order_count(self, used: int) -> None:
        missing = used - self.orders.used()
        if missing > 0:
            self.orders.record(missing)

    def block(self, retry_after: float) -> None:
        """Send nothing before `retry_after` seconds from now (HTTP 429)."""
        self._blocked_until = max(self._blocked_until, self._clock.monotonic() + retry_after)

    def ban(self, retry_after: float) -> None:
        """Send nothing before the ban ends (HTTP 418)."""
        self._banned_until = max(self._banned_until, self._clock.monotonic() + retry_after)
        self.block(retry_after)


class Pacer:
    """Route every request to its venue's gate, before sending and after the response."""

    def __init__(self, gates: Mapping[Venue, VenueGate]) -> None:
        self.gates = dict(gates)
        self._notices: list[BanNotice] = []

    @classmethod
    def from_config(cls, config: ExchangeConfig, clock: Clock) -> Pacer:
        headroom = config.weight_headroom
        spot = Budget(config.spot_weight_per_minute, config.spot_orders_per_10s, 10.0)
        futures = Budget(config.futures_weight_per_minute, config.futures_orders_per_minute, 60.0)
        coinm = Budget(config.coinm_weight_per_minute, config.coinm_orders_per_minute, 60.0)
        return cls(
            {
                Venue.SPOT: VenueGate(Venue.SPOT, spot, headroom, clock),
                Venue.FUTURES: VenueGate(Venue.FUTURES, futures, headroom, clock),
                Venue.COINM: VenueGate(Venue.COINM, coinm, headroom, clock),
            }
        )

    async def before(self, api: Any, method: str, path: str, params: Mapping[str, Any]) -> None:
        """Wait (or raise) until the request may be sent; count its weight."""
        full = endpoint(api, path)
        gate = self.gates[venue_of(full)]
        weight = request_weight(method, full, params)
        if is_order_endpoint(full):
            await gate.before_order(weight, counts_as_order=method == "POST")
        else:
            await gate.before_data(weight)

    def after(
        self,
        path: str,
        status: int,
        *,
        used_weight: float | None,
        order_count: float | None,
        retry_after: float | None,
    ) -> None:
        """Learn from one response: the exchange's counts, 429 Retry-After, 418 bans."""
        gate = self.gates[venue_of(path)]
        if used_weight is not None:
            gate.observe_used_weight(int(used_weight))
        if order_count is not None:
            gate.observe_order_count(int(order_count))
        if status == 418:
            wait = retry_after or DEFAULT_RETRY_AFTER
            gate.ban(wait)
            self._notices.append(BanNotice(gate.venue, wait))
        elif status == 429:
            gate.block(retry_after or DEFAULT_RETRY_AFTER)

    def take_ban_notices(self) -> list[BanNotice]:
        """Return and forget the 418s received since the last call."""
        notices, self._notices = self._notices, []
        return notices
