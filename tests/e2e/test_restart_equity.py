"""A restart while holding a hedge must not invent a daily loss from a held asset unpriced."""

from __future__ import annotations

import signal
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.domain import HedgeState
from bot.domain.ledger import TradingState
from bot.persistence.db import create_engine
from bot.persistence.models import BalanceSnapshotRow
from tests.e2e.bot_harness import BotEnv, ledger_at
from tests.e2e.reliability_kit import add_fault, btc_attractive_env, tune
from tests.fakes.fixtures import FakeBinanceProcess

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
D = Decimal


async def total_snapshots(url: str) -> list[Decimal]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                select(BalanceSnapshotRow.value_usdt)
                .where(BalanceSnapshotRow.wallet == "total")
                .order_by(BalanceSnapshotRow.taken_at)
            )
            return [r.value_usdt for r in rows]
    finally:
        await engine.dispose()


@pytest.fixture
def holding(fake_proc: FakeBinanceProcess, pg_url: str, tmp_path: Path) -> BotEnv:
    env = btc_attractive_env(fake_proc, tmp_path, pg_url)
    tune(env, "risk", daily_loss_limit=100)
    first = env.run_once()
    assert first.code == 0, first.stderr[-3000:]
    return env


async def test_restart_whose_first_quotes_are_stale_defers_the_snapshot_and_keeps_trading_active(
    holding: BotEnv,
) -> None:
    """The behaviour that matters after a restart: no daily loss from a held asset unpriced.

    The restarted bot's cycle polls before it snapshots balances, so its first snapshot is
    priced by that poll's quotes, unless they are not fresh: here the exchange answers the
    first two spot quote requests 4 s late, older than `max_data_age_seconds` when they
    arrive, while balances come at once. The snapshot is deferred (BTC is not valued at
    nothing), and taken after the first poll that prices BTC.
    """
    async with ledger_at(holding.database_url) as ledger:
        (hedge,) = await ledger.hedges.active()
        assert hedge.state is HedgeState.OPEN
    (before,) = await total_snapshots(holding.database_url)
    tune(holding, "risk", max_data_age_seconds=3)
    add_fault(holding, kind="delay", path="/api/v3/ticker/bookTicker", times=2, delay_ms=4000)

    # The test ends the bot itself (SIGTERM) once the deferred snapshot is taken; the
    # duration is only a backstop. It was 20 s, which a loaded machine used up before the
    # snapshot came (two 4 s quote polls, start-up and cycles slowed down): the bot stopped
    # first and the wait below failed.
    bot = holding.spawn("run", "--live", "--duration", "180")
    try:
        bot.wait_for_log("Balance snapshot deferred: no fresh price yet for BTC", timeout=60)
        bot.wait_for_log("Heartbeat", timeout=60)
        bot.wait_for_log("Deferred balance snapshot taken", timeout=60)
    finally:
        bot.signal(signal.SIGTERM)
        assert bot.wait(timeout=40) == 0
    log = bot.log_path.read_text()

    assert "daily_loss_limit" not in log, log[-3000:]
    totals = await total_snapshots(holding.database_url)
    assert len(totals) >= 2  # snapshots resumed once BTC was priced
    assert all(abs(t - before) < 5 for t in totals), (before, totals)  # fees, not a position
    async with ledger_at(holding.database_url) as ledger:
        status = await ledger.trading_state.get()
        assert status is None or status.state is TradingState.ACTIVE
