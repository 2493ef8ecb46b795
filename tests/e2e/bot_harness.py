"""Run the real bot as a process against the fake Binance process; read its ledger."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

from bot.persistence.db import create_engine, session_factory
from bot.persistence.repositories import CycleReads, Ledger
from tests.conftest import REPO_ROOT
from tests.e2e.cli import Result, run_cli
from tests.fakes.binance_server import DEFAULT_API_KEY, DEFAULT_API_SECRET
from tests.fakes.fixtures import FakeBinanceProcess

STREAMS_OFF = "[streams]\nenabled = false\n"
# The dashboard on a port of its own (the default 8321 is one for every bot of every worker
# at once: all but the first would log that it is taken).
WEB_ANY_PORT = "[web]\nport = 0\n"

CONFIG = """
[exchange]
spot_api_url = "{url}"
futures_api_url = "{url}"
position_mode = "{mode}"
recv_window_ms = 5000
timeout_ms = 5000

[universe]
symbols = ["BTC/USDT", "ETH/USDT"]

[strategy]
name = "funding_carry"
min_hold_hours = 0
cooldown_hours = 0
rotation_margin_apr = 0.05

[sizing]
notional_per_hedge = 1000

[risk]
max_open_hedges = 1
max_total_notional = 1000
max_notional_per_symbol = 1000
max_data_age_seconds = 30
order_timeout_seconds = 3
close_retry_backoff_seconds = 0.2

[schedule]
poll_seconds = {poll}
evaluate_seconds = {poll}
reconcile_seconds = 60
balance_snapshot_seconds = 5
heartbeat_seconds = 5
funding_capture_delay_seconds = 1
"""


@dataclass
class BotEnv:
    """Everything one bot needs: the fake, a config file, a database, its environment."""

    fake: FakeBinanceProcess
    workdir: Path
    database_url: str
    live: bool

    @property
    def config(self) -> Path:
        return self.workdir / "carrybot.toml"

    def env(self, **extra: str) -> dict[str, str]:
        env = {"DATABASE_URL": self.database_url, "LOG_LEVEL": "INFO"}
        if self.live:
            env |= {"BINANCE_API_KEY": DEFAULT_API_KEY, "BINANCE_API_SECRET": DEFAULT_API_SECRET}
        return env | extra

    def write_config(self, *, mode: str = "auto", poll: float = 1.0, extra: str = "") -> None:
        """Write the config; without a `[streams]` section in `extra`, streams are switched
        off explicitly (`enabled = false`): these tests are the REST polling path's. Without
        a `[web]` section, the dashboard listens on a free port."""
        streams = "" if "[streams]" in extra else STREAMS_OFF
        web = "" if "[web]" in extra else WEB_ANY_PORT
        text = streams + web + CONFIG.format(url=self.fake.url, mode=mode, poll=poll) + extra
        self.config.write_text(text)

    def cli(self, *args: str, **env: str) -> Result:
        return run_cli(*args, "--config", str(self.config), cwd=self.workdir, env=self.env(**env))

    def run_once(self, **env: str) -> Result:
        args = ["run", "--once"] + (["--live"] if self.live else [])
        result = self.cli(*args, **env)
        return result

    def spawn(self, *args: str, **env: str) -> BotProcess:
        return BotProcess(self, list(args), self.env(**env))

    # --- the fake's side ------------------------------------------------------------------
    def set_funding(
        self, base: str, rate: str, *, history: str | None = None, periods: int = 21
    ) -> None:
        """Set the current rate and (optionally) a settled history at `history` per period."""
        symbol = f"{base}/USDT:USDT"
        self.fake.control("POST", "/_fake/funding", {"symbol": symbol, "rate": rate})
        if history is not None:
            now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
            rows = [
                {
                    "funding_time": (now - timedelta(hours=8 * (periods - i))).isoformat(),
                    "rate": history,
                }
                for i in range(periods)
            ]
            self.fake.control("POST", "/_fake/funding/history", {"symbol": symbol, "rows": rows})

    def set_perp_premium(self, base: str, index: str, premium: str, tick: str, qty: str) -> None:
        """Set the perpetual's book around index + premium (premium 0: no predicted carry)."""
        mid, step = Decimal(index) + Decimal(premium), Decimal(tick)
        bids = [[str(mid - step * i), qty] for i in range(10)]
        asks = [[str(mid + step * (i + 1)), qty] for i in range(10)]
        self.fake.control(
            "POST", "/_fake/book", {"symbol": f"{base}/USDT:USDT", "bids": bids, "asks": asks}
        )
        self.fake.control(
            "POST",
            "/_fake/funding",
            {"symbol": f"{base}/USDT:USDT", "mark": str(mid), "index": index},
        )

    def settle_like_binance(self, base: str, rate: str, mark: str, *, lead: float = 2.5) -> None:
        """Advertise a funding time `lead` seconds ahead, let the bot see it, then settle it.

        The fake then advertises the next funding time one interval later, as Binance does.
        """
        symbol = f"{base}/USDT:USDT"
        when = datetime.now(UTC) + timedelta(seconds=lead)
        self.fake.control(
            "POST", "/_fake/funding", {"symbol": symbol, "next_funding_time": when.isoformat()}
        )
        time.sleep(lead + 0.5)  # real processes on the wall clock: the bot polls meanwhile
        self.fake.control(
            "POST", "/_fake/funding/settle", {"symbol": symbol, "rate": rate, "mark": mark}
        )

    def account(self) -> dict[str, Any]:
        result: dict[str, Any] = self.fake.control("GET", "/_fake/account")
        return result

    def orders_on_server(self, path: str = "/fapi/v1/order") -> list[dict[str, Any]]:
        log: list[dict[str, Any]] = self.fake.control(
            "GET", f"/_fake/requests?path={path}&method=POST"
        )
        return log


