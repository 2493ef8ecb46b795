"""The real executor rolling a dated hedge over the real LiveExchange (ccxt) on the fake.

The fake lists BTC's near and next quarter, USDⓈ-M (`fapi`, BTCUSDT_YYMMDD) or COIN-M
(`dapi`, BTCUSD_YYMMDD, 100 USD a contract) beside the standard markets, in one-way or
hedge mode; the rig opens a hedge on the near quarter, then `roll()` moves it to the next
one. `assert_*` read the fake's own account, never the bot's view of it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from bot.clock import SimulatedClock
from bot.config import ExchangeConfig, RiskConfig
from bot.domain import Hedge, MarketKind, OrderStatus, Pair, PositionMode
from bot.domain.instruments import dated_pairs
from bot.errors import OrderNotFound
from bot.exchange.ccxt_live import LiveExchange
from bot.execution.coinm_margin import margin_of
from bot.execution.executor import HedgeExecutor
from bot.persistence.repositories import Ledger
from tests import kit
from tests.fakes.binance_server import FakeBinance
from tests.fakes.fixtures import WALLET_USDT, live_for, seed, seed_coinm, standard_instruments
from tests.support.paper_stack import Stack, build_stack

D = Decimal
SIGNING = {"timestamp", "signature", "recvWindow"}
ORDER_PATH = {"fapi": "/fapi/v1/order", "dapi": "/dapi/v1/order"}
TRANSFER = "/sapi/v1/asset/transfer"


@dataclass
class RollRig:
    venue: str  # "fapi" (USDⓈ-M quarterlies) or "dapi" (COIN-M quarterlies)
    fake: FakeBinance
    clock: SimulatedClock
    live: LiveExchange
    ledger: Ledger
    stack: Stack
    near: Pair
    next: Pair

    @property
    def executor(self) -> HedgeExecutor:
        return self.stack.executor

    @property
    def order_path(self) -> str:
        return ORDER_PATH[self.venue]

    @property
    def near_id(self) -> str:
        return self.near.perp.exchange_symbol

    @property
    def next_id(self) -> str:
        return self.next.perp.exchange_symbol

    async def open(self) -> Hedge:
        spot, near, _ = await self._quotes()
        hedge = await self.executor.open(
            self.near, D(1000), reason="test", metrics={}, spot_quote=spot, perp_quote=near
        )
        assert hedge is not None and hedge.state.value == "open", hedge
        self.fake.clear_requests()
        return hedge

    async def roll(self, hedge: Hedge) -> Hedge:
        spot, near, nxt = await self._quotes()
        got = await self.ledger.hedges.get(hedge.id)
        assert got is not None
        return await self.executor.roll(
            got,
            self.near,
            self.next,
            reason="roll test",
            spot_quote=spot,
            held_quote=near,
            into_quote=nxt,
        )

    async def _quotes(self) -> tuple[Any, Any, Any]:
        spot = (await self.live.fetch_best_quotes(MarketKind.SPOT))[self.near.spot.symbol]
        dated = await self.live.fetch_best_quotes(MarketKind.DATED_FUTURE)
        return spot, dated[self.near.perp.symbol], dated[self.next.perp.symbol]

    def posts(self, exchange_symbol: str) -> list[dict[str, str]]:
        """The order POSTs that reached the server for one contract, without signing."""
        return [
            {k: v for k, v in r.params.items() if k not in SIGNING}
            for r in self.fake.requests_to(self.order_path, "POST")
            if r.params.get("symbol") == exchange_symbol
        ]

    def transfers(self) -> int:
        return len(self.fake.requests_to(TRANSFER, "POST"))

    # --- the server's account ---------------------------------------------------------
    def short(self, pair: Pair) -> Decimal:
        account = self.fake.account
        positions = account.coinm_positions() if self.venue == "dapi" else account.positions()
        mine = [p for p in positions if p.symbol == pair.perp.symbol]
        assert all(p.is_short for p in mine), f"a long appeared: {mine}"
        return sum((p.size for p in mine), D(0))

    def coin(self) -> Decimal:
        """The hedge's coin on the server: spot BTC (fapi) or the COIN-M wallet (dapi)."""
        if self.venue == "dapi":
            return self.fake.account.coinm_account("BTC").wallet_balance
        bal = self.fake.account.spot_balances().get("BTC")
        return bal.total if bal else D(0)

    def spot_btc(self) -> Decimal:
        bal = self.fake.account.spot_balances().get("BTC")
        return bal.total if bal else D(0)

    def hedged(self, pair: Pair) -> Decimal:
        """What is left unhedged on the server against `pair`'s short: base units (fapi) or
        USD at the contract's mid (dapi)."""
        if self.venue == "dapi":
            price = self.fake.account.mid_price(pair.perp.symbol) or D(0)
            return self.coin() * price - self.short(pair) * pair.perp.contract_size
        return self.coin() - self.short(pair)

    def assert_hedged_on(self, pair: Pair, limit: Decimal) -> None:
        other = self.next if pair is self.near else self.near
        assert self.short(other) == 0, f"a short is left on {other.perp.symbol}"
        assert self.short(pair) > 0
        assert abs(self.hedged(pair)) <= limit, self.hedged(pair)

    def assert_flat(self) -> None:
        assert self.short(self.near) == 0 and self.short(self.next) == 0
        assert self.spot_btc() < self.near.spot.step_size
        if self.venue == "dapi":
            assert self.coin() < D("0.000001"), self.coin()

    @property
    def limit(self) -> Decimal:
        """What may stay unhedged: one common step (fapi), `max_unhedged_usd` (dapi)."""
        if self.venue == "dapi":
            return self.executor._ctx.risk.max_unhedged_usd
        return max(self.near.spot.step_size, self.near.perp.step_size)

    async def assert_ledger_matches(self, hedge: Hedge) -> None:
        """Every order agrees with the server's, fills are recorded once, and the hedge's
        short is what the server holds on the contract it names."""
        got = await self.ledger.hedges.get(hedge.id)
        assert got is not None
        fills = await self.ledger.fills.for_hedge(hedge.id)
        keys = [(f.symbol, f.trade_id) for f in fills]
        assert len(keys) == len(set(keys)), "a fill was recorded twice"
        for record in await self.ledger.orders.for_hedge(hedge.id):
            try:
                server = self.fake.account.fetch_order(record.symbol, record.client_order_id)
            except OrderNotFound:
                assert record.status is OrderStatus.REJECTED, record
                continue
            assert (record.status, record.filled) == (server.status, server.filled), record
            mine = [f for f in fills if f.client_order_id == record.client_order_id]
            assert sum((f.quantity for f in mine), D(0)) == server.filled, record
        held = self.next if got.perp_symbol == self.next.perp.symbol else self.near
        assert got.perp_quantity == self.short(held)
        if self.venue == "dapi" and got.state.value == "open":
            assert margin_of(got) == got.spot_quantity  # the coin never left the wallet


