"""A small in-memory MarketDataSource for unit tests: counts calls, settles funding by the clock.

It stands in for the exchange; it is not the thing under test.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal

from bot.clock import SimulatedClock
from bot.domain import (
    FundingInfo,
    Instrument,
    MarketKind,
    OrderBook,
    Pair,
    Quote,
    SettledFunding,
)
from bot.errors import TemporaryError
from tests import kit

D = Decimal


class StandIn:
    """Serves BTC and ETH; funding settles every 8 h with rate 0.0001 × (hour of day + 1)."""

    def __init__(self, clock: SimulatedClock, publish_delay: timedelta = timedelta(0)) -> None:
        self.clock = clock
        self.calls: Counter[str] = Counter()
        self.history_calls: list[tuple[str, datetime]] = []
        self.publish_delay = publish_delay
        self.fail_history = False
        self.closed = False
        self._pairs = [kit.pair("BTC"), kit.pair("ETH")]

    def settled(self, symbol: str, since: datetime) -> list[SettledFunding]:
        now = self.clock.now()
        t = kit.T0 - timedelta(days=30)
        rows = []
        while t <= now - self.publish_delay:
            if t >= since:
                rows.append(SettledFunding(symbol, t, D("0.0001") * (t.hour + 1)))
            t += timedelta(hours=8)
        return rows

    async def load_instruments(self, *, reload: bool = False) -> Mapping[str, Instrument]:
        self.calls["load_instruments"] += 1
        return {i.symbol: i for p in self._pairs for i in (p.spot, p.perp)}

    async def pairs(self) -> Sequence[Pair]:
        self.calls["pairs"] += 1
        return self._pairs

    async def fetch_funding_snapshot(self) -> Mapping[str, FundingInfo]:
        self.calls["funding"] += 1
        now = self.clock.now()
        next_time = now.replace(minute=0, second=0, microsecond=0) + timedelta(
            hours=8 - now.hour % 8
        )
        return {
            p.perp.symbol: kit.funding(p.perp.symbol, "0.0002", at=now, next_funding_time=next_time)
            for p in self._pairs
        }

    async def fetch_best_quotes(self, kind: MarketKind) -> Mapping[str, Quote]:
        self.calls[f"quotes_{kind.value}"] += 1
        now = self.clock.now()
        if kind is MarketKind.SPOT:
            return {
                p.spot.symbol: kit.quote(p.spot.symbol, "100", "100.01", at=now)
                for p in self._pairs
            }
        return {
            p.perp.symbol: kit.quote(p.perp.symbol, "100", "100.1", at=now) for p in self._pairs
        }

    async def fetch_order_book(self, symbol: str, depth: int = 20) -> OrderBook:
        self.calls["book"] += 1
        return kit.book(symbol, [("100", "1")] * depth, [("100.1", "1")] * depth)

    async def fetch_volumes_24h(self, kind: MarketKind) -> Mapping[str, Decimal]:
        self.calls[f"volumes_{kind.value}"] += 1
        return {
            (p.spot if kind is MarketKind.SPOT else p.perp).symbol: D("1000000000")
            for p in self._pairs
        }

    async def fetch_funding_history(
        self, symbol: str, since: datetime, until: datetime | None = None
    ) -> Sequence[SettledFunding]:
        self.calls["history"] += 1
        self.history_calls.append((symbol, since))
        if self.fail_history:
            raise TemporaryError("fundingRate timed out")
        return self.settled(symbol, since)

    async def close(self) -> None:
        self.closed = True


class MemoryStore:
    def __init__(self, rows: Iterable[SettledFunding] = ()) -> None:
        self.rows = {(r.symbol, r.funding_time): r for r in rows}
        self.upserts = 0

    async def upsert(self, venue: str, rows: Iterable[SettledFunding]) -> int:
        self.upserts += 1
        new = [r for r in rows if (r.symbol, r.funding_time) not in self.rows]
        self.rows.update({(r.symbol, r.funding_time): r for r in new})
        return len(new)

    async def history(self, venue: str, symbol: str, limit: int = 100) -> list[SettledFunding]:
        rows = sorted(
            (r for r in self.rows.values() if r.symbol == symbol), key=lambda r: r.funding_time
        )
        return rows[-limit:]
