"""The real executor on a COIN-M hedge over the real LiveExchange (ccxt) on the fake Binance.

The COIN-M counterpart of `rig.py`: the fake lists BTC's COIN-M quarterly and perpetual
(100 USD a contract, bid 51 000) beside the standard markets, in one-way or hedge mode
(both USDⓈ-M and COIN-M); the LiveExchange loads dapi. The short is the quarterly or the
perpetual (`coinm_future`, a fixture parametrized over both, so every test of the COIN-M
fault matrix runs on each; a test of one of them alone parametrizes `coinm_future`
itself). `assert_*` read the fake's own account: the coin in the spot and COIN-M wallets,
the contracts short.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from bot.clock import SimulatedClock, SystemClock
from bot.config import ExchangeConfig, RiskConfig, config_from_dict
from bot.domain import (
    Hedge,
    HedgeState,
    Instrument,
    Leg,
    MarketKind,
    OrderStatus,
    Pair,
    PositionMode,
    Quote,
)
from bot.domain.instruments import coinm_perp_pairs, dated_pairs
from bot.domain.ledger import TransferStatus
from bot.errors import OrderNotFound
from bot.exchange.ccxt_live import LiveExchange
from bot.exchange.port import ExchangePort
from bot.execution.coinm_margin import margin_of
from bot.execution.executor import HedgeExecutor
from bot.persistence.repositories import Ledger
from bot.streams.exchange import StreamedExchange
from bot.streams.factory import with_streams
from bot.streams.user import COINM_USER
from tests import kit
from tests.fakes.binance_server import (
    DEFAULT_API_KEY,
    DEFAULT_API_SECRET,
    FakeBinance,
    LoggedRequest,
)
from tests.fakes.fixtures import coinm_instruments, live_for, seed, seed_coinm
from tests.support.paper_stack import Stack, build_stack

D = Decimal
SPOT_ORDER, DAPI_ORDER, TRANSFER = "/api/v3/order", "/dapi/v1/order", "/sapi/v1/asset/transfer"
SIGNING = {"timestamp", "signature", "recvWindow"}
COIN_DUST = D("0.000001")


@dataclass
class CoinmRig:
    fake: FakeBinance
    clock: SimulatedClock
    live: LiveExchange
    ledger: Ledger
    stack: Stack
    pair: Pair

    @property
    def executor(self) -> HedgeExecutor:
        return self.stack.executor

    @property
    def limit(self) -> Decimal:
        return self.stack.executor._ctx.risk.max_unhedged_usd

    async def quotes(self) -> tuple[Quote, Quote]:
        spot = (await self.live.fetch_best_quotes(MarketKind.SPOT))[self.pair.spot.symbol]
        future = (await self.live.fetch_best_quotes(self.pair.perp.kind))[self.pair.perp.symbol]
        return spot, future

    async def open(self, notional: str = "1000") -> Hedge | None:
        spot_q, perp_q = await self.quotes()
        self.fake.clear_requests()
        return await self.executor.open(
            self.pair,
            D(notional),
            reason="test",
            metrics={"apr": D("0.2")},
            spot_quote=spot_q,
            perp_quote=perp_q,
        )

    def order_posts(self, path: str) -> list[dict[str, str]]:
        return [
            {k: v for k, v in r.params.items() if k not in SIGNING}
            for r in self.fake.requests_to(path, "POST")
        ]

    def transfers(self) -> list[str]:
        """The universal transfer types that reached the server, in order."""
        return [r.params["type"] for r in self.fake.requests_to(TRANSFER, "POST")]

    async def transfer_rows(self, hedge_id: int) -> list[tuple[str, TransferStatus]]:
        """The hedge's `transfers` rows: (to wallet, status), oldest first."""
        return [(t.to_wallet, t.status) for t in await self.ledger.transfers.for_hedges([hedge_id])]

    def requests(self, path: str, method: str) -> list[LoggedRequest]:
        return self.fake.requests_to(path, method)

    # --- the server's account ---------------------------------------------------------
    def server_spot(self) -> Decimal:
        bal = self.fake.account.spot_balances().get("BTC")
        return bal.total if bal else D(0)

    def server_coinm(self) -> Decimal:
        return self.fake.account.coinm_account("BTC").wallet_balance

    def server_short(self) -> Decimal:
        positions = [
            p for p in self.fake.account.coinm_positions() if p.symbol == self.pair.perp.symbol
        ]
        assert all(p.is_short for p in positions), f"a long appeared: {positions}"
        return sum((p.size for p in positions), D(0))

    def unhedged_usd(self) -> Decimal:
        price = self.fake.account.mid_price(self.pair.perp.symbol) or D(0)
        return self.server_coinm() * price - self.server_short() * self.pair.perp.contract_size

    def assert_balanced(self) -> None:
        """The COIN-M wallet's coin hedges the short to within max_unhedged_usd; no coin
        was left behind in the spot wallet."""
        assert self.server_short() > 0
        assert abs(self.unhedged_usd()) <= self.limit, self.unhedged_usd()
        assert self.server_spot() < self.pair.spot.step_size

    def assert_flat(self) -> None:
        """No short, no coin in the COIN-M wallet beyond dust, only spot dust."""
        assert self.server_short() == 0
        assert self.server_coinm() < COIN_DUST, self.server_coinm()
        assert self.server_spot() < self.pair.spot.step_size, self.server_spot()

    async def assert_ledger_matches(self, hedge: Hedge) -> None:
        """Ledger orders agree with the server's, fills recorded once, quantities true."""
        got = await self.ledger.hedges.get(hedge.id)
        assert got is not None
        for record in await self.ledger.orders.for_hedge(hedge.id):
            try:
                server = self.fake.account.fetch_order(record.symbol, record.client_order_id)
            except OrderNotFound:
                assert record.status is OrderStatus.REJECTED, record
                continue
            assert (record.status, record.filled) == (server.status, server.filled), record
            fills = await self.ledger.fills.for_order(record.client_order_id)
            assert sum((f.quantity for f in fills), D(0)) == server.filled, record
            assert len({f.trade_id for f in fills}) == len(fills)
        assert got.perp_quantity == self.server_short()
        if got.state is HedgeState.OPEN:
            assert margin_of(got) == got.spot_quantity  # all of its coin is the margin
            assert got.spot_quantity >= self.server_coinm()  # the short's fees are in coin
            self.assert_balanced()
        elif got.state in (HedgeState.CLOSED, HedgeState.FAILED):
            assert margin_of(got) == 0
            self.assert_flat()

    async def statuses(self, hedge_id: int) -> list[tuple[Leg, str, OrderStatus]]:
        return sorted(
            (o.leg, o.purpose.value, o.status) for o in await self.ledger.orders.for_hedge(hedge_id)
        )


