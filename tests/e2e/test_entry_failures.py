"""A leg the exchange keeps rejecting: no churn, filters reloaded, losses counted as booked."""

from __future__ import annotations

import signal
import time
from decimal import Decimal
from pathlib import Path

import pytest

from bot.domain import HedgeState
from bot.domain.ledger import TradingState
from tests.e2e.bot_harness import BotEnv, ledger_at, server_exposure
from tests.e2e.reliability_kit import add_fault, btc_attractive_env, requests, tune
from tests.fakes.fixtures import FakeBinanceProcess

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
D = Decimal
MIN_NOTIONAL = {
    "kind": "reject",
    "path": "/fapi/v1/order",
    "method": "POST",
    "times": None,
    "code": -4164,
    "msg": "Order's notional must be no smaller than 5000 (unless you choose reduce only).",
}


@pytest.fixture
def churn(fake_proc: FakeBinanceProcess, pg_url: str, tmp_path: Path) -> BotEnv:
    env = btc_attractive_env(fake_proc, tmp_path, pg_url, poll=2.0)
    tune(env, "schedule", balance_snapshot_seconds=300)
    return env


def spot_orders(env: BotEnv) -> list[dict[str, object]]:
    return requests(env, "/api/v3/order", "POST")


def side_of(order: dict[str, object]) -> object:
    """Return the `side` parameter of a logged order request."""
    params = order["params"]
    assert isinstance(params, dict)
    return params["side"]


# The cool-down after a failed entry is 60 s by default; here 24 s, and the bot runs for 20 s
# of it: 10 evaluate cycles (every 2 s) that would each churn a round trip without it. The
# doubling and the cap of the cool-down are on an injected clock in test_entry_backoff.py.
COOLDOWN_SECONDS = 24
RUN_SECONDS = 20


async def test_persistently_rejected_perp_leg_makes_one_round_trip_per_cooldown_not_one_per_cycle(
    churn: BotEnv,
) -> None:
    tune(churn, "risk", entry_failure_backoff_seconds=COOLDOWN_SECONDS)
    add_fault(churn, **MIN_NOTIONAL)
    bot = churn.spawn("run", "--live", "--duration", str(RUN_SECONDS))
    code = bot.wait(timeout=RUN_SECONDS + 60)
    log = bot.log_path.read_text()

    assert code == 0, log[-3000:]
    sides = [side_of(o) for o in spot_orders(churn)]
    round_trips = sides.count("BUY")
    print(
        f"\nFIGURE spot round trips in {RUN_SECONDS} s (10 evaluate cycles) of a rejected "
        f"perp leg (-4164): {round_trips}"
    )
    assert round_trips <= 1 and sides == ["BUY", "SELL"], sides
    assert f"no new entry on BTC/USDT for {COOLDOWN_SECONDS}s" in log
    spot, short = server_exposure(churn)
    assert short == 0 and spot < D("0.001")  # unwound: nothing left but dust
    async with ledger_at(churn.database_url) as ledger:
        hedges = await ledger.hedges.in_states(None)
        assert [h.state for h in hedges] == [HedgeState.FAILED]
        backoff = await ledger.events.recent("entry.backoff", 500)
        assert len(backoff) == 1 and backoff[0].data["reason"] == "code -4164"


async def test_filter_error_reloads_the_markets_before_the_pair_is_tried_again(
    churn: BotEnv,
) -> None:
    tune(churn, "risk", entry_failure_backoff_seconds=3)
    add_fault(churn, **(MIN_NOTIONAL | {"times": 1}))
    bot = churn.spawn("run", "--live", "--duration", "40")
    try:
        bot.wait_for_log("OPEN:", timeout=35)  # the retry after the backoff succeeds
    finally:
        bot.signal(signal.SIGTERM)
        assert bot.wait(timeout=40) == 0
    perp_orders = requests(churn, "/fapi/v1/order", "POST")
    rejected_at, retried_at = perp_orders[0]["at"], perp_orders[1]["at"]
    infos = [r["at"] for r in requests(churn, "/fapi/v1/exchangeInfo")]
    assert any(rejected_at < t < retried_at for t in infos), "markets not reloaded before retry"
    assert retried_at - rejected_at >= 3  # the backoff held
    assert "Reloaded the filters of BTC/USDT" in bot.log_path.read_text()


async def test_account_level_failures_stop_all_entries_with_an_alert(churn: BotEnv) -> None:
    tune(churn, "risk", entry_failure_backoff_seconds=1)
    add_fault(
        churn,
        kind="reject",
        path="/fapi/v1/order",
        method="POST",
        times=None,
        code=-2019,
        msg="Margin is insufficient.",
    )
    bot = churn.spawn("run", "--live", "--duration", "40")
    try:
        bot.wait_for_log("entries stopped", timeout=35)
        time.sleep(4)  # more cycles: nothing more is sent
    finally:
        bot.signal(signal.SIGTERM)
        assert bot.wait(timeout=40) == 0
    buys = [o for o in spot_orders(churn) if side_of(o) == "BUY"]
    assert len(buys) == 2  # one failed entry, one more on the same account error, then stop
    async with ledger_at(churn.database_url) as ledger:
        status = await ledger.trading_state.get()
        assert status is not None and status.state is TradingState.REDUCING
        assert "carrybot resume" in status.reason
        (alert, *_) = await ledger.events.recent("trading.state", 500)
        assert alert.severity.value == "alert" and "entries stopped" in alert.message


async def test_fees_and_losses_of_a_failed_entry_count_toward_the_daily_limit_at_once(
    churn: BotEnv,
) -> None:
    tune(churn, "risk", daily_loss_limit=1, entry_failure_backoff_seconds=1)
    add_fault(churn, **MIN_NOTIONAL)
    bot = churn.spawn("run", "--live", "--duration", "30")
    try:
        bot.wait_for_log("reached daily_loss_limit 1", timeout=25)
    finally:
        bot.signal(signal.SIGTERM)
        assert bot.wait(timeout=40) == 0
    # The 300 s balance snapshot never came again: the booked round trip tripped the limit.
    buys = [o for o in spot_orders(churn) if side_of(o) == "BUY"]
    assert len(buys) == 1
    async with ledger_at(churn.database_url) as ledger:
        status = await ledger.trading_state.get()
        assert status is not None and status.state is TradingState.REDUCING
