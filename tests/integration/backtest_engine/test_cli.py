"""`carrybot backtest` and `carrybot sweep` end to end, as subprocesses, on synthetic data."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT
from tests.e2e.cli import run_cli
from tests.unit.backtest_engine.synthetic import write_flat_history

CONFIG = """
[universe]
symbols = ["BTC/USDT", "ETH/USDT"]
[strategy]
name = "funding_carry"
entry_apr = 0.02
exit_apr = 0.01
max_breakeven_hours = 1000
"""
GRID = """
[strategy]
entry_apr = [0.02, 0.5]
exit_apr = [0.01, 0.03]
"""
PERIOD = ("--from", "2024-03-01", "--to", "2024-03-06")


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    write_flat_history(tmp_path / "data", symbols=("BTCUSDT", "ETHUSDT"), days=20)
    (tmp_path / "carrybot.toml").write_text(CONFIG)
    (tmp_path / "grid.toml").write_text(GRID)
    return tmp_path


def test_cli_backtest_synthetic_writes_every_output(workspace: Path) -> None:
    result = run_cli(
        "backtest",
        "--config",
        "carrybot.toml",
        "--data",
        "data",
        *PERIOD,
        "--out",
        "bt",
        cwd=workspace,
    )

    assert result.code == 0, result.stderr
    out = workspace / "bt"
    names = {"summary.json", "hedges.csv", "equity.csv", "equity.png", "funding_apr.png"}
    assert names <= {p.name for p in out.iterdir()}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["bot"]["hedges"] == 2
    assert summary["passive"]["hedges"] == 2
    assert "net APR on capital" in result.stdout
    status = run_cli(
        "status", "--database", f"sqlite+aiosqlite:///{out / 'ledger.db'}", "--json", cwd=workspace
    )
    assert status.code == 0, status.stderr
    assert json.loads(status.stdout)["totals"]["hedges"] == 2


def test_cli_sweep_bad_grid_key_exits_2_with_one_line(workspace: Path) -> None:
    (workspace / "bad.toml").write_text("[strategy]\nentry_aprr = [0.1]\n")

    result = run_cli("sweep", "--grid", "bad.toml", "--data", "data", cwd=workspace)

    assert result.code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: bad.toml: strategy.entry_aprr: unknown key in [strategy]")


def test_cli_sweep_ranks_combinations_and_reports_invalid_ones(workspace: Path) -> None:
    result = run_cli(
        "sweep",
        "--grid",
        "grid.toml",
        "--data",
        "data",
        *PERIOD,
        "--workers",
        "2",
        "--out",
        "sw",
        cwd=workspace,
    )

    assert result.code == 0, result.stderr
    with (workspace / "sw" / "ranking.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert rows[0]["combination"] == "1"  # entry 2%: the only one that trades
    assert len(rows) == 4
    invalid = [r for r in rows if r["error"]]
    assert len(invalid) == 1 and "exit_apr" in invalid[0]["error"]
    ranking = json.loads((workspace / "sw" / "ranking.json").read_text())
    assert ranking["metric"] == "net_apr"


def test_cli_sweep_walk_forward_tests_the_train_winner_after_the_split(workspace: Path) -> None:
    result = run_cli(
        "sweep",
        "--grid",
        "grid.toml",
        "--data",
        "data",
        *PERIOD,
        "--workers",
        "1",
        "--train-until",
        "2024-03-04",
        "--out",
        "wf",
        cwd=workspace,
    )

    assert result.code == 0, result.stderr
    report = json.loads((workspace / "wf" / "walk_forward.json").read_text())
    assert report["chosen_on_train"]["index"] == 1
    assert report["test"]["index"] == 1
    test_summary = json.loads((workspace / "wf" / "test" / "summary.json").read_text())
    assert test_summary["start"].startswith("2024-03-04T00:00")
    train_summary = json.loads((workspace / "wf" / "runs" / "001" / "summary.json").read_text())
    assert train_summary["end"].startswith("2024-03-03T23:00")


def test_cli_sweep_on_dask_local_cluster_runs_every_combination(workspace: Path) -> None:
    distributed = pytest.importorskip("distributed")
    with _local_cluster(distributed, workers=1, threads=2) as cluster:
        result = run_cli(
            "sweep",
            "--grid",
            "grid.toml",
            "--data",
            "data",
            *PERIOD,
            "--dask-scheduler",
            cluster.scheduler_address,
            "--out",
            "dk",
            cwd=workspace,
        )

    assert result.code == 0, result.stderr
    assert "on Dask" in result.stdout
    with (workspace / "dk" / "ranking.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert sum(1 for r in rows if not r["error"]) == 3


def _local_cluster(distributed: Any, *, workers: int, threads: int) -> Any:
    """An in-process Dask cluster on loopback TCP (the CLI connects to it by address)."""
    return distributed.LocalCluster(
        n_workers=workers,
        threads_per_worker=threads,
        processes=False,
        protocol="tcp",
        host="127.0.0.1",
        dashboard_address=None,
    )


def _sweep(workspace: Path, out: str, *extra: str) -> str:
    result = run_cli(
        "sweep",
        "--grid",
        "grid.toml",
        "--data",
        "data",
        *PERIOD,
        "--out",
        out,
        *extra,
        cwd=workspace,
    )
    assert result.code == 0, result.stderr
    return result.stdout


def test_cli_sweep_resume_runs_only_the_unfinished_combinations(workspace: Path) -> None:
    _sweep(workspace, "rs", "--workers", "1")
    ranking = (workspace / "rs" / "ranking.csv").read_bytes()
    (workspace / "rs" / "runs" / "003" / "finished.json").unlink()  # as if cut short
    (workspace / "rs" / "runs" / "001" / "summary.json").unlink()  # the marker decides

    stdout = _sweep(workspace, "rs", "--workers", "1", "--resume")

    assert "--resume: 2 combination(s) already finished" in stdout
    assert "1 to run" in stdout
    assert (workspace / "rs" / "ranking.csv").read_bytes() == ranking
    assert (workspace / "rs" / "runs" / "003" / "finished.json").is_file()
    assert not (workspace / "rs" / "runs" / "001" / "summary.json").exists()  # not rerun


def test_cli_sweep_interrupted_by_ctrl_c_resumes_where_it_stopped(workspace: Path) -> None:
    # Eight combinations, so that the Ctrl-C sent once the first has finished lands before the
    # last one even when the test's polling is starved on a loaded machine.
    values = ", ".join(f"0.0{i}" for i in range(2, 10))
    (workspace / "grid.toml").write_text(f"[strategy]\nentry_apr = [{values}]\n")
    runs = workspace / "cut" / "runs"
    sweep = _start_sweep(workspace, "cut", "--workers", "1")
    try:
        _wait_for(lambda: (runs / "001" / "finished.json").is_file(), sweep)
        os.killpg(sweep.pid, signal.SIGINT)  # Ctrl-C reaches the whole process group
        code = sweep.wait(timeout=60)
    finally:
        if sweep.poll() is None:
            os.killpg(sweep.pid, signal.SIGKILL)
    finished = sorted(p.parent.name for p in runs.glob("*/finished.json"))
    assert code != 0 and not (workspace / "cut" / "ranking.csv").exists()
    assert finished[0] == "001" and len(finished) < 8  # cut short after the first one

    stdout = _sweep(workspace, "cut", "--workers", "1", "--resume")

    assert f"--resume: {len(finished)} combination(s) already finished" in stdout
    assert f"{8 - len(finished)} to run" in stdout
    with (workspace / "cut" / "ranking.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8 and not any(r["error"] for r in rows)
    assert sorted(p.parent.name for p in runs.glob("*/finished.json")) == [
        f"00{i}" for i in range(1, 9)
    ]


def _start_sweep(workspace: Path, out: str, *extra: str) -> subprocess.Popen[str]:
    """Start `carrybot sweep` in a process group of its own (what a terminal's Ctrl-C hits)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARRYBOT_")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    args = ["sweep", "--config", "carrybot.toml", "--grid", "grid.toml", "--data", "data"]
    return subprocess.Popen(
        [sys.executable, "-m", "bot", *args, *PERIOD, "--out", out, *extra],
        cwd=workspace,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )


def _wait_for(condition: Any, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    """Poll a subprocess's outputs until `condition()` holds (it runs on the wall clock)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, "the sweep ended before the condition held"
        assert time.monotonic() < deadline, "timed out waiting for the sweep"
        time.sleep(0.01)


def test_cli_sweep_resume_ignores_markers_of_other_parameters(workspace: Path) -> None:
    _sweep(workspace, "rp", "--workers", "1")
    (workspace / "carrybot.toml").write_text(CONFIG + "[sizing]\nnotional_per_hedge = 500\n")

    stdout = _sweep(workspace, "rp", "--workers", "1", "--resume", "--config", "carrybot.toml")

    assert "--resume: 0 combination(s) already finished" in stdout


def test_cli_sweep_on_dask_ranks_as_local_processes_do(workspace: Path) -> None:
    distributed = pytest.importorskip("distributed")
    _sweep(workspace, "local", "--workers", "2")
    with _local_cluster(distributed, workers=2, threads=1) as cluster:
        _sweep(workspace, "dask", "--dask-scheduler", cluster.scheduler_address)

    local = (workspace / "local" / "ranking.csv").read_bytes()
    assert local == (workspace / "dask" / "ranking.csv").read_bytes()
    assert local.count(b"\n") == 5  # header, three ranked combinations, one refused
