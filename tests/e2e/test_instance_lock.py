"""One `carrybot run` per ledger: a second one exits 2 naming the first; a killed one frees it."""

from __future__ import annotations

import signal
import socket
from pathlib import Path

import pytest

from tests.e2e.bot_harness import BotEnv, server_exposure
from tests.e2e.conftest import make_env
from tests.fakes.fixtures import FakeBinanceProcess

pytestmark = [pytest.mark.slow]


@pytest.fixture(params=["sqlite", "postgres"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def live(fake_proc: FakeBinanceProcess, ledger_url: str, tmp_path: Path) -> BotEnv:
    env = make_env(fake_proc, tmp_path, ledger_url, live=True)
    env.write_config(extra="")
    env.config.write_text(
        env.config.read_text()
        .replace("max_open_hedges = 1", "max_open_hedges = 3")
        .replace("max_total_notional = 1000", "max_total_notional = 3000")
    )
    env.set_funding("BTC", "0.0006", history="0.0006")  # BTC attractive: each bot would enter
    env.set_funding("ETH", "0.00001", history="0.00001")
    env.set_perp_premium("ETH", "3000", "0", tick="0.01", qty="20")
    return env


def test_second_run_on_the_same_ledger_exits_2_naming_the_first_and_sends_nothing(
    live: BotEnv,
) -> None:
    first = live.spawn("run", "--live", "--duration", "60")
    try:
        first.wait_for_log("OPEN:", timeout=40)
        one_hedge = server_exposure(live)

        second = live.run_once()
        later = live.spawn("run", "--live", "--duration", "60")
        later_code = later.wait(timeout=60)
        status = live.cli("status")

        assert second.code == 2, second.stdout + second.stderr
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1, second.stderr
        assert lines[0].startswith("error: another carrybot is already running on the ledger")
        assert f"pid {first.proc.pid}" in lines[0]
        assert f"host {socket.gethostname()}" in lines[0]
        assert "since 20" in lines[0]
        assert "mode=LIVE" not in second.stdout  # refused before it says it is trading
        assert later_code == 2, later.log()
        assert status.code == 0, status.stderr  # read-only commands never take the lock
        assert server_exposure(live) == one_hedge  # still one BTC hedge, not two
        assert len(live.orders_on_server("/api/v3/order")) == 1
    finally:
        first.signal(signal.SIGTERM)
        assert first.wait(timeout=40) == 0, first.log()[-3000:]

    again = live.run_once()  # a cleanly stopped bot leaves the lock free
    assert again.code == 0, again.stderr[-3000:]


def test_lock_of_a_killed_bot_is_released_and_the_next_run_starts(live: BotEnv) -> None:
    first = live.spawn("run", "--live", "--duration", "60")
    first.wait_for_log("OPEN:", timeout=40)
    first.proc.send_signal(signal.SIGKILL)
    assert first.wait() == -signal.SIGKILL

    restart = live.run_once()

    assert restart.code == 0, restart.stderr[-3000:]
    assert "another carrybot" not in restart.stderr
    assert len(live.orders_on_server("/api/v3/order")) == 1  # restart adopted the hedge
