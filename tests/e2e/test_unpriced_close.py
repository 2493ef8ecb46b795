"""A close whose perpetual has no quote sends neither leg (paper mode: no close_incomplete)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.domain import HedgeState, OrderPurpose
from tests.e2e.bot_harness import ledger_at
from tests.e2e.reliability_kit import btc_attractive_env
from tests.fakes.fixtures import FakeBinanceProcess

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


async def test_close_without_a_perp_quote_waits_with_both_legs_held_then_closes_when_priced(
    fake_proc: FakeBinanceProcess, pg_url: str, tmp_path: Path
) -> None:
    env = btc_attractive_env(fake_proc, tmp_path, pg_url, live=False)
    opened = env.run_once()
    assert opened.code == 0, opened.stderr[-3000:]
    # BTC stops paying (the strategy wants out) and its perpetual's book empties.
    env.set_funding("BTC", "-0.0003", history="-0.0003")
    env.fake.control("POST", "/_fake/book", {"symbol": "BTC/USDT:USDT", "bids": [], "asks": []})

    blocked = env.run_once()

    assert blocked.code == 0, blocked.stderr[-3000:]
    assert "not closed now: no price for BTC/USDT:USDT" in blocked.stderr, blocked.stderr[-3000:]
    async with ledger_at(env.database_url) as ledger:
        (hedge,) = await ledger.hedges.active()
        assert hedge.state is HedgeState.OPEN and hedge.spot_quantity > 0
        orders = await ledger.orders.for_hedge(hedge.id)
        assert {o.purpose for o in orders} == {OrderPurpose.OPEN}  # nothing sent to close
        assert await ledger.events.recent("hedge.close_incomplete") == []

    env.set_perp_premium("BTC", "50000", "0", tick="0.1", qty="5")  # priced again
    closed = env.run_once()

    assert closed.code == 0, closed.stderr[-3000:]
    async with ledger_at(env.database_url) as ledger:
        after = await ledger.hedges.get(hedge.id)
        assert after is not None and after.state is HedgeState.CLOSED
