"""The bot's own loop on the fake Binance with `"coinm"` on, in paper or live mode.

Shared by the COIN-M loop tests (quarterly and perpetual) and the margin top-up test:
`start_coinm_bot` assembles the loop over a paper account (its own simulator fed by the
fake's market data) or over the fake's dapi endpoints (fills in the fake's account), in one
position mode; `strategy`, `risk` and `paper` override those sections.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import assemble_loop
from bot.clock import SimulatedClock
from bot.config import config_from_dict
from bot.domain import Instrument, PositionMode
from bot.exchange.paper import PaperExchange
from bot.exchange.port import ExchangePort
from bot.exchange.simulator import SimulatedExchange
from bot.lifecycle import start_up
from bot.persistence.outage import BufferedEventSink, OutageGuard
from bot.persistence.repositories import Ledger
from tests import kit
from tests.fakes.binance_server import FakeBinance
from tests.fakes.fixtures import live_for, seed

LOOP_MODES = [
    ("paper", PositionMode.ONE_WAY),
    ("paper", PositionMode.HEDGE),
    ("live", PositionMode.ONE_WAY),
    ("live", PositionMode.HEDGE),
]


def loop_mode_id(param: tuple[str, PositionMode]) -> str:
    return f"{param[0]}-{param[1].value}"


@dataclass
class CoinmBot:
    fake: FakeBinance
    clock: SimulatedClock
    sim: SimulatedExchange  # the account that fills: the paper simulator or the fake's
    loop: Any  # the assembled TradingLoop
    live: bool


@asynccontextmanager
async def start_coinm_bot(
    instruments: list[Instrument],
    ledger: Ledger,
    engine: AsyncEngine,
    *,
    mode: str,
    position_mode: PositionMode,
    strategy: dict[str, Any] | None = None,
    risk: dict[str, Any] | None = None,
    paper: dict[str, Any] | None = None,
) -> AsyncIterator[CoinmBot]:
    """A seeded fake listing `instruments` and the bot's loop on it, started up; the test
    sets funding and quotes on `fake` before its first cycle."""
    clock = SimulatedClock(kit.T0)
    async with FakeBinance(instruments, clock=clock, position_mode=position_mode) as fake:
        seed(fake)
        config = config_from_dict(
            {
                "exchange": {
                    "spot_api_url": fake.url,
                    "futures_api_url": fake.url,
                    "position_mode": position_mode.value,
                },
                "universe": {"symbols": ["BTC/USDT"]},
                "strategy": {
                    "min_hold_hours": 0,
                    "cooldown_hours": 0,
                    "instruments": ["perpetual", "quarterly", "coinm"],
                    **(strategy or {}),
                },
                "sizing": {"notional_per_hedge": 1000},
                "risk": {
                    "max_open_hedges": 1,
                    "close_retry_backoff_seconds": 0.01,
                    **(risk or {}),
                },
                "paper": {"fill_slippage_bps": 0, **(paper or {})},
            }
        )
        exchange: ExchangePort
        if mode == "paper":
            paper_exchange = await PaperExchange.open(
                live_for(fake, keys=False, clock=clock, coinm=True),
                clock=clock,
                fees=config.fees,
                paper=config.paper,
            )
            exchange, sim = paper_exchange, paper_exchange.simulator
        else:
            fake.account.set_instruments(fake.market.instruments)
            exchange, sim = live_for(fake, clock=clock, coinm=True), fake.account
        guard = OutageGuard(engine, clock)
        events = BufferedEventSink(ledger.events, guard)
        run = await ledger.runs.start(
            mode=mode,
            environment="production",
            config_hash=config.fingerprint(),
            version="test",
            at=clock.now(),
        )
        try:
            loop = await assemble_loop(config, exchange, ledger, guard, events, clock, run.id)
            await start_up(loop, exchange, events, clock)
            yield CoinmBot(fake, clock, sim, loop, live=mode == "live")
        finally:
            await exchange.close()
