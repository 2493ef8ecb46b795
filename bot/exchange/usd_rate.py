"""The USDT/USD rate (USD per USDT) at a fill's time: `RateHistory` and `UsdRates`.

Every USDT/USD quote the router sees (a poll, a stream update, a book read) is one
observation; a fill is converted at the observation nearest to its own timestamp. At most
one observation is kept per `RESOLUTION_SECONDS` (the latest of that second) and the
oldest half is dropped past `MAX_OBSERVATIONS` (a day at one a second).
"""

from __future__ import annotations

import logging
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from decimal import Decimal

from bot.errors import CarrybotError

log = logging.getLogger(__name__)

RESOLUTION_SECONDS = 1.0
MAX_OBSERVATIONS = 86_400


class RateHistory:
    """USDT/USD mids by time (UTC), nearest-in-time lookup."""

    def __init__(self, max_observations: int = MAX_OBSERVATIONS) -> None:
        self._times: list[float] = []
        self._rates: list[Decimal] = []
        self._max = max(2, max_observations)

    def __len__(self) -> int:
        return len(self._times)

    def observe(self, at: datetime, rate: Decimal) -> None:
        """Record the rate seen at `at` (an older time than the last one is ignored)."""
        t = at.timestamp()
        if self._times and t < self._times[-1]:
            return
        if self._times and t - self._times[-1] < RESOLUTION_SECONDS:
            self._rates[-1] = rate
            return
        self._times.append(t)
        self._rates.append(rate)
        if len(self._times) > self._max:
            half = len(self._times) // 2
            del self._times[:half], self._rates[:half]

    def nearest(self, at: datetime) -> tuple[Decimal, timedelta] | None:
        """The observation nearest to `at` and how far from it, or None before the first."""
        if not self._times:
            return None
        t = at.timestamp()
        i = bisect_left(self._times, t)
        candidates = [j for j in (i - 1, i) if 0 <= j < len(self._times)]
        best = min(candidates, key=lambda j: abs(self._times[j] - t))
        return self._rates[best], timedelta(seconds=abs(self._times[best] - t))

    def at(self, when: datetime, tolerance: timedelta) -> Decimal | None:
        """The rate observed within `tolerance` of `when` (the nearest), else None."""
        found = self.nearest(when)
        if found is None or found[1] > tolerance:
            return None
        return found[0]


MATCH = timedelta(seconds=5)  # an observation this close to a fill is its rate
CACHE = 10_000  # fills whose rate is remembered, so a fill read again converts the same


class UsdRates:
    """The rate in use and the rate at a given time, reading the book when none is near.

    `at(when)`: the observation within MATCH of `when`; else, for a time within MATCH of
    now (a fill just made), the USDT/USD book read now (`read_now`); else the venue's
    history of the rate at that minute (`read_at`: Bitstamp's 1-minute USDT/USD bar, e.g.
    for a fill made while the bot was down); else the nearest observation at any distance
    (logged); else the book now. `key` (symbol, trade id) pins a fill's rate once found.
    """

    def __init__(
        self,
        now: Callable[[], datetime],
        read_now: Callable[[], Awaitable[Decimal | None]],
        read_at: Callable[[datetime], Awaitable[Decimal | None]] | None = None,
    ) -> None:
        self.history = RateHistory()
        self.latest: Decimal | None = None
        self._now = now
        self._read_now = read_now
        self._read_at = read_at
        self._pinned: OrderedDict[tuple[str, ...], Decimal] = OrderedDict()

    def observe(self, at: datetime, rate: Decimal) -> None:
        self.latest = rate
        self.history.observe(at, rate)

    async def fresh(self) -> Decimal | None:
        """Read the book now and record it (None when it has no usable mid)."""
        rate = await self._read_now()
        if rate is not None:
            self.observe(self._now(), rate)
        return rate

    async def at(self, when: datetime | None, key: tuple[str, ...] | None = None) -> Decimal | None:
        """The USD per USDT rate at `when` (None: no rate could be had)."""
        if key is not None and key in self._pinned:
            return self._pinned[key]
        now = self._now()
        when = when or now
        rate = self.history.at(when, MATCH)
        if rate is None and abs(now - when) <= MATCH:
            rate = await self.fresh()
        if rate is None and self._read_at is not None:
            try:
                rate = await self._read_at(when)
            except CarrybotError as exc:
                log.warning("USDT/USD at %s not read from the venue's history: %s", when, exc)
        if rate is None:
            nearest = self.history.nearest(when)
            if nearest is not None:
                rate, away = nearest
                log.info(
                    "USDT/USD at %s: none seen within %ss; using the one %.0fs away",
                    when.isoformat(), MATCH.seconds, away.total_seconds(),
                )  # fmt: skip
            else:
                rate = await self.fresh()
        if rate is not None and key is not None:
            self._pinned[key] = rate
            if len(self._pinned) > CACHE:
                self._pinned.popitem(last=False)
        return rate
