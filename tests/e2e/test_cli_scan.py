"""`carrybot scan --json` against the fake Binance running as a separate process."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.e2e.cli import run_cli


@pytest.fixture
def fake_url() -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.binance_server", "--port", "0", "--universe", "8"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_scan_json_ranks_the_fake_market_without_keys(fake_url: str, tmp_path: Path) -> None:
    config = tmp_path / "carrybot.toml"
    config.write_text(
        f'[exchange]\nspot_api_url = "{fake_url}"\nfutures_api_url = "{fake_url}"\n'
        "[universe]\nsymbols = []\nmin_quote_volume_24h = 0\n"
    )

    result = run_cli("scan", "--json", "--top", "5", "--config", str(config), cwd=tmp_path)

    assert result.code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["pairs_scanned"] == 8
    rows = report["rows"]
    assert len(rows) == 5
    nets = [r["net_apr"] for r in rows]
    assert nets == sorted(nets, reverse=True)
    assert {"symbol", "funding_rate", "interval_hours", "funding_apr", "predicted_rate",
            "basis_bps", "breakeven_hours", "next_funding_in_seconds", "volume_24h",
            "would_enter"} <= set(rows[0])  # fmt: skip
    assert {r["interval_hours"] for r in report["rows"] if r["carry"] == "perpetual"} <= {4, 8}
