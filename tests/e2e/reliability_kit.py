"""Helpers of the reliability e2e tests: config tuning, faults, waiting, request counting."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.e2e.bot_harness import BotEnv
from tests.e2e.conftest import make_env
from tests.fakes.fixtures import FakeBinanceProcess


def tune(env: BotEnv, section: str, **values: object) -> None:
    """Set keys of one config section (replacing a key already there)."""
    lines = env.config.read_text().splitlines()
    start = lines.index(f"[{section}]")
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("[")), len(lines))
    body = [ln for ln in lines[start + 1 : end] if ln.split("=")[0].strip() not in values]
    body += [f"{k} = {_toml(v)}" for k, v in values.items()]
    env.config.write_text("\n".join(lines[: start + 1] + body + lines[end:]) + "\n")


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


def btc_attractive_env(
    fake: FakeBinanceProcess, tmp_path: Path, url: str, *, live: bool = True, poll: float = 1.0
) -> BotEnv:
    """A bot env where BTC pays ~66% APR and ETH nothing (one BTC hedge is wanted)."""
    env = make_env(fake, tmp_path, url, live=live, poll=poll)
    env.set_funding("BTC", "0.0006", history="0.0006")
    env.set_funding("ETH", "0.00001", history="0.00001")
    env.set_perp_premium("ETH", "3000", "0", tick="0.01", qty="20")
    return env


def add_fault(env: BotEnv, **fault: object) -> None:
    env.fake.control("POST", "/_fake/faults", fault)


def requests(env: BotEnv, path: str, method: str = "GET") -> list[dict[str, Any]]:
    """The fake's log of requests to `path` (each with its arrival time and params)."""
    rows: list[dict[str, Any]] = env.fake.control(
        "GET", f"/_fake/requests?path={path}&method={method}"
    )
    return rows


def wait_until(predicate: Callable[[], bool], timeout: float = 30, what: str = "it") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")
