"""Build the executor stack over a PaperExchange and a real (SQLite/PostgreSQL) ledger."""

from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import Decimal

from bot.clock import SimulatedClock
from bot.config import ExchangeConfig, PaperConfig, RiskConfig
from bot.domain import PositionMode
from bot.domain.params import FeeParams
from bot.exchange.paper import PaperExchange
from bot.exchange.port import ExchangePort
from bot.execution.account_setup import AccountSetup
from bot.execution.executor import HedgeExecutor
from bot.ids import UidFactory
from bot.persistence.repositories import Ledger
from tests.kit import T0
from tests.support.market_source import StaticMarketSource


@dataclass
class Stack:
    clock: SimulatedClock
    source: StaticMarketSource
    exchange: ExchangePort
    ledger: Ledger
    setup: AccountSetup
    executor: HedgeExecutor


async def paper_exchange(
    clock: SimulatedClock,
    source: StaticMarketSource,
    *,
    mode: PositionMode,
    spot_usdt: str = "10000",
    futures_usdt: str = "10000",
) -> PaperExchange:
    return await PaperExchange.open(
        source,
        clock=clock,
        fees=FeeParams(),
        paper=PaperConfig(
            initial_spot_quote=Decimal(spot_usdt), initial_futures_quote=Decimal(futures_usdt)
        ),
        position_mode=mode,
    )


async def build_stack(
    ledger: Ledger,
    *,
    exchange: ExchangePort | None = None,
    clock: SimulatedClock | None = None,
    source: StaticMarketSource | None = None,
    mode: PositionMode = PositionMode.ONE_WAY,
    exchange_config: ExchangeConfig | None = None,
    risk: RiskConfig | None = None,
    spot_usdt: str = "10000",
    futures_usdt: str = "10000",
) -> Stack:
    clock = clock or SimulatedClock(T0)
    source = source or StaticMarketSource(clock, ["BTC", "ETH"])
    if exchange is None:
        exchange = await paper_exchange(
            clock, source, mode=mode, spot_usdt=spot_usdt, futures_usdt=futures_usdt
        )
    config = exchange_config or ExchangeConfig()
    setup = AccountSetup(exchange, config, ledger.events, clock)
    await setup.detect()
    executor = HedgeExecutor(
        exchange,
        ledger,
        clock,
        setup,
        risk=risk or RiskConfig(),
        fees=FeeParams(),
        events=ledger.events,
        uids=UidFactory(clock, random.Random(7)),
    )
    return Stack(clock, source, exchange, ledger, setup, executor)
