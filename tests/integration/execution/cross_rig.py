"""The real executor over a VenueRouter: spot on the fake Bitstamp, the short on the fake
Binance, both through real ccxt, one SimulatedClock for everything.

With `bitstamp_stream=True` the spot venue is a `BitstampStreamingSource` with Bitstamp's
user stream (ccxt.pro against the fake's WebSocket), as live mode builds it: an order's
outcome is the first of its REST answer and the stream's report. The streams' heartbeats,
watchdogs and backoffs run on real intervals (`StreamClock`) while their signatures carry
the simulated time the fake checks: the executor's simulated waits (instant) must not look
like a silent connection.

`assert_*` helpers read the two fakes' own accounts, never the bot's view of them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest

from bot.clock import SimulatedClock
from bot.config import RiskConfig, config_from_dict
from bot.domain import Hedge, HedgeState, ListEventSink, MarketKind, OrderStatus, Pair, Quote
from bot.errors import OrderNotFound
from bot.exchange.venues import VenueRouter
from bot.execution.executor import HedgeExecutor
from bot.execution.sizing import common_step
from bot.persistence.repositories import Ledger
from bot.reconcile import Reconciler
from bot.streams.bitstamp_source import BitstampStreamingSource
from bot.streams.cross import bitstamp_source
from tests import kit
from tests.fakes.binance_server import FakeBinance
from tests.fakes.bitstamp_fixtures import bitstamp_for, bitstamp_instruments, seed_bitstamp
from tests.fakes.bitstamp_server import DEFAULT_API_KEY, DEFAULT_API_SECRET, FakeBitstamp
from tests.fakes.bitstamp_streams import USER_ID
from tests.fakes.fixtures import live_for, seed, standard_instruments
from tests.integration.streams.conftest import wait_for
from tests.support.paper_stack import Stack, build_stack

D = Decimal
PERP_ORDER = "/fapi/v1/order"


class StreamClock:
    """The simulated wall time (what signatures carry) with real intervals and sleeps."""

    def __init__(self, simulated: SimulatedClock) -> None:
        self._simulated = simulated

    def now(self) -> datetime:
        return self._simulated.now()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


def spot_order_path(pair: Pair, side: str = "buy") -> str:
    return f"/api/v2/{side}/market/{pair.spot.exchange_symbol}/"


@dataclass
class CrossRig:
    binance: FakeBinance
    bitstamp: FakeBitstamp
    clock: SimulatedClock
    router: VenueRouter
    ledger: Ledger
    stack: Stack
    pair: Pair
    stream: BitstampStreamingSource | None = None

    @property
    def executor(self) -> HedgeExecutor:
        return self.stack.executor

    async def quotes(self) -> tuple[Quote, Quote]:
        spot = (await self.router.fetch_best_quotes(MarketKind.SPOT))[self.pair.spot.symbol]
        perp = (await self.router.fetch_best_quotes(MarketKind.PERPETUAL))[self.pair.perp.symbol]
        return spot, perp

    async def open(
        self, notional: str = "1000", *, inject: Callable[[], None] | None = None
    ) -> Hedge | None:
        """Open a hedge; `inject` runs after the quotes are read, before anything is sent."""
        spot_q, perp_q = await self.quotes()
        if inject is not None:
            inject()
        self.binance.clear_requests()
        self.bitstamp.clear_requests()
        return await self.executor.open(
            self.pair, D(notional), reason="test", metrics={}, spot_quote=spot_q,
            perp_quote=perp_q,
        )  # fmt: skip

    async def reconcile(self) -> Any:
        reconciler = Reconciler(
            self.router, self.ledger, self.executor, self.clock, ListEventSink(),
            {self.pair.key: self.pair},
        )  # fmt: skip
        return await reconciler.run(startup=True)

    # --- the servers' accounts ----------------------------------------------------------
    def server_spot(self) -> Decimal:
        bal = self.bitstamp.account.spot_balances().get(self.pair.base)
        return bal.total if bal else D(0)

    def server_short(self) -> Decimal:
        positions = [
            p for p in self.binance.account.positions() if p.symbol == self.pair.perp.symbol
        ]
        assert all(p.is_short for p in positions), f"a long appeared: {positions}"
        return sum((p.size for p in positions), D(0))

    def assert_no_naked_leg(self) -> None:
        """|spot on Bitstamp − short on Binance| is at most one common step."""
        step = common_step(self.pair)
        spot, short = self.server_spot(), self.server_short()
        assert abs(spot - short) <= step, f"Bitstamp spot {spot} vs Binance short {short}"

    def assert_flat(self) -> None:
        assert self.server_short() == 0
        assert self.server_spot() < self.pair.spot.step_size

    async def assert_ledger_matches(self, hedge: Hedge) -> None:
        """Every ledger order agrees with the venue that holds it, fills are recorded once,
        and the hedge's quantities are what the two venues hold."""
        got = await self.ledger.hedges.get(hedge.id)
        assert got is not None
        fills = await self.ledger.fills.for_hedge(hedge.id)
        keys = [(f.symbol, f.trade_id) for f in fills]
        assert len(keys) == len(set(keys)), "a fill was recorded twice"
        for record in await self.ledger.orders.for_hedge(hedge.id):
            account = (
                self.bitstamp.account if record.symbol == self.pair.spot.symbol
                else self.binance.account
            )  # fmt: skip
            try:
                server = account.fetch_order(record.symbol, record.client_order_id)
            except OrderNotFound:
                assert record.status in (OrderStatus.REJECTED, OrderStatus.UNKNOWN), record
                assert record.filled == 0
                continue
            status = server.status
            if account is self.bitstamp.account and status is OrderStatus.EXPIRED:
                status = OrderStatus.CANCELED  # Bitstamp has no "expired": it says Canceled
            assert (record.status, record.filled, record.exchange_order_id) == (
                status, server.filled, server.exchange_order_id,
            ), record.client_order_id  # fmt: skip
            server_trades = {
                f.trade_id for f in account.my_trades(record.symbol)
                if f.exchange_order_id == server.exchange_order_id
            }  # fmt: skip
            mine = [f for f in fills if f.client_order_id == record.client_order_id]
            assert {f.trade_id for f in mine} == server_trades, record.client_order_id
        assert got.spot_quantity == self.server_spot()
        assert got.perp_quantity == self.server_short()
        if got.state is HedgeState.OPEN:
            self.assert_no_naked_leg()
        elif got.state in (HedgeState.CLOSED, HedgeState.FAILED):
            self.assert_flat()


