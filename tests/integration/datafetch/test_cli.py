"""`carrybot data fetch` end to end: argument errors, a real run against the fake Binance."""

from __future__ import annotations

import asyncio
import os
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from bot.backtest.history import load_history
from bot.cli import main
from tests.conftest import REPO_ROOT
from tests.e2e.cli import Result
from tests.fakes.binance_server import FakeBinance

_SCRUB = ("CARRYBOT_", "BINANCE_", "DATABASE_URL", "LOG_")


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str]]:
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "fetch", *args])
    return int(exit_info.value.code or 0), capsys.readouterr().err.splitlines()


async def run_cli(*args: str, cwd: Path) -> Result:
    """Run `python -m bot ARGS` while this event loop keeps serving the fake."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUB)}
    env |= {"PYTHONPATH": str(REPO_ROOT), "COLUMNS": "200"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    return Result(proc.returncode or 0, out.decode(), err.decode())


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["--symbols", "BTCUSDT", "--from", "2024-01-01"],
            "error: --symbols: 'BTCUSDT' is not a ccxt symbol; write BASE/QUOTE, e.g. BTC/USDT",
        ),
        (
            ["--symbols", "BTC/USDT", "--from", "2024-03-01", "--to", "2024-01-01"],
            "error: --from 2024-03-01 is not before --to 2024-01-01; pass a --from before --to",
        ),
        (
            ["--symbols", "BTC/USDT", "--from", "2024-01-01", "--kinds", "funding,index"],
            "error: --kinds: unknown kind 'index'; choose from funding, mark, perp, spot, "
            "current_quarter, next_quarter, delivery, coinm_current_quarter, coinm_next_quarter, "
            "coinm_delivery, coinm_perp, coinm_funding",
        ),
        (
            ["--symbols", "BTC/USDT", "--from", "01/02/2024"],
            "error: --from: '01/02/2024' is not a date; use YYYY-MM-DD or YYYY-MM-DDTHH:MM (UTC)",
        ),
    ],
)
def test_data_fetch_bad_argument_exits_2_naming_option_and_fix(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, args: list[str], expected: str
) -> None:
    code, err = run_main(capsys, *args, "--out", str(tmp_path))

    assert (code, err) == (2, [expected])


async def test_data_fetch_reports_exchange_error_then_resumes(
    fake: FakeBinance, tmp_path: Path
) -> None:
    config = tmp_path / "carrybot.toml"
    config.write_text(f'[exchange]\nspot_api_url = "{fake.url}"\nfutures_api_url = "{fake.url}"\n')
    args: tuple[str, ...] = (
        "data",
        "fetch",
        "--symbols",
        "BTC/USDT,ETH/USDT",
        "--from",
        "2024-01-01",
    )
    args += ("--to", "2024-01-04", "--out", "data", "--config", str(config))
    fake.add_fault(
        "reject", "/api/v3/klines", symbol="ETHUSDT", times=None, code=-1121, msg="Invalid symbol."
    )

    failed = await run_cli(*args, cwd=tmp_path)

    assert failed.code == 1, failed.stderr
    assert failed.stderr.splitlines()[-1] == (
        "error: ETHUSDT spot: Binance refused the request: Invalid symbol. (code -1121); "
        "data/binance/spot/ETHUSDT-1h.csv.gz not written, run the same command again to resume"
    )
    assert "BTCUSDT-1h.csv.gz" in failed.stdout and "fetched" in failed.stdout
    fake.faults.clear()
    fake.clear_requests()

    resumed = await run_cli(*args, cwd=tmp_path)

    assert resumed.code == 0, resumed.stderr
    assert [r.params["symbol"] for r in fake.requests_to("/api/v3/klines")] == ["ETHUSDT"]
    assert fake.requests_to("/fapi/v1/klines") == []
    history = load_history(tmp_path / "data", min_listing_quote_volume=Decimal(0))
    assert len(history.symbols["ETHUSDT"].spot) == 72
