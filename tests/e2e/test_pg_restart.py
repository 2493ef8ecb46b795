"""A real PostgreSQL server restarted and SIGKILLed under a running bot opening a hedge.

The cluster is the test's own (initdb + pg_ctl on a temporary directory and port), so the
server itself goes away, not only a TCP path to it: every session dies, the instance lock's
too, and after a SIGKILL the server runs crash recovery. Nothing recorded may be lost, no
order may reach the exchange without its intent in the ledger, and the bot carries on alone
(it re-takes its lock and opens the next hedge).
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import tempfile
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest

from bot.domain import HedgeState
from tests.conftest import unavailable
from tests.e2e.bot_harness import ledger_at, server_exposure, server_orders
from tests.e2e.conftest import make_env
from tests.e2e.test_bot_resilience import add_fault, wait_until
from tests.fakes.fixtures import FakeBinanceProcess
from tests.support.pg_cluster import LocalPostgres, find_bin

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture
def cluster() -> Iterator[LocalPostgres]:
    if find_bin("initdb") is None or find_bin("pg_ctl") is None:
        unavailable("PostgreSQL server binaries (initdb, pg_ctl) not found")
    root = Path(tempfile.mkdtemp(prefix="carrybot-pg-"))  # not under pytest's root-only tmp
    pg = LocalPostgres.create(root)
    pg.start()
    try:
        yield pg
    finally:
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)


async def _create_database(pg: LocalPostgres, name: str) -> None:
    conn = await asyncpg.connect(
        host="127.0.0.1", port=pg.port, user="postgres", database="postgres"
    )
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


@pytest.mark.parametrize("outage", ["restart", "sigkill"])
async def test_server_restart_or_kill_while_a_hedge_opens_loses_nothing_and_the_bot_resumes(
    cluster: LocalPostgres, fake_proc: FakeBinanceProcess, tmp_path: Path, outage: str
) -> None:
    await _create_database(cluster, "carrybot")
    env = make_env(fake_proc, tmp_path, cluster.url("carrybot"), live=True)
    env.config.write_text(
        env.config.read_text()
        .replace("max_open_hedges = 1", "max_open_hedges = 2")
        .replace("max_total_notional = 1000", "max_total_notional = 2000")
    )
    env.set_funding("BTC", "0.0006", history="0.0006")
    env.set_funding("ETH", "0.00001", history="0.00001")
    env.set_perp_premium("ETH", "3000", "0", tick="0.01", qty="20")
    add_fault(env, kind="delay", path="/fapi/v1/order", method="POST", delay_ms=3000, times=1)
    bot = env.spawn("run", "--live", "--duration", "120")
    try:
        wait_until(
            lambda: len(env.orders_on_server("/api/v3/order")) == 1,
            timeout=40,
            what="the BTC spot leg sent (the short still in flight)",
        )
        if outage == "restart":
            cluster.restart()
        else:
            cluster.kill()
            await asyncio.sleep(2)  # down for a while: the legs' outcomes arrive meanwhile
            cluster.start_after_crash()

        bot.wait_for_log("Heartbeat: 1 open hedge(s)", timeout=60)  # finished, by either path
        env.set_funding("ETH", "0.0008", history="0.0008")  # the next entry after the outage
        env.set_perp_premium("ETH", "3000", "3", tick="0.01", qty="20")
        wait_until(
            lambda: any(o["symbol"].startswith("ETH") for o in server_orders(env)),
            timeout=60,
            what="the ETH hedge opened by the bot on its own",
        )
        wait_until(
            lambda: sum(o["symbol"].startswith("ETH") for o in server_orders(env)) == 2,
            timeout=30,
            what="both ETH legs",
        )
    finally:
        bot.signal(signal.SIGTERM)
        code = bot.wait(timeout=60)
    log = bot.log_path.read_text()

    assert code == 0, log[-4000:]
    assert "Traceback" not in log, log[-4000:]
    async with ledger_at(env.database_url) as ledger:
        hedges = await ledger.hedges.in_states(None)
        assert {(h.pair, h.state) for h in hedges} == {
            ("BTC/USDT", HedgeState.OPEN),
            ("ETH/USDT", HedgeState.OPEN),
        }
        for order in server_orders(env):  # every order sent had its intent recorded first
            record = await ledger.orders.get(order["client_order_id"])
            assert record is not None, order
            assert record.filled == Decimal(order["filled"])  # and its outcome kept
        for hedge in hedges:  # the ledger holds what the exchange holds, no leg naked
            spot, short = server_exposure(env, hedge.pair.split("/")[0])
            assert short == hedge.perp_quantity and abs(spot - short) <= Decimal("0.001")
    assert Counter(o["client_order_id"] for o in server_orders(env)).most_common(1)[0][1] == 1
