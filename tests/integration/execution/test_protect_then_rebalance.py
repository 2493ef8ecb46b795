"""A protective resize and the strategy's resize of the same hedge in one cycle.

BTC rises 40% in an hour over a paper account with a small futures wallet: the short comes
closer to liquidation than `min_liquidation_distance` (the risk gate shrinks it), and as
the cycle began it was worth more than `rebalance_band` above its notional (the strategy
would cut it back). The strategy must decide on the legs the protective resize left, not
the ones the cycle began with: a cut of the old legs records legs the exchange does not
hold (the full-history DOGE run: 2,662 DOGE apart on each leg, then a rejected trim every
cycle).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import assemble_loop
from bot.clock import SimulatedClock
from bot.config import config_from_dict
from bot.domain import HedgeState
from bot.exchange.paper import PaperExchange
from bot.lifecycle import start_up
from bot.persistence.outage import BufferedEventSink, OutageGuard
from bot.persistence.repositories import Ledger
from tests import kit
from tests.fakes.binance_server import FakeBinance
from tests.fakes.fixtures import live_for, seed, standard_instruments

D = Decimal
pytestmark = pytest.mark.postgres
PERP = "BTC/USDT:USDT"


def set_price(fake: FakeBinance, price: Decimal) -> None:
    fake.set_quote("BTC/USDT", str(price - D("0.01")), str(price), "5", "5")
    fake.set_quote(PERP, str(price), str(price + D("0.1")), "5", "5")
    fake.set_funding(PERP, rate="0.0003", mark=str(price))


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    clock = SimulatedClock(kit.T0)
    server = FakeBinance(standard_instruments(kit.T0), clock=clock)
    await server.start()
    seed(server)
    set_price(server, D("50000"))
    try:
        yield server
    finally:
        await server.stop()


async def test_the_strategy_resizes_from_the_legs_a_protective_resize_left(
    fake: FakeBinance, ledger: Ledger, engine: AsyncEngine
) -> None:
    clock = fake.clock
    assert isinstance(clock, SimulatedClock)
    config = config_from_dict(
        {
            "exchange": {"spot_api_url": fake.url, "futures_api_url": fake.url},
            "universe": {"symbols": ["BTC/USDT"]},
            "strategy": {"min_hold_hours": 5000, "cooldown_hours": 5000},
            "sizing": {"notional_per_hedge": 1000},
            "risk": {"max_open_hedges": 1, "close_retry_backoff_seconds": 0.01},
            "paper": {"initial_futures_quote": 700},
        }
    )
    exchange = await PaperExchange.open(
        live_for(fake, keys=False, clock=clock), clock=clock, fees=config.fees, paper=config.paper
    )
    try:
        guard = OutageGuard(engine, clock)
        events = BufferedEventSink(ledger.events, guard)
        run = await ledger.runs.start(
            mode="paper",
            environment="production",
            config_hash=config.fingerprint(),
            version="test",
            at=clock.now(),
        )
        loop = await assemble_loop(config, exchange, ledger, guard, events, clock, run.id)
        await start_up(loop, exchange, events, clock)
        clock.advance(timedelta(hours=1))
        await loop.poll()
        await loop.evaluate()
        (opened,) = await ledger.hedges.active()
        assert opened.state is HedgeState.OPEN

        set_price(fake, D("70000"))  # +40%: near liquidation and far above the band
        clock.advance(timedelta(hours=1))
        await loop.poll()
        await loop.evaluate()

        kinds = [e.kind for e in await ledger.events.recent(limit=50)]
        assert "risk.protect" in kinds and "hedge.resized" in kinds
        (hedge,) = await ledger.hedges.active()
        sim = exchange.simulator
        short = sum((p.size for p in sim.positions() if p.symbol == PERP and p.is_short), D(0))
        btc = sim.spot_balances()["BTC"].total
        assert hedge.perp_quantity == short  # the ledger's short is the exchange's
        assert abs(hedge.spot_quantity - btc) < kit.spot().step_size
        assert "hedge.imbalanced" not in kinds and "hedge.drift" not in kinds
    finally:
        await exchange.close()
