"""A running paper bot serves its dashboard: /metrics follows the hedges it opens, and halt
from the API (with the token) is obeyed within a cycle.
"""

from __future__ import annotations

import signal
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import make_env
from tests.fakes.fixtures import FakeBinanceProcess

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
TOKEN = "e2e-dashboard-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def metric(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None


def poll_until(url: str, name: str, want: float, timeout: float = 90, **labels: str) -> str:
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = httpx.get(url, timeout=5).text
        if metric(text, name, **labels) == want:
            return text
        time.sleep(0.5)
    raise AssertionError(f"{name}{labels} never became {want}:\n{text[-3000:]}")


def open_hedge(base: str, timeout: float = 30) -> dict[str, Any]:
    """The one hedge of /api/status once it is OPEN (OPENING counts as open too)."""
    deadline = time.monotonic() + timeout
    hedges: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        hedges = httpx.get(f"{base}/api/status", timeout=5).json()["open_hedges"]
        if len(hedges) == 1 and hedges[0]["state"] == "open":
            return hedges[0]
        time.sleep(0.2)
    raise AssertionError(f"no single OPEN hedge: {hedges}")


def test_metrics_change_as_a_paper_bot_opens_a_hedge_and_halt_needs_the_token(
    fake_proc: FakeBinanceProcess, pg_url: str, tmp_path: Path
) -> None:
    env = make_env(fake_proc, tmp_path, pg_url, live=False)
    port = free_port()
    env.write_config(extra=f"\n[web]\nport = {port}\n")
    # Nothing pays at the start: low funding, and no premium on either perpetual (the fake's
    # default ETH book has one of ~33 bps, which alone is an entry before the first scrape).
    env.set_funding("BTC", "0.00001", history="0.00001")
    env.set_funding("ETH", "0.00001", history="0.00001")
    env.set_perp_premium("BTC", "50000", "0", tick="0.1", qty="2")
    env.set_perp_premium("ETH", "3000", "0", tick="0.01", qty="20")
    bot = env.spawn("run", "--duration", "150", CARRYBOT_WEB_TOKEN=TOKEN)
    base = f"http://127.0.0.1:{port}"
    try:
        bot.wait_for_log("Dashboard on", timeout=60)
        before = poll_until(f"{base}/metrics", "carrybot_open_hedges", 0)
        assert metric(before, "carrybot_info", mode="paper") == 1

        # BTC starts paying: its perpetual trades 30 bps over the index (the bot, running,
        # reads books every poll; the funding history it holds does not change).
        env.set_perp_premium("BTC", "50000", "150", tick="0.1", qty="2")
        poll_until(f"{base}/metrics", "carrybot_open_hedges", 1)
        held = open_hedge(base)  # its notional is the one filled, not the one planned
        assert held["pair"] == "BTC/USDT"  # the pair that started paying, only
        after = poll_until(
            f"{base}/metrics", "carrybot_notional_usdt", float(held["notional"]), pair="BTC/USDT"
        )
        assert (metric(after, "carrybot_job_duration_seconds_count", job="evaluate") or 0) >= 1
        assert (metric(after, "carrybot_request_weight_used", venue="futures") or 0) > 0
        assert (metric(after, "carrybot_order_round_trip_seconds_count", leg="perp") or 0) >= 1
        assert TOKEN not in after

        assert httpx.post(f"{base}/api/halt", timeout=5).status_code == 401
        halted = httpx.post(
            f"{base}/api/halt",
            json={"reason": "e2e"},
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=5,
        )
        assert halted.status_code == 200
        bot.wait_for_log("-> HALTED (e2e, by web)", timeout=30)
        poll_until(f"{base}/metrics", "carrybot_trading_state", 1, state="halted")
        bot.signal(signal.SIGTERM)
        assert bot.wait(timeout=40) == 0
    finally:
        bot.kill()
    assert TOKEN not in bot.log_path.read_text()
