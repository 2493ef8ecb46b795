"""Alerts never slow the trading loop: the bot's own loop (assemble_loop over the paper
exchange) runs poll + evaluate cycles three ways in one process — alerts off, Telegram down
(HTTP 502, every message retried), Telegram hanging (no answer) — with one alert-worthy
event per cycle, and prints evaluate's mean and p99 for each.

    python bench/bench_alerts.py --cycles 300
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bot.alerts import AlertingEventSink  # noqa: E402
from bot.alerts.channels import TelegramChannel  # noqa: E402
from bot.alerts.config import AlertsConfig  # noqa: E402
from bot.alerts.dispatcher import AlertDispatcher  # noqa: E402
from bot.app import assemble_loop  # noqa: E402
from bot.clock import SystemClock  # noqa: E402
from bot.config import config_from_dict  # noqa: E402
from bot.domain import Event, PositionMode, Severity  # noqa: E402
from bot.persistence import migrate  # noqa: E402
from bot.persistence.db import create_engine, session_factory  # noqa: E402
from bot.persistence.outage import BufferedEventSink, OutageGuard  # noqa: E402
from bot.persistence.repositories import CycleReads, Ledger  # noqa: E402
from tests.fakes.telegram_server import CHAT_ID, TOKEN  # noqa: E402
from tests.support.market_source import StaticMarketSource  # noqa: E402
from tests.support.paper_stack import paper_exchange  # noqa: E402

CONFIG = {"universe": {"symbols": ["BTC/USDT", "ETH/USDT"]}}


class Rig:
    """One trading loop with its event sink: alerts off, or to a down or hanging Telegram."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.times: list[float] = []
        self.cycle = 0

    async def start(self, work: Path) -> None:
        self.engine = create_engine(f"sqlite+aiosqlite:///{work / f'{self.mode}.db'}")
        await migrate.upgrade(self.engine)
        clock = self.clock = SystemClock()
        # the fake Telegram runs in its own process, as the real one is elsewhere
        port = free_port()
        self.fake = subprocess.Popen(  # noqa: ASYNC220 - set-up, before any timing
            [
                sys.executable,
                "-m",
                "tests.fakes.telegram_server",
                str(port),
                {"off": "ok", "off2": "ok", "down": "down", "hang": "hang"}[self.mode],
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.fake.stdout is not None and self.fake.stdout.readline().strip() == "ready"
        self.url = f"http://127.0.0.1:{port}"
        ledger = Ledger(session_factory(self.engine), CycleReads())
        run = await ledger.runs.start(
            mode="paper", environment="bench", config_hash="-", version="-", at=clock.now()
        )
        guard = OutageGuard(self.engine, clock)
        self.dispatcher: AlertDispatcher | None = None
        if self.mode.startswith("off"):
            self.events: BufferedEventSink = BufferedEventSink(ledger.events, guard)
        else:
            self.dispatcher = AlertDispatcher(
                AlertsConfig(retry_backoff_seconds=0.05, max_per_minute=600, timeout_seconds=600),
                [TelegramChannel(self.url, TOKEN, CHAT_ID)],
                clock,
            )
            self.dispatcher.start()
            self.events = AlertingEventSink(ledger.events, guard, self.dispatcher)
        source = StaticMarketSource(clock, ["BTC", "ETH"])
        exchange = await paper_exchange(clock, source, mode=PositionMode.ONE_WAY)
        self.loop = await assemble_loop(
            config_from_dict(CONFIG),
            exchange,
            ledger.for_run(run.id),
            guard,
            self.events,
            clock,
            run.id,
        )

    async def cycles(self, n: int, *, record: bool = True) -> None:
        for _ in range(n):
            await self.loop.poll()
            started = time.perf_counter()
            await self.loop.evaluate()
            if record:
                self.times.append((time.perf_counter() - started) * 1000)
            # one alert-worthy event per cycle: drift fires, the next cycle clears it
            kind = "reconcile.drift" if self.cycle % 2 else "reconcile.ok"
            self.cycle += 1
            await self.events.emit(
                Event(kind, f"cycle {self.cycle}", self.clock.now(), Severity.ALERT)
            )

    def note(self) -> str:
        if self.dispatcher is None:
            return ""
        (health,) = self.dispatcher.health()
        return (
            f"; delivered {health.sent}, given up after retries {health.failed}, "
            f"dropped {self.dispatcher.dropped}"
        )

    async def stop(self) -> None:
        if self.dispatcher is not None:
            await self.dispatcher.stop(flush_seconds=0.1)
        self.fake.terminate()
        self.fake.wait()
        await self.engine.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=600, help="measured cycles per mode")
    parser.add_argument("--blocks", type=int, default=6, help="interleaved blocks per mode")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # one ALERT log line per cycle otherwise
    work = Path(tempfile.mkdtemp(prefix="carrybot-alerts-"))
    # "off2" is a second bot without alerts: its ratio to "off" is the noise of the method.
    rigs = [Rig("off"), Rig("off2"), Rig("down"), Rig("hang")]
    for rig in rigs:
        await rig.start(work)
        await rig.cycles(20, record=False)  # warm-up: start-up work, first hedges
    per_block = max(1, args.cycles // args.blocks)
    blocks: list[dict[str, list[float]]] = []
    for block in range(args.blocks):  # interleaved and rotated: the machine's noise is shared
        marks = {rig.mode: len(rig.times) for rig in rigs}
        n = len(rigs)
        for rig in rigs[block % n :] + rigs[: block % n]:
            await rig.cycles(per_block)
        blocks.append({rig.mode: rig.times[marks[rig.mode] :] for rig in rigs})
    base = p99(rigs[0].times)
    print(f"{args.blocks} interleaved blocks of {per_block} cycles per mode")
    for rig in rigs:
        t = rig.times
        # The floor is the alerts-off bot's p95 in the same block; the median block ratio and
        # its spread say whether a mode is slower beyond what the machine does to both.
        ratios = sorted(p95(b[rig.mode]) / p95(b["off"]) for b in blocks)
        print(
            f"alerts {rig.mode:4s}: evaluate mean {statistics.mean(t):.2f} ms, "
            f"p99 {p99(t):.2f} ms ({p99(t) / base:.2f}x off over the run); per block p95 / "
            f"off's p95: median {statistics.median(ratios):.2f}x "
            f"({ratios[0]:.2f}-{ratios[-1]:.2f}){rig.note()}"
        )
    for rig in rigs:
        await rig.stop()


if __name__ == "__main__":
    asyncio.run(main())
