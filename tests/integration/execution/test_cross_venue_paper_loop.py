"""The bot's own loop in paper mode with the spot account on another venue.

`build_exchange` (the factory of `carrybot run`) builds two paper accounts: spot on the
fake Bitstamp's public data (fees in USD, as Bitstamp charges them), futures on the fake
Binance's. The loop opens a BTC/USD hedge against BTC/USDT:USDT, captures funding, takes
balance snapshots per venue and closes it flat.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import assemble_loop
from bot.clock import SimulatedClock
from bot.config import config_from_dict
from bot.domain import HedgeState
from bot.exchange.factory import build_exchange
from bot.exchange.paper import PaperExchange
from bot.exchange.venues import VenueRouter
from bot.lifecycle import start_up
from bot.persistence.outage import BufferedEventSink, OutageGuard
from bot.persistence.repositories import Ledger
from bot.reporting import build_status
from bot.settings import Mode, Settings
from bot.trading import TradingLoop
from tests import kit
from tests.fakes.binance_server import FakeBinance
from tests.fakes.bitstamp_fixtures import bitstamp_instruments, seed_bitstamp
from tests.fakes.bitstamp_server import FakeBitstamp
from tests.fakes.fixtures import seed, standard_instruments

D = Decimal
pytestmark = pytest.mark.postgres
PERP = "BTC/USDT:USDT"


@dataclass
class PaperBot:
    binance: FakeBinance
    clock: SimulatedClock
    router: VenueRouter
    loop: TradingLoop
    ledger: Ledger

    @property
    def spot_account(self) -> PaperExchange:
        spot = self.router.spot_venue
        assert isinstance(spot, PaperExchange)
        return spot

    @property
    def futures_account(self) -> PaperExchange:
        futures = self.router.futures_venue
        assert isinstance(futures, PaperExchange)
        return futures


@pytest.fixture
async def paper_bot(
    ledger: Ledger, engine: AsyncEngine
) -> AsyncIterator[Callable[..., Awaitable[PaperBot]]]:
    made: list[tuple[FakeBinance, FakeBitstamp, VenueRouter]] = []

    async def build(**paper: Any) -> PaperBot:
        clock = SimulatedClock(kit.T0)
        binance = FakeBinance(standard_instruments(kit.T0), clock=clock)
        bitstamp = FakeBitstamp(bitstamp_instruments(), clock=clock)
        await binance.start()
        await bitstamp.start()
        seed(binance)
        seed_bitstamp(bitstamp)
        binance.set_funding(PERP, rate="0.001")  # 110 % a year: worth Bitstamp's 0.4 % fee
        config = config_from_dict({
            "exchange": {"spot_api_url": binance.url, "futures_api_url": binance.url},
            "venues": {"spot": "bitstamp", "bitstamp_api_url": bitstamp.url},
            "universe": {"symbols": ["BTC/USD"]},
            "strategy": {"min_hold_hours": 0, "cooldown_hours": 0},
            "sizing": {"notional_per_hedge": 1000},
            "risk": {"max_open_hedges": 1},
            "paper": paper,
        })  # fmt: skip
        router = await build_exchange(Mode.PAPER, Settings(), config, clock)
        assert isinstance(router, VenueRouter)
        made.append((binance, bitstamp, router))
        guard = OutageGuard(engine, clock)
        events = BufferedEventSink(ledger.events, guard)
        run = await ledger.runs.start(
            mode="paper", environment="production", config_hash=config.fingerprint(),
            version="test", at=clock.now(),
        )  # fmt: skip
        loop = await assemble_loop(config, router, ledger, guard, events, clock, run.id)
        await start_up(loop, router, events, clock)
        return PaperBot(binance, clock, router, loop, ledger)

    try:
        yield build
    finally:
        for binance, bitstamp, router in made:
            await router.close()
            await binance.stop()
            await bitstamp.stop()


async def test_cross_venue_paper_hedge_opens_captures_funding_and_closes(
    paper_bot: Callable[..., Awaitable[PaperBot]],
) -> None:
    bot = await paper_bot()
    assert bot.router.venue == "paper:bitstamp+binance"

    assert await bot.loop.poll() is not None
    await bot.loop.evaluate()

    (hedge,) = await bot.ledger.hedges.in_states([HedgeState.OPEN])
    assert (hedge.pair, hedge.perp_symbol) == ("BTC/USD", PERP)
    spot_sim, futures_sim = bot.spot_account.simulator, bot.futures_account.simulator
    btc = spot_sim.spot_balances()["BTC"].total
    assert btc == hedge.spot_quantity == hedge.perp_quantity  # the fee was paid in USD
    usd = spot_sim.spot_balances()["USD"].total
    assert D("8900") < usd < D("9100") and "USDT" not in futures_sim.spot_balances()
    (short,) = futures_sim.positions()
    assert short.size == btc and short.is_short

    bot.clock.advance(timedelta(hours=8, minutes=2))
    bot.binance.settle_funding(PERP, funding_time=kit.T0 + timedelta(hours=8))
    assert await bot.loop.poll() is not None
    assert await bot.loop.capture_funding(force=True) >= 1
    assert await bot.loop.snapshot_balances() is not None

    status = await build_status(bot.ledger, now=bot.clock.now())
    (line,) = status.open
    assert line.pnl.funding > 0
    wallets = {(b.wallet, b.asset) for b in status.balances}
    assert {("bitstamp:spot", "BTC"), ("bitstamp:spot", "USD"), ("binance:futures", "USDT"),
            ("total", "USDT")} <= wallets  # fmt: skip
    btc_row = next(b for b in status.balances if b.asset == "BTC")
    assert btc_row.value_usdt is not None and btc_row.value_usdt > 0  # priced in USDT terms

    pair = bot.loop.pairs["BTC/USD"]
    closed = await bot.loop.executor.close(hedge, pair, reason="test")
    assert closed.state is HedgeState.CLOSED
    assert spot_sim.spot_balances()["BTC"].total < pair.spot.step_size
    assert futures_sim.positions() == []


async def test_a_venue_that_cannot_carry_a_hedge_raises_one_alert(
    paper_bot: Callable[..., Awaitable[PaperBot]],
) -> None:
    bot = await paper_bot(initial_spot_quote=500)
    assert await bot.loop.poll() is not None

    await bot.loop.snapshot_balances()
    await bot.loop.snapshot_balances()

    events = [e for e in await bot.ledger.events.recent(limit=50) if e.kind.startswith("capital.")]
    (alert,) = events
    assert alert.kind == "capital.insufficient" and alert.data["venue"] == "bitstamp"
    # 500 USD less the 2 % balance buffer, against 1000 USDT + 0.4 % fee at 0.999 USD
    assert alert.message.startswith("bitstamp: 490.00 USD available, one hedge of the "
                                    "configured size needs 1003.00")  # fmt: skip
    assert "fund bitstamp" in alert.message
