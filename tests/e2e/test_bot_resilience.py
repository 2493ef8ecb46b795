"""The long-running bot under crashes, signals, exchange outages and database outages."""

from __future__ import annotations

import signal
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest

from bot.domain import HedgeState
from tests.conftest import PG_HOST, PG_PORT
from tests.e2e.bot_harness import BotEnv, ledger_at, server_exposure, server_orders
from tests.e2e.conftest import make_env
from tests.fakes.fixtures import FakeBinanceProcess
from tests.fakes.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
D = Decimal
BTC_PERP_STEP = D("0.001")


@pytest.fixture
def live(fake_proc: FakeBinanceProcess, pg_url: str, tmp_path: Path) -> BotEnv:
    env = make_env(fake_proc, tmp_path, pg_url, live=True)
    env.set_funding("BTC", "0.0006", history="0.0006")
    env.set_funding("ETH", "0.00001", history="0.00001")
    env.set_perp_premium("ETH", "3000", "0", tick="0.01", qty="20")
    return env


def add_fault(env: BotEnv, **fault: object) -> None:
    env.fake.control("POST", "/_fake/faults", fault)


def wait_until(predicate, timeout: float = 30, what: str = "condition") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def assert_consistent(env: BotEnv) -> None:
    """Exchange and ledger agree, nothing is duplicated, no leg is naked."""
    spot, short = server_exposure(env)
    assert abs(spot - short) <= BTC_PERP_STEP, (spot, short)
    orders = server_orders(env)
    assert all(n == 1 for n in Counter(o["client_order_id"] for o in orders).values())
    async with ledger_at(env.database_url) as ledger:
        active = await ledger.hedges.active()
        assert all(h.state is HedgeState.OPEN for h in active)
        assert sum((h.perp_quantity for h in active), D(0)) == short
        for o in orders:
            record = await ledger.orders.get(o["client_order_id"])
            assert record is not None, f"{o['client_order_id']} on the exchange, not in ledger"
            assert record.filled == D(o["filled"])


@pytest.mark.parametrize("point", ["after_ledger_write", "after_both_sends", "after_one_ack"])
async def test_sigkill_while_opening_then_restart_leaves_ledger_and_exchange_agreeing(
    live: BotEnv, point: str
) -> None:
    env: dict[str, str] = {}
    if point == "after_ledger_write":
        env["CARRYBOT_FAILPOINT"] = "open.persisted"
    elif point == "after_one_ack":
        env["CARRYBOT_FAILPOINT"] = "leg.acked"
        add_fault(live, kind="delay", path="/fapi/v1/order", method="POST", delay_ms=1500)
    else:
        for path in ("/api/v3/order", "/fapi/v1/order"):
            add_fault(live, kind="delay", path=path, method="POST", delay_ms=4000)
    bot = live.spawn("run", "--live", "--once", **env)
    if point == "after_both_sends":
        wait_until(
            lambda: (
                len(live.orders_on_server("/api/v3/order")) == 1
                and len(live.orders_on_server()) == 1
            ),
            what="both legs at the server",
        )
        bot.proc.kill()
    code = bot.wait()

    assert code == -signal.SIGKILL, bot.log()[-3000:]
    async with ledger_at(live.database_url) as ledger:
        (crashed,) = await ledger.hedges.active()
        assert crashed.state is HedgeState.OPENING
    time.sleep(0 if point == "after_ledger_write" else 2.5)  # let delayed responses drain

    restart = live.run_once()

    assert restart.code == 0, restart.stderr[-3000:]
    async with ledger_at(live.database_url) as ledger:
        after = await ledger.hedges.get(crashed.id)
        assert after is not None
        if point == "after_ledger_write":
            assert after.state is HedgeState.FAILED  # nothing was sent: nothing to unwind
            assert not [o for o in server_orders(live) if crashed.uid in o["client_order_id"]]
        else:
            assert after.state is HedgeState.OPEN  # both legs existed: adopted, not re-sent
    await assert_consistent(live)


