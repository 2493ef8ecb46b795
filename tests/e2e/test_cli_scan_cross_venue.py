"""`carrybot scan` with the spot leg on Bitstamp: both fakes as processes, real ccxt."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.e2e.cli import run_cli

D = Decimal


def _start(module: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", module, *args], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True
    )


@pytest.fixture
def fake_urls() -> Iterator[tuple[str, str]]:
    binance = _start("tests.fakes.binance_server", "--port", "0", "--standard")
    bitstamp = _start("tests.fakes.bitstamp_server", "--standard")
    try:
        assert binance.stdout is not None and bitstamp.stdout is not None
        yield binance.stdout.readline().strip(), bitstamp.stdout.readline().strip()
    finally:
        for proc in (binance, bitstamp):
            proc.terminate()
            proc.wait(timeout=10)


def _config(tmp_path: Path, binance: str, bitstamp: str) -> Path:
    config = tmp_path / "carrybot.toml"
    config.write_text(
        f'[exchange]\nspot_api_url = "{binance}"\nfutures_api_url = "{binance}"\n'
        f'[venues]\nspot = "bitstamp"\nbitstamp_api_url = "{bitstamp}"\n'
        '[universe]\nsymbols = ["BTC/USD", "BTC/USDT", "ETH/USD"]\nmin_quote_volume_24h = 0\n'
    )
    return config


def test_scan_shows_cross_venue_rows_with_usd_basis_in_usdt_terms(
    fake_urls: tuple[str, str], tmp_path: Path
) -> None:
    config = _config(tmp_path, *fake_urls)

    result = run_cli("scan", "--json", "--config", str(config), cwd=tmp_path)

    assert result.code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["venues"] == {
        "spot": "bitstamp", "perp": "binance", "spot_taker": 0.004, "futures_taker": 0.0005,
        "usd_per_usdt": 0.999,
    }  # fmt: skip
    rows = {r["symbol"]: r for r in report["rows"]}
    assert {"BTC/USD", "BTC/USDT", "ETH/USD"} <= set(rows)
    btc = rows["BTC/USD"]
    assert btc["perp_symbol"] == "BTC/USDT:USDT"
    assert (btc["spot_venue"], btc["perp_venue"]) == ("bitstamp", "binance")
    # perp bid 50010 USDT against the Bitstamp ask 49951 USD = 50001.001 USDT at 0.999
    ask_usdt = D("49951") / D("0.999")
    assert btc["basis_bps"] == pytest.approx(float((D("50010") - ask_usdt) / ask_usdt * 10_000))
    assert btc["basis_bps"] < 2  # unconverted, USD against USDT would read 11.8 bps
    assert btc["funding_rate"] == 0.0001
    # both legs, open and close: 2 × (0.40 % Bitstamp + 0.05 % Binance)
    assert btc["fees_bps"] == pytest.approx(90.0)
    assert rows["ETH/USD"]["interval_hours"] == 4


def test_scan_table_names_both_venues_and_the_rate(
    fake_urls: tuple[str, str], tmp_path: Path
) -> None:
    config = _config(tmp_path, *fake_urls)

    result = run_cli("scan", "--config", str(config), cwd=tmp_path)

    assert result.code == 0, result.stderr
    assert "BTC/USD " in result.stdout
    assert "spot on bitstamp (taker 0.40%), perpetual on binance (taker 0.05%)" in result.stdout
    assert "USDT/USD 0.99900" in result.stdout
