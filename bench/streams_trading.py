"""Orders, gap fills and funding for `bench_streams.py`: what the soak checks besides memory.

`Book` keeps what the bench "bot" recorded, the way the executor does: an order's outcome
from `create_order` (REST answer or the user stream's final report, whichever first), its
fills from `fetch_my_trades` keyed on (symbol, trade id) like the ledger, and, for an order
whose response and look-ups were lost while the user stream was down, the look-up by client
order id after the stream is back (the resync). At the end every order is checked against
the fake's own record of it.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from bot.domain import Order, OrderRequest, OrderType, Side
from bot.errors import OrderStatusUnknown
from bot.streams.exchange import StreamedExchange
from tests.fakes.fixtures import FakeBinanceProcess

USER_PREFIXES = ("/f/private/", "/ws-api")
ORDER_PATHS = {"spot": "/api/v3/order", "perp": "/fapi/v1/order"}


@dataclass
class Book:
    """What the bench recorded, per client order id and per (symbol, trade id)."""

    exchange: StreamedExchange
    fake: FakeBinanceProcess
    pairs: list[str]
    since: datetime = field(default_factory=lambda: datetime.now(UTC) - timedelta(minutes=1))
    orders: dict[str, Order] = field(default_factory=dict)
    in_flight: dict[str, str] = field(default_factory=dict)  # cid -> symbol, unresolved
    gap_cids: set[str] = field(default_factory=set)
    resolved_after_resync: int = 0
    fills: dict[tuple[str, str], tuple[str, Decimal]] = field(default_factory=dict)
    fills_offered: int = 0  # fills handed to the recorder (a repeat is not stored twice)
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    def _requests(self, tag: str) -> list[OrderRequest]:
        n = next(self._ids)
        base = self.pairs[n % len(self.pairs)]
        return [
            OrderRequest(base, Side.BUY, OrderType.MARKET, Decimal("0.1"), f"cb-{tag}-{n}-s"),
            OrderRequest(
                f"{base}:USDT", Side.SELL, OrderType.MARKET, Decimal("0.1"), f"cb-{tag}-{n}-p"
            ),
        ]

    async def trade(self) -> None:
        """One spot buy and one perpetual sell, recorded from their outcome."""
        for request in self._requests("t"):
            await self._record(await self.exchange.create_order(request))

    async def trade_in_gap(self) -> None:
        """Both legs while the user streams are down, each response and look-up lost."""
        for request in self._requests("gap"):
            path = ORDER_PATHS["perp" if ":" in request.symbol else "spot"]
            self.fake.control(
                "POST", "/_fake/faults", {"kind": "drop", "path": path, "method": "POST"}
            )
            self.fake.control(
                "POST",
                "/_fake/faults",
                {"kind": "server_error", "path": path, "method": "GET", "times": 3},
            )
            self.gap_cids.add(request.client_order_id)
            try:
                await self._record(await self.exchange.create_order(request))
            except OrderStatusUnknown:
                self.in_flight[request.client_order_id] = request.symbol

    async def resync(self) -> None:
        """Look up every order in flight by client order id (what the reconciler does)."""
        for cid, symbol in list(self.in_flight.items()):
            order = await self.exchange.fetch_order(symbol, cid)
            if order.status.is_final:
                del self.in_flight[cid]
                self.resolved_after_resync += 1
                await self._record(order)

    async def _record(self, order: Order) -> None:
        if order.client_order_id in self.orders:
            raise AssertionError(f"order {order.client_order_id} recorded twice")
        self.orders[order.client_order_id] = order
        if order.filled <= 0:
            return
        trades = await self.exchange.fetch_my_trades(order.symbol, self.since)
        for fill in trades:
            if fill.exchange_order_id != order.exchange_order_id:
                continue
            self.fills_offered += 1
            self.fills.setdefault(
                (fill.symbol, fill.trade_id), (order.client_order_id, fill.quantity)
            )

    async def check(self) -> dict[str, Any]:
        """Compare every recorded order with the exchange's REST answer for it."""
        duplicates, mismatched, overfilled = 0, 0, 0
        user = self.exchange.source.user
        recorded: dict[str, Decimal] = {}
        for cid, qty in self.fills.values():
            recorded[cid] = recorded.get(cid, Decimal(0)) + qty
        for cid, order in self.orders.items():
            truth = await self.exchange.live.fetch_order(order.symbol, cid)
            if truth.filled != order.filled:
                mismatched += 1
            if recorded.get(cid, Decimal(0)) != truth.filled:
                overfilled += 1
            streamed = user.final_order(cid) if user is not None else None
            if streamed is not None and streamed.filled > truth.filled:
                duplicates += 1  # the stream counted a trade twice
        return {
            "orders": len(self.orders),
            "gap_orders": len(self.gap_cids),
            "resolved_after_resync": self.resolved_after_resync,
            "unresolved": len(self.in_flight),
            "mismatched": mismatched,
            "stream_duplicates": duplicates,
            "fills_recorded": len(self.fills),
            "fills_offered": self.fills_offered,
            "fills_not_matching_exchange": overfilled,
            "stream_fills": self.exchange.stream_fills,
        }


@dataclass
class Funding:
    """Settle funding on the fake now and then; check the snapshot and the payments see it."""

    exchange: StreamedExchange
    fake: FakeBinanceProcess
    since: datetime = field(default_factory=lambda: datetime.now(UTC) - timedelta(minutes=1))
    expected: dict[str, datetime] = field(default_factory=dict)  # symbol -> next funding time
    settled: list[tuple[str, datetime]] = field(default_factory=list)
    seen: int = 0
    late: list[float] = field(default_factory=list)

    async def settle(self, symbols: list[str]) -> None:
        """Settle one period of each symbol (funding time = just now) and await the snapshot."""
        now = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
        for symbol in symbols:
            self.fake.control(
                "POST", "/_fake/funding", {"symbol": symbol, "next_funding_time": now.isoformat()}
            )
            self.fake.control("POST", "/_fake/funding/settle", {"symbol": symbol})
            state = self.fake.control(
                "POST", "/_fake/funding", {"symbol": symbol, "rate": "0.0003"}
            )
            self.expected[symbol] = datetime.fromisoformat(str(state["next_funding_time"]))
            self.settled.append((symbol, now))
        began = asyncio.get_running_loop().time()
        pending = set(symbols)
        while pending and asyncio.get_running_loop().time() - began < 15:
            snap = await self.exchange.source.fetch_funding_snapshot()
            for symbol in list(pending):
                info = snap.get(symbol)
                if info is not None and info.next_funding_time == self.expected[symbol]:
                    pending.discard(symbol)
                    self.seen += 1
            await asyncio.sleep(0.1)
        self.late.append(asyncio.get_running_loop().time() - began)

    async def check(self) -> dict[str, Any]:
        payments = await self.exchange.fetch_funding_payments(self.since)
        keys = {(p.symbol, p.funding_time) for p in payments}
        return {
            "settlements": len(self.settled),
            "seen_in_snapshot": self.seen,
            "slowest_seen_s": max(self.late, default=0.0),
            "payments": len(payments),
            "distinct_payments": len(keys),
            "missed_payments": sum(1 for k in self.settled if k not in keys),
        }
