"""Market data is as old as the exchange says (clock-corrected), not as old as its arrival."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.domain import HedgeState
from tests.e2e.bot_harness import BotEnv, ledger_at
from tests.e2e.reliability_kit import btc_attractive_env
from tests.fakes.fixtures import FakeBinanceProcess

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture(params=["live", "paper"])
def env(
    request: pytest.FixtureRequest, fake_proc: FakeBinanceProcess, pg_url: str, tmp_path: Path
) -> BotEnv:
    return btc_attractive_env(fake_proc, tmp_path, pg_url, live=request.param == "live")


async def test_responses_stamped_600s_ago_block_entries_though_they_arrive_now(
    env: BotEnv,
) -> None:
    env.fake.control("POST", "/_fake/clock", {"market_lag_ms": 600_000})

    result = env.run_once()

    assert result.code == 0, result.stderr[-3000:]
    assert "market data is stale (600." in result.stderr, result.stderr[-3000:]
    assert env.orders_on_server("/api/v3/order") == []
    async with ledger_at(env.database_url) as ledger:
        assert await ledger.hedges.in_states(None) == []


async def test_a_server_clock_40s_behind_is_corrected_and_fresh_data_still_trades(
    env: BotEnv,
) -> None:
    # Every stamp is 40 s behind local time, but so is the server's clock: the data is fresh.
    env.fake.control("POST", "/_fake/clock", {"skew_ms": -40_000, "market_lag_ms": 40_000})

    result = env.run_once()

    assert result.code == 0, result.stderr[-3000:]
    async with ledger_at(env.database_url) as ledger:
        (hedge,) = await ledger.hedges.active()
        assert hedge.state is HedgeState.OPEN
