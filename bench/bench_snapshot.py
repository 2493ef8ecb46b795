"""Time a market-wide snapshot through LiveExchange (real ccxt) against the fake Binance.

One snapshot = funding of every perpetual + best quotes of both markets, fetched together.
Prints, per universe size, the HTTP requests one snapshot makes (target: 3 whatever the
symbol count) and its wall time (median and p90 over the runs), market loading excluded.
The fake runs in its own process (as Binance would), so the times are the client's.

    .venv/bin/python bench/bench_snapshot.py [--runs N] [--sizes 30,300,1000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.clock import SystemClock
from bot.config import ExchangeConfig
from bot.domain import MarketKind
from bot.exchange.ccxt_live import LiveExchange
from tests.fakes.fixtures import FakeBinanceProcess


async def snapshot(live: LiveExchange) -> tuple[int, int, int]:
    funding, spot, perp = await asyncio.gather(
        live.fetch_funding_snapshot(),
        live.fetch_best_quotes(MarketKind.SPOT),
        live.fetch_best_quotes(MarketKind.PERPETUAL),
    )
    return len(funding), len(spot), len(perp)


async def measure(fake: FakeBinanceProcess, size: int, runs: int) -> None:
    fake.control("POST", "/_fake/universe", {"n": size})
    config = ExchangeConfig(spot_api_url=fake.url, futures_api_url=fake.url)
    live = LiveExchange(config, clock=SystemClock())
    times, requests = [], Counter[int]()
    rows = (0, 0, 0)
    try:
        await live.load_instruments()
        await snapshot(live)  # warm-up: connections, code paths
        for _ in range(runs):
            fake.control("POST", "/_fake/limits", {"reset": True})  # the work, not the budget
            seen = fake.control("GET", "/_fake/state")["requests"]
            began = time.perf_counter()
            rows = await snapshot(live)
            times.append(time.perf_counter() - began)
            requests[fake.control("GET", "/_fake/state")["requests"] - seen] += 1
    finally:
        await live.close()
    last = fake.control("GET", "/_fake/requests")[-3:]
    times.sort()
    p90 = times[int(0.9 * (len(times) - 1))]
    print(
        f"{size:5d} perps | rows funding/spot/perp {rows[0]}/{rows[1]}/{rows[2]} | "
        f"requests per snapshot {dict(requests)} | median {statistics.median(times) * 1000:.1f} ms"
        f" | p90 {p90 * 1000:.1f} ms | {', '.join(sorted(r['path'] for r in last))}"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--sizes", default="30,300,1000")
    args = parser.parse_args()
    print(f"market-wide snapshot over ccxt, {args.runs} runs per size (fake Binance process)")
    with FakeBinanceProcess() as fake:
        for size in (int(s) for s in args.sizes.split(",")):
            await measure(fake, size, args.runs)


if __name__ == "__main__":
    asyncio.run(main())
