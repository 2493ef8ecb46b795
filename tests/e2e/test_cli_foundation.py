"""The CLI as a user meets it: config check, db upgrade, start-up refusal, exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.e2e.cli import run_cli

SECRET_KEY = "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdefghijklmnopqrstuvwxyzAB"
SECRET = "SeCrEt0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUV"


def test_config_check_prints_effective_config_with_secrets_redacted(tmp_path: Path) -> None:
    result = run_cli(
        "config",
        "check",
        "--config",
        str(REPO_ROOT / "config.example.toml"),
        cwd=tmp_path,
        env={
            "BINANCE_API_KEY": SECRET_KEY,
            "BINANCE_API_SECRET": SECRET,
            "LOG_LEVEL": "DEBUG",
            "DATABASE_URL": "postgresql+asyncpg://bob:hunter2pass@db.example/carry",
        },
    )

    assert result.code == 0, result.stderr
    assert "config OK" in result.stdout
    assert "BINANCE_API_KEY = ***" in result.stdout
    assert "entry_margin = 0.002" in result.stdout
    for secret in (SECRET_KEY, SECRET, "hunter2pass"):
        assert secret not in result.stdout + result.stderr


def test_config_check_json_is_machine_readable(tmp_path: Path) -> None:
    import json

    result = run_cli("config", "check", "--json", cwd=tmp_path)

    data = json.loads(result.stdout)
    assert data["config"]["strategy"]["name"] == "expected_carry"
    assert data["config_file"] == "(built-in defaults)"


def test_bad_config_exits_2_with_one_line_per_problem_and_no_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        "[strategy]\nname = 'funding_carry'\nexit_apr = 0.5\n[exchange]\nleverage = -1\ncolour = 'red'\n"
    )

    result = run_cli("config", "check", "--config", str(bad), cwd=tmp_path)

    assert result.code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 3
    assert all(line.startswith(f"error: {bad}: ") for line in lines)
    assert "Traceback" not in result.stderr


def test_live_without_keys_exits_2_and_names_the_variables(tmp_path: Path) -> None:
    result = run_cli("run", "--live", cwd=tmp_path)

    assert result.code == 2
    assert "live mode needs BINANCE_API_KEY and BINANCE_API_SECRET" in result.stderr
    assert "Traceback" not in result.stderr


def test_run_refuses_an_unmigrated_database_then_db_upgrade_fixes_it(tmp_path: Path) -> None:
    env = {"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"}

    refused = run_cli("run", "--once", cwd=tmp_path, env=env)
    upgraded = run_cli("db", "upgrade", cwd=tmp_path, env=env)
    current = run_cli("db", "current", cwd=tmp_path, env=env)

    assert refused.code == 2
    assert "run `carrybot db upgrade`" in refused.stderr
    assert upgraded.code == 0 and "is at revision" in upgraded.stdout
    assert "up to date" in current.stdout


@pytest.mark.parametrize(
    "command",
    [
        "run",
        "scan",
        "status",
        "backtest",
        "sweep",
        "data",
        "db",
        "config",
        "halt",
        "resume",
        "close",
    ],
)
def test_every_command_has_useful_help(tmp_path: Path, command: str) -> None:
    result = run_cli(command, "--help", cwd=tmp_path)

    assert result.code == 0
    assert "Usage:" in result.stdout


def test_close_of_a_hedge_the_ledger_does_not_have_is_one_error_line_and_exit_2(
    tmp_path: Path,
) -> None:
    env = {"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"}
    assert run_cli("db", "upgrade", cwd=tmp_path, env=env).code == 0

    result = run_cli("close", "7", "--reason", "by hand", cwd=tmp_path, env=env)

    assert result.code == 2
    assert result.stderr.strip() == ("error: hedge 7: no hedge with that id (active hedges: none)")


def test_run_once_with_the_exchange_unreachable_says_so_in_one_line_and_exits_1(
    tmp_path: Path,
) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        '[exchange]\nspot_api_url = "http://127.0.0.1:9"\nfutures_api_url = "http://127.0.0.1:9"\n'
    )
    env = {"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"}
    assert run_cli("db", "upgrade", "--config", str(config), cwd=tmp_path, env=env).code == 0

    result = run_cli("run", "--once", "--config", str(config), cwd=tmp_path, env=env)

    assert result.code == 1
    assert "Traceback" not in result.stderr
    assert "Unclosed client session" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "127.0.0.1:9" in result.stderr
