"""A settable in-memory market-data source (a stand-in for the exchange's public data).

Tests set prices, depth and funding per pair; `PaperExchange` trades against it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal

from bot.clock import Clock
from bot.domain import (
    FundingInfo,
    Instrument,
    MarketKind,
    OrderBook,
    Pair,
    Quote,
    SettledFunding,
)
from bot.errors import BadResponseError
from tests import kit

D = Decimal


class StaticMarketSource:
    """Serve quotes, deep books and funding for a few pairs, all at the clock's time."""

    def __init__(
        self, clock: Clock, bases: Sequence[str] = ("BTC",), prices: Mapping[str, str] | None = None
    ) -> None:
        self.clock = clock
        self.pairs_ = [kit.pair(b) for b in bases]
        self.prices: dict[str, Decimal] = {
            b: D((prices or {}).get(b, "50000" if b == "BTC" else "2500")) for b in bases
        }
        self.perp_premium: dict[str, Decimal] = {b: D(0) for b in bases}
        self.rates: dict[str, Decimal] = {b: D("0.0001") for b in bases}
        self.history: dict[str, list[SettledFunding]] = {p.perp.symbol: [] for p in self.pairs_}
        self.depth_qty: dict[str, Decimal] = {}
        self.calls: list[str] = []
        self.failing = False

    # --- test controls ----------------------------------------------------------------
    def set_price(self, base: str, price: str, perp_premium: str = "0") -> None:
        self.prices[base] = D(price)
        self.perp_premium[base] = D(perp_premium)

    def settle(self, base: str, at: datetime, rate: str) -> None:
        pair = self._pair(base)
        self.history[pair.perp.symbol].append(
            SettledFunding(pair.perp.symbol, at, D(rate), self._perp_price(base))
        )

    # --- MarketDataSource -------------------------------------------------------------
    async def load_instruments(self, *, reload: bool = False) -> Mapping[str, Instrument]:
        self._call("load_instruments")
        out: dict[str, Instrument] = {}
        for p in self.pairs_:
            out[p.spot.symbol] = p.spot
            out[p.perp.symbol] = p.perp
        return out

    async def pairs(self) -> Sequence[Pair]:
        return list(self.pairs_)

    async def fetch_funding_snapshot(self) -> Mapping[str, FundingInfo]:
        self._call("funding")
        now = self.clock.now()
        nxt = now.replace(minute=0, second=0, microsecond=0)
        nxt += timedelta(hours=8 - nxt.hour % 8)
        return {
            p.perp.symbol: FundingInfo(
                p.perp.symbol,
                self.rates[p.base],
                nxt,
                8,
                self._perp_price(p.base),
                self.prices[p.base],
                D("0.0001"),
                now,
            )
            for p in self.pairs_
        }

    async def fetch_best_quotes(self, kind: MarketKind) -> Mapping[str, Quote]:
        self._call(f"quotes:{kind.value}")
        now = self.clock.now()
        out = {}
        for p in self.pairs_:
            inst = p.spot if kind is MarketKind.SPOT else p.perp
            mid = self.prices[p.base] if kind is MarketKind.SPOT else self._perp_price(p.base)
            out[inst.symbol] = Quote(inst.symbol, mid, mid + inst.tick_size, D(100), D(100), now)
        return out

    async def fetch_order_book(self, symbol: str, depth: int = 20) -> OrderBook:
        self._call(f"book:{symbol}")
        pair = next((p for p in self.pairs_ if symbol in (p.spot.symbol, p.perp.symbol)), None)
        if pair is None:
            raise BadResponseError(f"unknown symbol {symbol}")
        inst = pair.spot if symbol == pair.spot.symbol else pair.perp
        mid = self.prices[pair.base] if inst is pair.spot else self._perp_price(pair.base)
        qty = self.depth_qty.get(symbol, D(1000))
        bids = tuple((mid - inst.tick_size * i, qty) for i in range(depth))
        asks = tuple((mid + inst.tick_size * (i + 1), qty) for i in range(depth))
        return OrderBook(symbol, bids, asks, self.clock.now())

    async def fetch_volumes_24h(self, kind: MarketKind) -> Mapping[str, Decimal]:
        return {
            (p.spot if kind is MarketKind.SPOT else p.perp).symbol: D(10**9) for p in self.pairs_
        }

    async def fetch_funding_history(
        self, symbol: str, since: datetime, until: datetime | None = None
    ) -> Sequence[SettledFunding]:
        end = min(until or self.clock.now(), self.clock.now())
        return [r for r in self.history.get(symbol, []) if since <= r.funding_time <= end]

    async def close(self) -> None:
        return None

    def _perp_price(self, base: str) -> Decimal:
        return self.prices[base] + self.perp_premium[base]

    def _pair(self, base: str) -> Pair:
        return next(p for p in self.pairs_ if p.base == base)

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if self.failing:
            from bot.errors import TemporaryError

            raise TemporaryError("source offline (test)")
