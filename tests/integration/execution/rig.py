"""The real executor over the real LiveExchange (ccxt) on the in-process fake Binance.

One `Rig` per test: a fake Binance seeded with BTC/ETH books and 10 000 USDT a wallet, in
one-way or hedge mode; a keyed LiveExchange on it; AccountSetup and HedgeExecutor over a
real ledger. `rig_factory` is parametrized over the short leg: every test runs on the
perpetual and again on the BTC quarterly (same filters and book), so each case of the fault
matrix has its dated counterpart. Everything (fake, adapter, executor, ledger) shares one SimulatedClock, so
backoffs, lookups and Retry-After pass instantly; only ccxt's signatures use real time.

The `assert_*` helpers read the fake's simulated account, never the bot's view of it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from bot.clock import SimulatedClock
from bot.config import ExchangeConfig, RiskConfig
from bot.domain import (
    Hedge,
    HedgeState,
    Instrument,
    MarketKind,
    OrderStatus,
    Pair,
    PositionMode,
    Quote,
)
from bot.domain.instruments import dated_pairs
from bot.errors import OrderNotFound
from bot.exchange.ccxt_live import LiveExchange
from bot.execution.executor import HedgeExecutor
from bot.execution.sizing import common_step
from bot.persistence.repositories import Ledger
from tests import kit
from tests.fakes.binance_server import FakeBinance, LoggedRequest
from tests.fakes.fixtures import live_for, seed, standard_instruments
from tests.support.paper_stack import Stack, build_stack

D = Decimal
T0 = kit.T0
SPOT_ORDER, PERP_ORDER = "/api/v3/order", "/fapi/v1/order"
SIGNING = {"timestamp", "signature", "recvWindow"}


@dataclass
class Rig:
    fake: FakeBinance
    clock: SimulatedClock
    live: LiveExchange
    ledger: Ledger
    stack: Stack
    pair: Pair

    @property
    def executor(self) -> HedgeExecutor:
        return self.stack.executor

    async def quotes(self) -> tuple[Quote, Quote]:
        spot = (await self.live.fetch_best_quotes(MarketKind.SPOT))[self.pair.spot.symbol]
        perp = (await self.live.fetch_best_quotes(self.pair.perp.kind))[self.pair.perp.symbol]
        return spot, perp

    async def open(self, notional: str = "1000") -> Hedge | None:
        spot_q, perp_q = await self.quotes()
        self.fake.clear_requests()
        return await self.stack.executor.open(
            self.pair,
            D(notional),
            reason="test",
            metrics={"apr": D("0.2")},
            spot_quote=spot_q,
            perp_quote=perp_q,
        )

    def order_posts(self, path: str) -> list[dict[str, str]]:
        """The order POSTs that reached the server on `path`, without signing parameters."""
        return [
            {k: v for k, v in r.params.items() if k not in SIGNING}
            for r in self.fake.requests_to(path, "POST")
        ]

    def requests(self, path: str, method: str) -> list[LoggedRequest]:
        return self.fake.requests_to(path, method)

    # --- the server's account ---------------------------------------------------------
    def server_spot(self) -> Decimal:
        """BTC held in the server's spot wallet (free + locked)."""
        bal = self.fake.account.spot_balances().get(self.pair.base)
        return bal.total if bal else D(0)

    def server_short(self) -> Decimal:
        """Size of the server's short on the perpetual; a long would fail the test."""
        positions = [p for p in self.fake.account.positions() if p.symbol == self.pair.perp.symbol]
        assert all(p.is_short for p in positions), f"a long appeared: {positions}"
        return sum((p.size for p in positions), D(0))

    def server_orders(self, symbol: str) -> list[dict[str, Any]]:
        return [o for o in self.fake.account.to_state()["orders"] if o["symbol"] == symbol]

    def assert_balanced(self) -> None:
        """|spot - short| on the server is at most one common step."""
        step = common_step(self.pair)
        spot, short = self.server_spot(), self.server_short()
        assert abs(spot - short) <= step, f"server spot {spot} vs short {short} (step {step})"

    def assert_flat(self) -> None:
        """No short on the server and only spot dust (less than one spot step)."""
        assert self.server_short() == 0
        assert self.server_spot() < self.pair.spot.step_size

    async def assert_ledger_matches(self, hedge: Hedge) -> None:
        """Every ledger order agrees with the server's, fills are recorded once, and the hedge's
        state and quantities are what the server holds."""
        got = await self.ledger.hedges.get(hedge.id)
        assert got is not None
        records = await self.ledger.orders.for_hedge(hedge.id)
        ledger_fills = await self.ledger.fills.for_hedge(hedge.id)
        trade_keys = [(f.symbol, f.trade_id) for f in ledger_fills]
        assert len(trade_keys) == len(set(trade_keys)), "a fill was recorded twice"
        for record in records:
            try:
                server = self.fake.account.fetch_order(record.symbol, record.client_order_id)
            except OrderNotFound:
                assert record.status is OrderStatus.REJECTED, record
                assert record.filled == 0
                continue
            assert (record.status, record.filled, record.exchange_order_id) == (
                server.status,
                server.filled,
                server.exchange_order_id,
            ), record.client_order_id
            server_trades = {
                f.trade_id
                for f in self.fake.account.my_trades(record.symbol)
                if f.exchange_order_id == server.exchange_order_id
            }
            mine = [f for f in ledger_fills if f.client_order_id == record.client_order_id]
            assert {f.trade_id for f in mine} == server_trades, record.client_order_id
            assert sum((f.quantity for f in mine), D(0)) == server.filled
        assert got.spot_quantity == self.server_spot()
        assert got.perp_quantity == self.server_short()
        if got.state is HedgeState.OPEN:
            assert got.perp_quantity > 0
            self.assert_balanced()
        elif got.state in (HedgeState.CLOSED, HedgeState.FAILED):
            self.assert_flat()