async def test_sigterm_with_a_hedge_in_flight_finishes_it_and_exits_0(live: BotEnv) -> None:
    add_fault(live, kind="delay", path="/fapi/v1/order", method="POST", delay_ms=3000)
    bot = live.spawn("run", "--live")  # no --duration: only the signal stops it
    try:
        wait_until(lambda: len(live.orders_on_server("/api/v3/order")) == 1, what="the spot leg")

        bot.signal(signal.SIGTERM)
        started = time.monotonic()
        code = bot.wait(timeout=40)
    finally:
        bot.kill()  # a failed wait must not leave the bot running after the test

    assert code == 0, bot.log()[-3000:]
    assert time.monotonic() - started < 30
    async with ledger_at(live.database_url) as ledger:
        (hedge,) = await ledger.hedges.in_states(None)
        assert hedge.state is HedgeState.OPEN
        (run,) = await ledger.runs.latest(1)
        assert run.stop_reason == "signal"
    await assert_consistent(live)


async def test_exchange_outage_blocks_entries_then_trading_resumes_by_itself(
    live: BotEnv,
) -> None:
    add_fault(live, kind="server_error", path="/fapi/v1/premiumIndex", times=None, status=503)
    bot = live.spawn("run", "--live", "--duration", "60")
    try:
        bot.wait_for_log("Snapshot failed", timeout=30)
        time.sleep(3)  # the outage lasts a few polls (minutes in production)
        assert live.orders_on_server("/api/v3/order") == []

        live.fake.control("DELETE", "/_fake/faults")
        bot.wait_for_log("Market data is back", timeout=40)
        bot.wait_for_log("OPEN:", timeout=30)
    finally:
        bot.signal(signal.SIGTERM)
        assert bot.wait(timeout=40) == 0
    await assert_consistent(live)


async def test_database_cut_under_a_running_bot_keeps_funding_and_sends_nothing_new(
    fake_proc: FakeBinanceProcess, pg_url: str, tmp_path: Path
) -> None:
    proxy = TcpProxy(PG_HOST, PG_PORT).start()
    try:
        name = pg_url.rsplit("/", 1)[1]
        via_proxy = f"postgresql+asyncpg://postgres@127.0.0.1:{proxy.port}/{name}"
        env = make_env(fake_proc, tmp_path, via_proxy, live=True)
        env.write_config(extra="")
        env.config.write_text(
            env.config.read_text()
            .replace("max_open_hedges = 1", "max_open_hedges = 2")
            .replace("max_total_notional = 1000", "max_total_notional = 2000")
        )
        env.set_funding("BTC", "0.0006", history="0.0006")
        env.set_funding("ETH", "0.00001", history="0.00001")
        env.set_perp_premium("ETH", "3000", "0", tick="0.01", qty="20")
        bot = env.spawn("run", "--live", "--duration", "90")
        try:
            bot.wait_for_log("OPEN:", timeout=40)

            proxy.cut()
            bot.wait_for_log("Database unavailable", timeout=30)
            env.set_funding("ETH", "0.0008", history="0.0008")  # ETH becomes attractive
            env.set_perp_premium("ETH", "3000", "3", tick="0.01", qty="20")
            env.settle_like_binance("BTC", "0.0006", "50010")
            time.sleep(3)  # more cycles with the database down
            eth_orders_during_outage = [
                o for o in server_orders(env) if o["symbol"].startswith("ETH")
            ]
            proxy.restore()
            bot.wait_for_log("Database is back", timeout=40)
            wait_until(
                lambda: any(o["symbol"].startswith("ETH") for o in server_orders(env)),
                timeout=40,
                what="the ETH hedge after recovery",
            )
        finally:
            bot.signal(signal.SIGTERM)
            code = bot.wait(timeout=40)
        assert code == 0, bot.log()[-3000:]
        assert eth_orders_during_outage == []
        async with ledger_at(env.database_url) as ledger:
            btc_funding = [
                p for p in await ledger.funding.payments() if p.symbol == "BTC/USDT:USDT"
            ]
            assert len(btc_funding) == 1  # received while the database was down, kept, written
            assert {h.pair for h in await ledger.hedges.active()} == {"BTC/USDT", "ETH/USDT"}
    finally:
        proxy.close()


async def test_halt_takes_effect_within_one_cycle_and_resume_reopens(live: BotEnv) -> None:
    halted = live.cli("halt", "--reason", "e2e")
    assert halted.code == 0
    bot = live.spawn("run", "--live", "--duration", "60")
    try:
        bot.wait_for_log("trading is HALTED", timeout=30)
        assert live.orders_on_server("/api/v3/order") == []

        resumed = live.cli("resume")
        assert resumed.code == 0
        bot.wait_for_log("OPEN:", timeout=30)
    finally:
        bot.signal(signal.SIGTERM)
        assert bot.wait(timeout=40) == 0