RollRigFactory = Callable[..., Awaitable[RollRig]]
VENUES = ["fapi", "dapi"]


@pytest.fixture(params=VENUES)
async def roll_rig_factory(
    ledger: Ledger, request: pytest.FixtureRequest
) -> AsyncIterator[RollRigFactory]:
    """Build a RollRig on fapi or dapi: `await roll_rig_factory(mode=PositionMode.HEDGE)`."""
    venue: str = request.param
    opened: list[tuple[FakeBinance, LiveExchange]] = []

    async def build(
        *,
        mode: PositionMode = PositionMode.ONE_WAY,
        risk: RiskConfig | None = None,
        futures_usdt: Decimal | None = None,
        **config: Any,
    ) -> RollRig:
        clock = SimulatedClock(kit.T0)
        near_at = kit.T0.replace(hour=8) + timedelta(days=90)
        next_at = near_at + timedelta(days=91)
        if venue == "dapi":
            dated = [
                kit.coinm("BTC", expiry=near_at),
                kit.coinm("BTC", expiry=next_at, contract_type="NEXT_QUARTER"),
            ]
        else:
            dated = [kit.dated("BTC", expiry=next_at, contract_type="NEXT_QUARTER")]
        fake = FakeBinance([*standard_instruments(kit.T0), *dated], clock=clock, position_mode=mode)
        await fake.start()
        live = live_for(fake, clock=clock, coinm=venue == "dapi", **config)
        opened.append((fake, live))
        seed(fake)
        if venue == "dapi":
            seed_coinm(fake)
        if futures_usdt is not None:  # the USDⓈ-M wallet holds only this much
            rest = WALLET_USDT - futures_usdt
            fake.account.transfer("USDT", rest, from_wallet="futures", to_wallet="spot")
        # Leverage 3 (one above the default) unless asked: both shorts fit during a roll.
        config = {"leverage": 3, **config} if venue == "dapi" else config
        stack = await build_stack(
            ledger,
            exchange=live,
            clock=clock,
            risk=risk,
            exchange_config=ExchangeConfig.model_validate(config) if config else None,
        )
        pairs = sorted(
            (p for p in dated_pairs(await live.load_instruments()) if p.base == "BTC"),
            key=lambda p: p.perp.expiry or near_at,
        )
        inverse = [p for p in pairs if p.perp.is_inverse == (venue == "dapi")]
        near, nxt = inverse
        return RollRig(venue, fake, clock, live, ledger, stack, near, nxt)

    try:
        yield build
    finally:
        for fake, live in opened:
            await live.close()
            await fake.stop()
