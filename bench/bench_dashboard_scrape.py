"""CPU of one dashboard request in the serving process, through uvicorn on a real socket, over
a soak-sized ledger, against a floor: the same server answering `generate_latest` of an empty
registry (uvicorn's request handling and the client round trip, nothing of carrybot's).

The client is another process, so the figure is the server's CPU only (time.process_time of
this process around each request). Patterns, one request every 15 s of the injected clock
(Prometheus' default interval): `idle` (the ledger unchanged), `soak` (what the running soak
bot adds: market observations and balance snapshots once a minute, written by this process
between requests, not timed) and `changed` (an event written before every request, the
worst case). The last line puts the soak pattern's /metrics figure beside the budget: 5% of
the soak bot's CPU a minute (`--bot-cpu-per-minute`, from `bench_soak.py`) at 4 scrapes a
minute.

    python bench/bench_dashboard_scrape.py --requests 120 --hours 24
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from prometheus_client import CollectorRegistry, generate_latest  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import Response  # noqa: E402
from starlette.routing import Route  # noqa: E402

from bot.clock import SimulatedClock  # noqa: E402
from bot.domain import Event, Severity  # noqa: E402
from bot.domain.ledger import BalanceSnapshot, MarketObservation  # noqa: E402
from bot.persistence import migrate  # noqa: E402
from bot.persistence.db import create_engine, session_factory  # noqa: E402
from bot.persistence.repositories import CycleReads, Ledger  # noqa: E402
from bot.web import DashboardServer, Metrics, WebContext, create_app  # noqa: E402
from bot.web.live import ChannelHealth, LiveFacts  # noqa: E402
from bot.web.readmodel import ReadModel  # noqa: E402
from tests.support.seeded_ledger import seed_ledger  # noqa: E402

D = Decimal
SCRAPE = timedelta(seconds=15)
SYMBOLS = [f"C{i:02d}/USDT:USDT" for i in range(10)]  # the soak bot's top_n = 10
CLIENT = """
import sys, urllib.request
for line in sys.stdin:
    with urllib.request.urlopen(line.strip(), timeout=30) as r:
        r.read()
    print(r.status, flush=True)
"""


class Probe:
    """A running bot's in-memory facts as the loop's probe reports them."""

    def __init__(self, clock: SimulatedClock) -> None:
        self.clock = clock

    def facts(self) -> LiveFacts:
        return LiveFacts(
            mode="paper",
            trading_state="active",
            equity=D("20000.45"),
            market_data_age_seconds=0.8,
            poll_failures=0,
            database_up=True,
            request_weight={"spot": (250, 5400), "futures": (1220, 2160)},
            alert_channels=[ChannelHealth("telegram", True, 3, 0)],
            poll_ms=[60.0] * 1000,
            evaluate_ms=[14.0] * 1000,
        )


async def add_minute(ledger: Ledger, clock: SimulatedClock, minute: int) -> None:
    """What the soak bot writes once a minute: observations of its symbols, balances."""
    at = clock.now()
    await ledger.observations.upsert(
        [
            MarketObservation(
                s,
                at,
                funding_rate=D("0.0001"),
                interval_hours=8,
                mark_price=D(100 + minute % 7),
                spot_bid=D(100),
                spot_ask=D("100.1"),
                perp_bid=D("100.2"),
                perp_ask=D("100.3"),
            )
            for s in SYMBOLS
        ]
    )
    equity = D(20000) + D(minute) / 100
    await ledger.snapshots.record(
        [
            BalanceSnapshot(at, "spot", "USDT", equity / 2, D(0), equity / 2),
            BalanceSnapshot(at, "futures", "USDT", equity / 2, D(0), equity / 2),
            BalanceSnapshot(at, "total", "USDT", equity, D(0), equity),
        ],
        [],
    )


async def build_ledger(work: Path, hours: float) -> tuple[Ledger, SimulatedClock, object]:
    engine = create_engine(f"sqlite+aiosqlite:///{work / 'ledger.db'}")
    await migrate.upgrade(engine)
    ledger = Ledger(session_factory(engine), CycleReads())
    seeded = await seed_ledger(ledger)
    clock = seeded.clock
    for minute in range(int(hours * 60)):
        clock.advance(timedelta(minutes=1))
        await add_minute(ledger, clock, minute)
        if minute % 10 == 0:
            await ledger.events.emit(Event("reconcile.ok", "ok", clock.now(), Severity.INFO, {}))
    return ledger, clock, engine


class Client:
    """A client process: one GET per line, on a new connection each (as bench_soak.py)."""

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            CLIENT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )

    async def get(self, url: str) -> float:
        """CPU seconds this process spent while the request was served."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        started = time.process_time()
        self.proc.stdin.write(f"{url}\n".encode())
        await self.proc.stdin.drain()
        line = await self.proc.stdout.readline()
        spent = time.process_time() - started
        if line.strip() != b"200":
            raise SystemExit(f"{url} answered {line!r}")
        return spent

    async def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        await self.proc.wait()


