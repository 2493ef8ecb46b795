"""A pair that stops trading while the bot runs: its hedge is closed with an alert, no re-entry.

The fake Binance changes an instrument's status at runtime, as Binance does when it announces
a delisting (a delivery date on the perpetual), settles a perpetual or halts a spot pair; the
bot notices through its status refresh (`instrument_status_seconds`), not a day later.
"""

from __future__ import annotations

import signal
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bot.domain import HedgeState
from tests.e2e.bot_harness import BotEnv, ledger_at, server_exposure
from tests.e2e.conftest import make_env
from tests.fakes.fixtures import FakeBinanceProcess

pytestmark = [pytest.mark.slow]
STATUS_SECONDS = 2


@pytest.fixture
def live(fake_proc: FakeBinanceProcess, tmp_path: Path) -> BotEnv:
    env = make_env(fake_proc, tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}", live=True)
    env.write_config(extra=f"instrument_status_seconds = {STATUS_SECONDS}\n")
    env.set_funding("BTC", "0.0006", history="0.0006")  # BTC attractive all along
    env.set_funding("ETH", "0.00001", history="0.00001")
    env.set_perp_premium("ETH", "3000", "0", tick="0.01", qty="20")
    return env


def set_status(env: BotEnv, symbol: str, **change: Any) -> None:
    env.fake.control("POST", "/_fake/instrument/status", {"symbol": symbol, **change})


def spot_buys(env: BotEnv) -> int:
    return sum(1 for r in env.orders_on_server("/api/v3/order") if r["params"]["side"] == "BUY")


def assert_flat(env: BotEnv) -> None:
    spot, short = server_exposure(env)
    assert short == 0 and spot < Decimal("0.00001"), (spot, short)  # dust below the spot step


def in_a_week() -> str:
    return (datetime.now(UTC) + timedelta(days=7)).isoformat()


@pytest.mark.parametrize(
    ("symbol", "change", "says"),
    [
        ("BTC/USDT:USDT", {"delivery_date": "week"}, "BTC/USDT:USDT is delisted at"),
        ("BTC/USDT:USDT", {"status": "SETTLING"}, "BTC/USDT:USDT status SETTLING"),
        ("BTC/USDT", {"status": "BREAK"}, "BTC/USDT status BREAK"),
    ],
)
async def test_a_held_pair_that_stops_trading_is_closed_with_an_alert_and_not_reentered(
    live: BotEnv, symbol: str, change: dict[str, str], says: str
) -> None:
    bot = live.spawn("run", "--live", "--duration", "60")
    try:
        bot.wait_for_log("OPEN:", timeout=40)
        changed_at = time.monotonic()
        if change.get("delivery_date") == "week":
            change = {"delivery_date": in_a_week()}
        set_status(live, symbol, **change)

        bot.wait_for_log("CLOSED: delisting:", timeout=30)
        noticed_after = time.monotonic() - changed_at
        time.sleep(4)  # several evaluate cycles on a pair that is still "attractive"
        buys = spot_buys(live)
    finally:
        bot.signal(signal.SIGTERM)
        assert bot.wait(timeout=40) == 0, bot.log()[-3000:]

    assert noticed_after < 15  # within a few status refreshes
    assert buys == 1  # the first entry only: no re-entry on the stopped pair
    assert_flat(live)
    async with ledger_at(live.database_url) as ledger:
        (hedge,) = await ledger.hedges.in_states(None)
        assert hedge.state is HedgeState.CLOSED
        alerts = await ledger.events.recent("hedge.delisting")
        assert len(alerts) == 1 and says in alerts[0].message
        assert alerts[0].hedge_id == hedge.id


async def test_a_pair_announced_for_delisting_gets_no_entry_and_the_bot_says_why(
    live: BotEnv,
) -> None:
    set_status(live, "BTC/USDT:USDT", delivery_date=in_a_week())

    result = live.run_once()

    assert result.code == 0, result.stderr[-3000:]
    assert "BTC/USDT takes no new position: BTC/USDT:USDT is delisted at" in result.stderr
    assert spot_buys(live) == 0


async def test_a_hedge_held_on_a_pair_that_stopped_while_the_bot_was_down_is_closed_at_start(
    live: BotEnv,
) -> None:
    assert live.run_once().code == 0
    assert spot_buys(live) == 1
    set_status(live, "BTC/USDT:USDT", status="PENDING_TRADING")

    restart = live.run_once()

    assert restart.code == 0, restart.stderr[-3000:]
    assert "CLOSED: delisting: BTC/USDT:USDT status PENDING_TRADING" in restart.stderr
    assert_flat(live)
    assert spot_buys(live) == 1
