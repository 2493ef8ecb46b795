"""`carrybot status` and `config check` with `[streams]`: maintenance windows, bad values."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.e2e.cli import run_cli


def _config(tmp_path: Path, streams: str) -> Path:
    path = tmp_path / "carrybot.toml"
    path.write_text(f"[streams]\n{streams}\n")
    return path


def test_status_says_a_maintenance_window_blocks_entries(tmp_path: Path) -> None:
    start = (datetime.now(UTC) - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    config = _config(tmp_path, f'maintenance = [{{ start = "{start}", duration_minutes = 60 }}]')
    env = {"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}"}
    assert run_cli("db", "upgrade", "--config", str(config), cwd=tmp_path, env=env).code == 0

    as_json = run_cli("status", "--json", "--config", str(config), cwd=tmp_path, env=env)
    text = run_cli("status", "--config", str(config), cwd=tmp_path, env=env)

    assert as_json.code == 0, as_json.stderr
    report = json.loads(as_json.stdout)
    assert report["streams"] == []
    assert "is running: no new hedges until" in report["maintenance"]["message"]
    assert "entries blocked: exchange maintenance" in text.stdout


def test_a_bad_streams_value_is_one_line_naming_the_key_and_exit_2(tmp_path: Path) -> None:
    config = _config(tmp_path, 'spot_ws_url = "https://stream.binance.com"')
    result = run_cli("config", "check", "--config", str(config), cwd=tmp_path)
    assert result.code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "streams.spot_ws_url" in lines[0] and "ws://" in lines[0]