RigFactory = Callable[..., Awaitable[Rig]]


SHORT_LEGS = ["perpetual", "quarterly"]


@pytest.fixture(params=SHORT_LEGS)
async def rig_factory(ledger: Ledger, request: pytest.FixtureRequest) -> AsyncIterator[RigFactory]:
    """Build a Rig: `await rig_factory(mode=PositionMode.HEDGE, timeout_ms=200, ...)`.

    The rig's pair shorts the perpetual, or the base's first dated future (`quarterly`).
    """
    short_leg: str = request.param
    opened: list[tuple[FakeBinance, LiveExchange]] = []

    async def build(
        *,
        mode: PositionMode = PositionMode.ONE_WAY,
        risk: RiskConfig | None = None,
        futures_usdt: str | None = None,
        base: str = "BTC",
        instruments: Sequence[Instrument] | None = None,
        **config: Any,
    ) -> Rig:
        clock = SimulatedClock(T0)
        fake = FakeBinance(instruments or standard_instruments(T0), clock=clock, position_mode=mode)
        await fake.start()
        live = live_for(fake, clock=clock, **config)
        opened.append((fake, live))
        seed(fake)
        if futures_usdt is not None:
            extra = fake.account.futures_account().wallet_balance - D(futures_usdt)
            fake.account.transfer("USDT", extra, from_wallet="futures", to_wallet="spot")
        stack = await build_stack(
            ledger,
            exchange=live,
            clock=clock,
            risk=risk,
            exchange_config=ExchangeConfig.model_validate(config) if config else None,
        )
        pair = next(p for p in await live.pairs() if p.base == base)
        if short_leg == "quarterly":
            dated = dated_pairs(await live.load_instruments())
            pair = next((p for p in dated if p.base == base), pair)
        return Rig(fake, clock, live, ledger, stack, pair)

    try:
        yield build
    finally:
        for fake, live in opened:
            await live.close()
            await fake.stop()