async def measure(
    client: Client,
    url: str,
    n: int,
    before: Callable[[int], Awaitable[None]],
) -> float:
    """Mean CPU milliseconds per request over `n` requests (`before(i)` runs untimed)."""
    spent = []
    for i in range(n):
        await before(i)
        spent.append(await client.get(url))
    return statistics.fmean(spent) * 1000


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=120, help="per path and pattern")
    parser.add_argument("--hours", type=float, default=24.0, help="of soak rows in the ledger")
    parser.add_argument(
        "--bot-cpu-per-minute",
        type=float,
        default=1.16,
        help="the soak bot's CPU seconds a minute without the dashboard (bench_soak.py)",
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="carrybot-scrape-"))
    ledger, clock, engine = await build_ledger(work, args.hours)
    metrics = Metrics()
    for job in ("poll", "evaluate", "heartbeat", "balances", "reconcile"):
        for _ in range(50):
            metrics.observe_job(job, 0.02)
    read = ReadModel(ledger, leverage=2, clock=clock, owns_ledger=True)  # as `carrybot run`
    app = create_app(WebContext(read, clock, live=Probe(clock), metrics=metrics, source="bot"))
    empty = CollectorRegistry()

    async def floor_route(request: Request) -> Response:
        return Response(generate_latest(empty), media_type="text/plain")

    servers = [
        DashboardServer(app, "127.0.0.1", 0),
        DashboardServer(Starlette(routes=[Route("/metrics", floor_route)]), "127.0.0.1", 0),
    ]
    for server in servers:
        await server.start()
    dash, floor_url = servers[0].url, servers[1].url + "/metrics"
    client = Client()
    await client.start()
    minute = [10**6]

    async def idle(i: int) -> None:
        clock.advance(SCRAPE)

    async def soak(i: int) -> None:
        clock.advance(SCRAPE)
        if i % 4 == 0:
            minute[0] += 1
            await add_minute(ledger, clock, minute[0])

    async def changed(i: int) -> None:
        clock.advance(SCRAPE)
        await ledger.events.emit(Event("bench.tick", "tick", clock.now(), Severity.INFO, {}))

    print(
        f"load average at the start: {' '.join(f'{x:.1f}' for x in os.getloadavg())}; ledger: "
        f"{args.hours:g} h of soak rows ({int(args.hours * 60) * len(SYMBOLS)} observations)"
    )
    for _ in range(10):  # warm up both servers and the client
        await client.get(floor_url)
        await client.get(dash + "/metrics")
    floor = await measure(client, floor_url, args.requests, idle)
    print(f"floor (empty registry through uvicorn): {floor:6.2f} ms CPU per request")
    figures: dict[tuple[str, str], float] = {}
    for path in ("/metrics", "/", "/api/status"):
        for name, before in (("idle", idle), ("soak", soak), ("changed", changed)):
            ms = await measure(client, dash + path, args.requests, before)
            figures[(path, name)] = ms
            print(
                f"{path:12s} {name:8s} {ms:6.2f} ms CPU per request, "
                f"{ms - floor:+6.2f} ms over the floor ({ms / floor:.1f}x)"
            )
    budget = args.bot_cpu_per_minute * 0.05 * 1000 / 4
    scrape = figures[("/metrics", "soak")]
    print(
        f"/metrics at the soak pattern: {scrape:.2f} ms a scrape = {scrape * 4:.1f} ms a minute "
        f"= {scrape * 4 / (args.bot_cpu_per_minute * 10):.1f}% of the soak bot's "
        f"{args.bot_cpu_per_minute:g} CPU s/min (budget 5%: {budget:.1f} ms a scrape)"
    )
    print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    await client.stop()
    for server in servers:
        await server.stop()
    await engine.dispose()  # type: ignore[attr-defined]


if __name__ == "__main__":
    asyncio.run(main())
