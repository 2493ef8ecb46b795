"""Helpers of the reliability e2e tests: config tuning, faults, waiting, request counting."""

from __future__ import annotations

import signal
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


def measure_outage_recovery(env: BotEnv, outage_seconds: float) -> dict[str, float]:
    """Run the live bot through a whole-exchange outage; return what it did around it.

    BTC is attractive but trading HALTED when the bot starts; every endpoint then answers
    503 for `outage_seconds`, trading is resumed meanwhile (through the ledger), then the
    exchange is back. Returns the seconds from the exchange's return to the first entry
    order, the position-risk requests sent during the outage, and the outage as it was
    (`outage_seconds` plus the `resume` command run inside it).
    """
    assert env.cli("halt", "--reason", "before the outage").code == 0
    bot = env.spawn("run", "--live", "--duration", str(outage_seconds + 60))
    try:
        bot.wait_for_log("Heartbeat", timeout=30)
        started = time.perf_counter()
        add_fault(env, kind="server_error", path="*", times=None, status=503)
        assert env.cli("resume").code == 0
        time.sleep(outage_seconds)
        env.fake.control("DELETE", "/_fake/faults")
        back = time.perf_counter()
        wait_until(
            lambda: bool(requests(env, "/api/v3/order", "POST")),
            timeout=60,
            what="the first entry after the outage",
        )
        first_order = requests(env, "/api/v3/order", "POST")[0]["at"]
    finally:
        bot.signal(signal.SIGTERM)
        code = bot.wait(timeout=40)
    assert code == 0, bot.log_path.read_text()[-3000:]
    risk = [r["at"] for r in requests(env, "/fapi/v3/positionRisk")]
    risk += [r["at"] for r in requests(env, "/fapi/v2/positionRisk")]
    return {
        "outage_seconds": outage_seconds,
        "outage_measured_seconds": back - started,
        "first_entry_after_seconds": first_order - back,
        "position_risk_during_outage": sum(1 for t in risk if started < t < back),
    }