@asynccontextmanager
async def ledger_at(url: str) -> AsyncIterator[Ledger]:
    engine = create_engine(url)
    try:
        yield Ledger(session_factory(engine), CycleReads())
    finally:
        await engine.dispose()


class BotProcess:
    """`carrybot run …` in the background, for signals and crashes."""

    started: ClassVar[list[BotProcess]] = []  # this test's, for kill_leftovers()

    def __init__(self, env: BotEnv, args: list[str], environ: dict[str, str]) -> None:
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("CARRYBOT_", "BINANCE_", "DATABASE_URL", "LOG_"))
        }
        base |= environ | {"PYTHONPATH": str(REPO_ROOT)}
        self.log_path = env.workdir / f"bot-{time.monotonic_ns()}.log"
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot", *args, "--config", str(env.config)],
            cwd=env.workdir,
            env=base,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        BotProcess.started.append(self)

    def log(self) -> str:
        if not self._log.closed:  # closed once the bot was waited for
            self._log.flush()
        return self.log_path.read_text()

    def wait_for_log(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"{text!r} not in the bot's log:\n{self.log()[-4000:]}")

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 60) -> int:
        code = self.proc.wait(timeout=timeout)
        self._log.close()
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


def kill_leftovers() -> None:
    """Kill every bot started since the last call that still runs.

    A test that fails in a wait (or whose `wait(timeout=…)` expires) leaves its bot running,
    holding its ledger's instance lock; the ledger's database then goes to the next test
    (tests/support/ledgers.py), whose bot would find it taken."""
    for bot in BotProcess.started:
        bot.kill()
    BotProcess.started.clear()


def fake_process(standard: bool = True) -> Iterator[FakeBinanceProcess]:
    proc = FakeBinanceProcess(standard=standard)
    try:
        yield proc
    finally:
        proc.stop()


__all__ = ["BotEnv", "BotProcess", "fake_process", "kill_leftovers", "ledger_at", "signal"]


def server_exposure(env: BotEnv, base: str = "BTC") -> tuple[Decimal, Decimal]:
    """(spot holding, short size) of `base` on the fake exchange's own books."""
    account = env.account()
    spot = account["spot"].get(base, {"free": "0", "locked": "0"})
    held = Decimal(spot["free"]) + Decimal(spot["locked"])
    short = sum(
        (
            abs(Decimal(p["size"]))
            for p in account["positions"]
            if p["symbol"] == f"{base}/USDT:USDT"
        ),
        Decimal(0),
    )
    return held, short


def server_orders(env: BotEnv, prefix: str = "cb-") -> list[dict[str, Any]]:
    """Every order the fake exchange holds whose client id starts with `prefix`."""
    return [o for o in env.account()["orders"] if o["client_order_id"].startswith(prefix)]
