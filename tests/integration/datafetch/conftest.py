"""Fixtures: a fake Binance on a simulated clock, seeded with a few days of BTC and ETH history."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from bot.clock import SimulatedClock
from tests.fakes.binance_server import FakeBinance
from tests.fakes.fixtures import standard_instruments
from tests.integration.datafetch.seed import NOW, seed_history


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock(NOW)


@asynccontextmanager
async def seeded_fake(clock: SimulatedClock) -> AsyncIterator[FakeBinance]:
    """Run a fake Binance on `clock` serving the seed history."""
    async with FakeBinance(standard_instruments(NOW), clock=clock) as server:
        seed_history(server)
        yield server


@pytest.fixture
async def fake(clock: SimulatedClock) -> AsyncIterator[FakeBinance]:
    async with seeded_fake(clock) as server:
        yield server
