"""An operator close (`carrybot close`, the dashboard) obeyed by the running loop.

The loop is the one `carrybot run` assembles (`bot.app.assemble_loop`) over the fake Binance,
on an injected clock: a healthy hedge the strategy would keep is closed in the next cycle
through the executor's close (both legs at once), the request is done and recorded with its
source; in HALTED it waits; a buy-back that keeps failing leaves the hedge CLOSING with an
alert, finished by reconciliation as any close's failed leg is.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import assemble_loop
from bot.clock import SimulatedClock
from bot.config import config_from_dict
from bot.control import request_close, set_trading_state
from bot.domain import Hedge, HedgeState
from bot.domain.ledger import TradingState
from bot.exchange.paper import PaperExchange
from bot.exchange.port import ExchangePort
from bot.lifecycle import start_up
from bot.persistence.outage import BufferedEventSink, OutageGuard
from bot.persistence.repositories import Ledger
from bot.trading import TradingLoop
from tests import kit
from tests.fakes.binance_server import FakeBinance
from tests.fakes.fixtures import live_for, seed, standard_instruments
from tests.integration.execution.rig import PERP_ORDER

D = Decimal
pytestmark = pytest.mark.postgres
PERP = "BTC/USDT:USDT"


@dataclass
class Bot:
    fake: FakeBinance
    clock: SimulatedClock
    exchange: ExchangePort
    loop: TradingLoop
    ledger: Ledger

    async def cycle(self, hours: float = 1) -> None:
        """Advance the clock, then poll and evaluate as the scheduler does."""
        self.clock.advance(timedelta(hours=hours))
        assert await self.loop.poll() is not None
        await self.loop.evaluate()

    async def hedge(self) -> Hedge:
        hedge = await self.ledger.hedges.get(1)
        assert hedge is not None
        return hedge

    def short(self) -> Decimal:
        account = self.fake.account if not isinstance(self.exchange, PaperExchange) else None
        positions = (account or self.exchange.simulator).positions()  # type: ignore[attr-defined]
        return sum((-p.size if p.is_short else p.size for p in positions if p.symbol == PERP), D(0))

    def spot(self) -> Decimal:
        sim = self.exchange.simulator if isinstance(self.exchange, PaperExchange) else None
        btc = (sim or self.fake.account).spot_balances().get("BTC")
        return btc.total if btc else D(0)


BotFactory = Callable[..., Awaitable[Bot]]


@pytest.fixture
async def bot_factory(ledger: Ledger, engine: AsyncEngine) -> AsyncIterator[BotFactory]:
    made: list[tuple[FakeBinance, ExchangePort]] = []

    async def build(*, paper: bool) -> Bot:
        clock = SimulatedClock(kit.T0)
        fake = FakeBinance(standard_instruments(kit.T0), clock=clock)
        await fake.start()
        seed(fake)
        fake.set_funding(PERP, rate="0.0003")  # ~33 % a year: worth holding for long
        fake.set_quote("BTC/USDT", "49999.99", "50000.00", "5", "5")
        fake.set_quote(PERP, "50000.0", "50000.1", "5", "5")
        config = config_from_dict(
            {
                "exchange": {"spot_api_url": fake.url, "futures_api_url": fake.url},
                "universe": {"symbols": ["BTC/USDT"]},
                "strategy": {"min_hold_hours": 5000, "cooldown_hours": 5000},
                "sizing": {"notional_per_hedge": 1000},
                "risk": {"max_open_hedges": 1, "close_retry_backoff_seconds": 0.01},
            }
        )
        exchange: ExchangePort
        if paper:
            exchange = await PaperExchange.open(
                live_for(fake, keys=False, clock=clock),
                clock=clock,
                fees=config.fees,
                paper=config.paper,
            )
        else:
            exchange = live_for(fake, clock=clock)
        made.append((fake, exchange))
        guard = OutageGuard(engine, clock)
        events = BufferedEventSink(ledger.events, guard)
        run = await ledger.runs.start(
            mode="paper" if paper else "live",
            environment="production",
            config_hash=config.fingerprint(),
            version="test",
            at=clock.now(),
        )
        loop = await assemble_loop(config, exchange, ledger, guard, events, clock, run.id)
        await start_up(loop, exchange, events, clock)
        bot = Bot(fake, clock, exchange, loop, ledger)
        await bot.cycle()
        hedge = await bot.hedge()
        assert hedge.state is HedgeState.OPEN and bot.short() == -hedge.perp_quantity
        await bot.cycle()  # a cycle later the strategy still holds it
        assert (await bot.hedge()).state is HedgeState.OPEN
        return bot

    try:
        yield build
    finally:
        for fake, exchange in made:
            await exchange.close()
            await fake.stop()


async def test_a_close_request_is_obeyed_in_the_next_cycle_and_recorded_with_its_source(
    bot_factory: BotFactory,
) -> None:
    bot = await bot_factory(paper=True)
    request = await request_close(
        bot.ledger, 1, reason="taking profit by hand", source="cli", at=bot.clock.now()
    )

    await bot.cycle(0)

    hedge = await bot.hedge()
    assert hedge.state is HedgeState.CLOSED
    assert hedge.close_reason == "operator close (cli): taking profit by hand"
    assert bot.short() == 0 and bot.spot() < kit.spot().step_size
    assert await bot.ledger.close_requests.pending() == []
    (done,) = await bot.ledger.events.recent(kind="control.close")
    assert (done.hedge_id, done.data["source"], done.data["outcome"]) == (1, "cli", "closed")
    assert done.data["request_id"] == request.id
    (asked,) = await bot.ledger.events.recent(kind="control.close_requested")
    assert asked.data["source"] == "cli"

    await bot.cycle()  # nothing left to do: no second close, no new entry (cooldown)
    assert len(await bot.ledger.events.recent(kind="control.close")) == 1


async def test_in_halted_the_request_waits_and_runs_once_closes_are_allowed(
    bot_factory: BotFactory,
) -> None:
    bot = await bot_factory(paper=True)
    now = bot.clock.now()
    await set_trading_state(bot.ledger, TradingState.HALTED, reason="t", source="cli", at=now)
    await request_close(bot.ledger, 1, reason="by hand", source="web", at=now)

    await bot.cycle(0)
    await bot.cycle(0)

    assert (await bot.hedge()).state is HedgeState.OPEN
    assert len(await bot.ledger.close_requests.pending()) == 1

    await set_trading_state(
        bot.ledger, TradingState.REDUCING, reason="t", source="cli", at=bot.clock.now()
    )
    await bot.cycle(0)

    assert (await bot.hedge()).state is HedgeState.CLOSED
    assert await bot.ledger.close_requests.pending() == []


async def test_a_close_whose_buy_back_fails_stays_closing_and_is_finished_like_any_close(
    bot_factory: BotFactory,
) -> None:
    bot = await bot_factory(paper=False)
    held = (await bot.hedge()).perp_quantity
    bot.fake.add_fault(
        "reject", PERP_ORDER, method="POST", symbol="BTCUSDT", code=-1000, times=None
    )
    await request_close(bot.ledger, 1, reason="by hand", source="web", at=bot.clock.now())

    await bot.cycle(0)

    hedge = await bot.hedge()
    assert hedge.state is HedgeState.CLOSING
    assert bot.short() == -held and bot.spot() < kit.spot().step_size  # the spot leg sold
    (done,) = await bot.ledger.events.recent(kind="control.close")
    assert (done.data["outcome"], done.severity.value) == ("closing", "alert")
    assert await bot.ledger.close_requests.pending() == []

    bot.fake.faults.clear()
    bot.clock.advance(timedelta(minutes=2))
    await bot.loop.reconcile()  # finishes the close (buys the short back); no new request

    assert (await bot.hedge()).state is HedgeState.CLOSED
    assert bot.short() == 0
    assert len(await bot.ledger.events.recent(kind="control.close")) == 1