def _streaming(
    rest: Any, fake: FakeBitstamp, clock: SimulatedClock, symbol: str, timeout_ms: int
) -> BitstampStreamingSource:
    config = config_from_dict(
        {
            "venues": {"spot": "bitstamp", "bitstamp_api_url": fake.url,
                       "bitstamp_ws_url": fake.ws_url, "bitstamp_timeout_ms": timeout_ms},
            "universe": {"symbols": [symbol]},
            "streams": {"silence_seconds": 2.0, "reconnect_max_backoff_seconds": 0.4},
        }
    )  # fmt: skip
    return bitstamp_source(
        rest, config, StreamClock(clock), api_key=DEFAULT_API_KEY, api_secret=DEFAULT_API_SECRET
    )


async def _user_stream_live(
    stream: BitstampStreamingSource, fake: FakeBitstamp, symbol: str
) -> None:
    await stream.start()
    await wait_for(lambda: stream.user is not None and stream.user.live(), timeout=5)
    pair = symbol.replace("/", "").lower()
    channels = {f"private-my_orders_{pair}-{USER_ID}", f"private-my_trades_{pair}-{USER_ID}"}
    await wait_for(lambda: channels <= fake.streams.subscribed(), timeout=5)


CrossRigFactory = Callable[..., Awaitable[CrossRig]]


@pytest.fixture
async def cross_rig_factory(ledger: Ledger) -> AsyncIterator[CrossRigFactory]:
    """Build a CrossRig: `await cross_rig_factory(spot_symbol="BTC/USD", ...)`."""
    opened: list[tuple[FakeBinance, FakeBitstamp, VenueRouter]] = []

    async def build(
        *,
        spot_symbol: str = "BTC/USDT",
        risk: RiskConfig | None = None,
        bitstamp_timeout_ms: int = 10000,
        bitstamp_stream: bool = False,
        **binance_config: Any,
    ) -> CrossRig:
        clock = SimulatedClock(kit.T0)
        binance = FakeBinance(standard_instruments(kit.T0), clock=clock)
        bitstamp = FakeBitstamp(bitstamp_instruments(), clock=clock)
        await binance.start()
        await bitstamp.start()
        seed(binance)
        seed_bitstamp(bitstamp)
        rest = bitstamp_for(bitstamp, clock=clock, bitstamp_timeout_ms=bitstamp_timeout_ms)
        stream = None
        if bitstamp_stream:
            stream = _streaming(rest, bitstamp, clock, spot_symbol, bitstamp_timeout_ms)
        router = VenueRouter(
            stream or rest,
            live_for(binance, clock=clock, **binance_config),
            venue="bitstamp+binance",
            clock=clock,
        )
        opened.append((binance, bitstamp, router))
        if stream is not None:
            stream.pair_source = router.pairs
            await _user_stream_live(stream, bitstamp, spot_symbol)
        stack = await build_stack(ledger, exchange=router, clock=clock, risk=risk)
        pair = next(p for p in await router.pairs() if p.key == spot_symbol)
        return CrossRig(binance, bitstamp, clock, router, ledger, stack, pair, stream)

    try:
        yield build
    finally:
        for binance, bitstamp, router in opened:
            await router.close()
            await binance.stop()
            await bitstamp.stop()
