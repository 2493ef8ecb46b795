"""The database goes down with both legs of a hedge in flight: the fills are kept, and the
hedge is finished by client order id as soon as the database is back (not at a restart)."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from bot.domain import HedgeState, OrderStatus
from tests.conftest import PG_HOST, PG_PORT
from tests.e2e.bot_harness import ledger_at, server_exposure
from tests.e2e.reliability_kit import add_fault, btc_attractive_env, tune
from tests.fakes.fixtures import FakeBinanceProcess
from tests.fakes.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


async def test_fills_of_orders_in_flight_during_a_db_cut_are_kept_and_the_hedge_opens_when_back(
    fake_proc: FakeBinanceProcess, pg_url: str, tmp_path: Path
) -> None:
    proxy = TcpProxy(PG_HOST, PG_PORT).start()
    try:
        name = pg_url.rsplit("/", 1)[1]
        via_proxy = f"postgresql+asyncpg://postgres@127.0.0.1:{proxy.port}/{name}"
        env = btc_attractive_env(fake_proc, tmp_path, via_proxy)
        tune(env, "schedule", reconcile_seconds=300)  # the periodic check is far away
        for path in ("/api/v3/order", "/fapi/v1/order"):
            add_fault(env, kind="delay", path=path, method="POST", delay_ms=2000)
        bot = env.spawn("run", "--live", "--duration", "60")
        try:
            bot.wait_for_log("Opening hedge", timeout=30)
            time.sleep(0.5)
            proxy.cut()  # both orders are at the exchange, their answers not back yet
            bot.wait_for_log("Database unavailable", timeout=30)  # at the orders' answers
            time.sleep(3)
            proxy.restore()
            back = time.monotonic()
            bot.wait_for_log("Database is back: finishing hedge", timeout=30)
            async with ledger_at(pg_url) as ledger:
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline:
                    (hedge,) = await ledger.hedges.in_states(None)
                    if hedge.state is HedgeState.OPEN:
                        break
                    time.sleep(0.2)
                finished_after = time.monotonic() - back
        finally:
            bot.signal(signal.SIGTERM)
            code = bot.wait(timeout=40)
        log = bot.log_path.read_text()
        assert code == 0, log[-3000:]
        print(f"\nFIGURE hedge OPEN {finished_after:.1f} s after the database was back")
        assert hedge.state is HedgeState.OPEN, log[-3000:]
        assert finished_after < 15  # within a few cycles, not reconcile_seconds
        async with ledger_at(pg_url) as ledger:
            orders = await ledger.orders.for_hedge(hedge.id)
            assert {o.status for o in orders} == {OrderStatus.FILLED}
            assert all(o.filled > 0 for o in orders)
            fills = await ledger.fills.for_hedge(hedge.id)
            assert {f.symbol for f in fills} == {"BTC/USDT", "BTC/USDT:USDT"}
        spot, short = server_exposure(env)
        assert short == hedge.perp_quantity and spot >= short
        assert len(env.orders_on_server("/api/v3/order")) == 1  # nothing sent twice
        assert len(env.orders_on_server()) == 1
    finally:
        proxy.close()
