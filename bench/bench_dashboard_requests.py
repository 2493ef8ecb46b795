"""CPU per dashboard request, in process, over the seeded ledger (open and closed hedges on
SQLite): each view rebuilt (the kept views dropped before every request, and /metrics' kept
parts) against kept (unchanged).

    python bench/bench_dashboard_requests.py --requests 50
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402

from bot.persistence import migrate  # noqa: E402
from bot.persistence.db import create_engine, session_factory  # noqa: E402
from bot.persistence.repositories import CycleReads, Ledger  # noqa: E402
from bot.web import WebContext, create_app  # noqa: E402
from bot.web.ledger_metrics import LedgerMetrics  # noqa: E402
from bot.web.readmodel import ReadModel  # noqa: E402
from tests.support.seeded_ledger import seed_ledger  # noqa: E402

PATHS = ("/metrics", "/", "/api/status")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50, help="per path and way")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="carrybot-dash-"))
    engine = create_engine(f"sqlite+aiosqlite:///{work / 'ledger.db'}")
    await migrate.upgrade(engine)
    ledger = Ledger(session_factory(engine), CycleReads())
    seeded = await seed_ledger(ledger)
    read = ReadModel(ledger, leverage=2)
    ctx = WebContext(read, seeded.clock)
    app = create_app(ctx)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        for path in PATHS:
            figures = []
            for rebuilt in (True, False):
                for _ in range(5):
                    await client.get(path)
                started = time.process_time()
                for _ in range(args.requests):
                    if rebuilt:
                        read.invalidate()
                        ctx.metrics.ledger = LedgerMetrics()  # every part of /metrics read
                    assert (await client.get(path)).status_code == 200
                figures.append((time.process_time() - started) / args.requests * 1000)
            print(
                f"{path:12s} rebuilt {figures[0]:6.2f} ms CPU, kept {figures[1]:5.2f} ms "
                f"({figures[0] / figures[1]:.1f}x less)"
            )
    await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
