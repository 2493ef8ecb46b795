"""Run the real `carrybot` command in a subprocess with a controlled environment."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import REPO_ROOT

_SCRUB = ("CARRYBOT_", "BINANCE_", "BITSTAMP_", "DATABASE_URL", "LOG_")


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> Result:
    """Run `python -m bot ARGS` in `cwd` with only the given carrybot variables set."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUB)}
    base["PYTHONPATH"] = str(REPO_ROOT)
    base["COLUMNS"] = "200"
    base.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=cwd,
        env=base,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)
