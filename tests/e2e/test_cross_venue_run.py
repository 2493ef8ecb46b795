"""`carrybot run --once` and `carrybot status` with the spot leg on Bitstamp, both fakes
as processes: paper mode opens a BTC/USD hedge against BTC/USDT:USDT; live mode refuses
to start without the Bitstamp keys."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.domain import HedgeState
from tests.conftest import REPO_ROOT
from tests.e2e.bot_harness import ledger_at
from tests.e2e.cli import run_cli
from tests.fakes.binance_server import DEFAULT_API_KEY, DEFAULT_API_SECRET
from tests.fakes.fixtures import FakeBinanceProcess

pytestmark = [pytest.mark.slow]


@pytest.fixture
def fakes() -> Iterator[tuple[FakeBinanceProcess, str]]:
    binance = FakeBinanceProcess(standard=True)
    bitstamp = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.bitstamp_server", "--standard"],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert bitstamp.stdout is not None
        yield binance, bitstamp.stdout.readline().strip()
    finally:
        bitstamp.terminate()
        bitstamp.wait(timeout=10)
        binance.stop()


def _write(tmp_path: Path, binance: str, bitstamp: str) -> Path:
    config = tmp_path / "carrybot.toml"
    config.write_text(
        f'[exchange]\nspot_api_url = "{binance}"\nfutures_api_url = "{binance}"\n'
        f'[venues]\nspot = "bitstamp"\nbitstamp_api_url = "{bitstamp}"\n'
        '[universe]\nsymbols = ["BTC/USD"]\nmin_quote_volume_24h = 0\n'
        "[strategy]\nmin_hold_hours = 0\n"
        "[sizing]\nnotional_per_hedge = 1000\n[risk]\nmax_open_hedges = 1\n"
    )
    return config


def test_paper_run_once_opens_a_cross_venue_hedge_and_status_shows_both_venues(
    fakes: tuple[FakeBinanceProcess, str], tmp_path: Path
) -> None:
    binance, bitstamp_url = fakes
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    symbol = "BTC/USDT:USDT"
    binance.control("POST", "/_fake/funding", {"symbol": symbol, "rate": "0.001"})
    rows = [{"funding_time": (now - timedelta(hours=8 * (21 - i))).isoformat(), "rate": "0.001"}
            for i in range(21)]  # fmt: skip
    binance.control("POST", "/_fake/funding/history", {"symbol": symbol, "rows": rows})
    config = _write(tmp_path, binance.url, bitstamp_url)
    database = f"sqlite+aiosqlite:///{tmp_path / 'paper.db'}"
    env = {"DATABASE_URL": database}
    assert run_cli("db", "upgrade", "--config", str(config), cwd=tmp_path, env=env).code == 0

    result = run_cli("run", "--once", "--config", str(config), cwd=tmp_path, env=env)

    assert result.code == 0, result.stderr[-3000:]
    banner = "spot leg on bitstamp (URL override), perpetual on binance"
    assert banner in result.stderr + result.stdout

    async def check() -> None:
        async with ledger_at(database) as ledger:
            (hedge,) = await ledger.hedges.active()
            assert (hedge.pair, hedge.state) == ("BTC/USD", HedgeState.OPEN)
            assert {o.venue for o in await ledger.orders.for_hedge(hedge.id)} == {
                "paper:bitstamp+binance"
            }

    asyncio.run(check())
    status = run_cli("status", "--json", "--config", str(config), cwd=tmp_path, env=env)
    assert status.code == 0, status.stderr
    wallets = {b["wallet"] for b in json.loads(status.stdout)["balances"]}
    assert {"bitstamp:spot", "binance:futures"} <= wallets


def test_live_without_bitstamp_keys_exits_2_naming_them(
    fakes: tuple[FakeBinanceProcess, str], tmp_path: Path
) -> None:
    binance, bitstamp_url = fakes
    config = _write(tmp_path, binance.url, bitstamp_url)
    env = {
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'live.db'}",
        "BINANCE_API_KEY": DEFAULT_API_KEY,
        "BINANCE_API_SECRET": DEFAULT_API_SECRET,
    }

    result = run_cli("run", "--live", "--once", "--config", str(config), cwd=tmp_path, env=env)

    assert result.code == 2
    assert "BITSTAMP_API_KEY and BITSTAMP_API_SECRET" in result.stderr
    assert "Traceback" not in result.stderr
    assert binance.control("GET", "/_fake/requests?path=/fapi/v1/order&method=POST") == []
