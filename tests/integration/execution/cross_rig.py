"""The real executor over a VenueRouter: spot on the fake Bitstamp, the short on the fake
Binance, both through real ccxt, one SimulatedClock for everything.

`assert_*` helpers read the two fakes' own accounts, never the bot's view of them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from bot.clock import SimulatedClock
from bot.config import RiskConfig
from bot.domain import Hedge, HedgeState, ListEventSink, MarketKind, OrderStatus, Pair, Quote
from bot.errors import OrderNotFound
from bot.exchange.venues import VenueRouter
from bot.execution.executor import HedgeExecutor
from bot.execution.sizing import common_step
from bot.persistence.repositories import Ledger
from bot.reconcile import Reconciler
from tests import kit
from tests.fakes.binance_server import FakeBinance
from tests.fakes.bitstamp_fixtures import bitstamp_for, bitstamp_instruments, seed_bitstamp
from tests.fakes.bitstamp_server import FakeBitstamp
from tests.fakes.fixtures import live_for, seed, standard_instruments
from tests.support.paper_stack import Stack, build_stack

D = Decimal
PERP_ORDER = "/fapi/v1/order"


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
        **binance_config: Any,
    ) -> CrossRig:
        clock = SimulatedClock(kit.T0)
        binance = FakeBinance(standard_instruments(kit.T0), clock=clock)
        bitstamp = FakeBitstamp(bitstamp_instruments(), clock=clock)
        await binance.start()
        await bitstamp.start()
        seed(binance)
        seed_bitstamp(bitstamp)
        router = VenueRouter(
            bitstamp_for(bitstamp, clock=clock, bitstamp_timeout_ms=bitstamp_timeout_ms),
            live_for(binance, clock=clock, **binance_config),
            venue="bitstamp+binance",
            clock=clock,
        )
        opened.append((binance, bitstamp, router))
        stack = await build_stack(ledger, exchange=router, clock=clock, risk=risk)
        pair = next(p for p in await router.pairs() if p.key == spot_symbol)
        return CrossRig(binance, bitstamp, clock, router, ledger, stack, pair)

    try:
        yield build
    finally:
        for binance, bitstamp, router in opened:
            await router.close()
            await binance.stop()
            await bitstamp.stop()
