"""A restart after more than a week down adopts every fill and funding payment of the gap.

Binance answers trade history one window at a time (USDⓈ-M 7 days, spot 24 hours; ccxt adds
the USDⓈ-M `endTime` itself), so a single request from the stop time misses what came later.
The hedge's ledger is moved ten days into the past, as if the bot had opened it then and been
down since; its fills were never recorded (the crash came before). On restart the bot must
find them window by window, and read the funding income over the whole gap.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import delete, select

from bot.persistence.db import create_engine, session_factory
from bot.persistence.models import FillRow, HedgeRow, OrderRow
from tests.e2e.bot_harness import BotEnv, ledger_at, server_orders
from tests.e2e.conftest import make_env
from tests.fakes.fixtures import FakeBinanceProcess

pytestmark = [pytest.mark.slow]
DOWN = timedelta(days=10)
WEEK_MS = 7 * 24 * 3600 * 1000


@pytest.fixture
def live(fake_proc: FakeBinanceProcess, tmp_path: Path) -> BotEnv:
    env = make_env(fake_proc, tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}", live=True)
    env.set_funding("BTC", "0.0006", history="0.0006")
    env.set_funding("ETH", "0.00001", history="0.00001")
    env.set_perp_premium("ETH", "3000", "0", tick="0.01", qty="20")
    return env


async def forget_fills_and_move_back(url: str, by: timedelta) -> None:
    """The ledger as a bot that opened its hedge `by` ago and crashed before the fills."""
    engine = create_engine(url)
    try:
        async with session_factory(engine)() as session:
            for order in (await session.scalars(select(OrderRow))).all():
                order.created_at -= by
                order.updated_at -= by
                order.sent_at = order.sent_at - by if order.sent_at else None
                order.acked_at = order.acked_at - by if order.acked_at else None
            for hedge in (await session.scalars(select(HedgeRow))).all():
                hedge.created_at -= by
                hedge.updated_at -= by
                hedge.opened_at = hedge.opened_at - by if hedge.opened_at else None
            await session.execute(delete(FillRow))
            await session.commit()
    finally:
        await engine.dispose()


async def test_restart_after_ten_days_adopts_fills_and_funding_from_the_whole_gap(
    live: BotEnv,
) -> None:
    assert live.run_once().code == 0
    opened = server_orders(live)
    assert len(opened) == 2
    await forget_fills_and_move_back(live.database_url, DOWN)
    live.fake.control("DELETE", "/_fake/requests")
    restarted_at = datetime.now(UTC)

    restart = live.run_once()

    assert restart.code == 0, restart.stderr[-3000:]
    async with ledger_at(live.database_url) as ledger:
        (hedge,) = await ledger.hedges.active()
        fills = await ledger.fills.for_hedge(hedge.id)
        assert {f.client_order_id for f in fills} == {o["client_order_id"] for o in opened}
        assert (
            sum((f.quantity for f in fills if f.symbol == "BTC/USDT:USDT"), Decimal(0))
            == hedge.perp_quantity
        )
        opened_at = hedge.opened_at
    assert opened_at is not None
    # Funding: income read in consecutive windows from before the opening up to now.
    income = live.fake.control("GET", "/_fake/requests?path=/fapi/v1/income")
    open_end = int(restarted_at.timestamp() * 1000) + WEEK_MS  # the last window: up to now
    spans = sorted(
        (int(r["params"]["startTime"]), int(r["params"].get("endTime", open_end))) for r in income
    )
    assert spans[0][0] <= opened_at.timestamp() * 1000
    assert spans[-1][1] >= restarted_at.timestamp() * 1000
    assert all(b[0] == a[1] + 1 for a, b in itertools.pairwise(spans))  # no gap
    assert len(spans) >= 2 and all(end - start < WEEK_MS for start, end in spans[:-1])
    perp_requests = live.fake.control("GET", "/_fake/requests?path=/fapi/v1/userTrades")
    windows = [
        int(r["params"]["endTime"]) - int(r["params"]["startTime"])
        for r in perp_requests
        if "endTime" in r["params"]
    ]
    assert len(perp_requests) >= 2 and all(w <= WEEK_MS for w in windows)  # 10 days: 2 windows
    spot_requests = live.fake.control("GET", "/_fake/requests?path=/api/v3/myTrades")
    assert len(spot_requests) >= 10  # 24-hour windows over ten days