CoinmRigFactory = Callable[..., Awaitable[CoinmRig]]
COINM_FUTURES = ("quarterly", "perpetual")


def coinm_pair(instruments: Iterable[Instrument], future: str) -> Pair:
    """BTC's spot + COIN-M `future` ("quarterly" or "perpetual") pair."""
    pairs = dated_pairs(instruments) if future == "quarterly" else coinm_perp_pairs(instruments)
    return next(p for p in pairs if p.perp.is_inverse)


@pytest.fixture(params=COINM_FUTURES)
def coinm_future(request: pytest.FixtureRequest) -> str:
    """The COIN-M short of the rig: the quarterly, or the perpetual."""
    return str(request.param)


@pytest.fixture
async def coinm_rig_factory(ledger: Ledger, coinm_future: str) -> AsyncIterator[CoinmRigFactory]:
    """Build a CoinmRig: `await coinm_rig_factory(mode=PositionMode.HEDGE, timeout_ms=200)`."""
    opened: list[tuple[FakeBinance, LiveExchange | StreamedExchange]] = []  # what to close

    async def build(
        *,
        mode: PositionMode = PositionMode.ONE_WAY,
        risk: RiskConfig | None = None,
        streams: bool = False,
        **config: Any,
    ) -> CoinmRig:
        """`streams=True`: trade through `StreamedExchange` with the user-data streams
        (COIN-M's dapi listenKey included) live on the fake, on the wall clock."""
        clock = SimulatedClock(kit.T0)
        instruments = [*coinm_instruments(kit.T0), kit.coinm("BTC")]  # + the COIN-M perpetual
        fake = FakeBinance(instruments, clock=clock, position_mode=mode)
        await fake.start()
        live = live_for(fake, clock=clock, coinm=True, **config)
        opened.append((fake, live))
        seed(fake)
        seed_coinm(fake)
        exchange: ExchangePort = live
        if streams:
            exchange = await streamed(fake, live)
            opened[-1] = (fake, exchange)  # closes the live adapter too
        stack = await build_stack(
            ledger,
            exchange=exchange,
            clock=clock,
            risk=risk,
            exchange_config=ExchangeConfig.model_validate(config) if config else None,
        )
        pair = coinm_pair((await live.load_instruments()).values(), coinm_future)
        return CoinmRig(fake, clock, live, ledger, stack, pair)

    try:
        yield build
    finally:
        for fake, closing in opened:
            await closing.close()
            await fake.stop()


async def streamed(fake: FakeBinance, live: LiveExchange) -> StreamedExchange:
    """`live` with the user-data streams on the fake, once the COIN-M one is live."""
    config = config_from_dict(
        {
            "exchange": {"spot_api_url": fake.url, "futures_api_url": fake.url},
            "universe": {"symbols": ["BTC/USDT"]},
            "strategy": {"instruments": ["perpetual", "quarterly", "coinm"]},
            "streams": {
                "spot_ws_url": fake.spot_ws_url,
                "futures_ws_url": fake.futures_ws_url,
                "spot_ws_api_url": fake.ws_api_url,
                "coinm_ws_url": fake.coinm_ws_url,
            },
        }
    )
    keys = {"api_key": DEFAULT_API_KEY, "api_secret": DEFAULT_API_SECRET}
    exchange = with_streams(live, config, SystemClock(), **keys)
    assert isinstance(exchange, StreamedExchange)
    await exchange.source.start()
    user = exchange.source.user
    assert user is not None
    deadline = time.monotonic() + 5
    while not user.live(COINM_USER):
        assert time.monotonic() < deadline, "the COIN-M user stream did not come up"
        await asyncio.sleep(0.02)
    return exchange
