"""Time LiveExchange.load_instruments (ccxt load_markets, spot + USDⓈ-M) on the fake Binance,
and show it runs once per process: exchangeInfo requests over many snapshot cycles.
The fake runs in its own process, so the times are the client's.

    .venv/bin/python bench/bench_load_markets.py [--runs N] [--size 300] [--cycles 20]
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

SHOWN = (
    "/api/v3/exchangeInfo",
    "/fapi/v1/exchangeInfo",
    "/api/v3/time",
    "/fapi/v1/fundingInfo",
    "/fapi/v1/premiumIndex",
    "/api/v3/ticker/bookTicker",
    "/fapi/v1/ticker/bookTicker",
)


def _live(fake: FakeBinanceProcess) -> LiveExchange:
    config = ExchangeConfig(spot_api_url=fake.url, futures_api_url=fake.url)
    return LiveExchange(config, clock=SystemClock())


async def time_loads(fake: FakeBinanceProcess, runs: int) -> tuple[list[float], int]:
    """Load markets in `runs` fresh adapters (a new process each time, as far as ccxt knows)."""
    times, count = [], 0
    for _ in range(runs):
        fake.control("POST", "/_fake/limits", {"reset": True})
        live = _live(fake)
        try:
            began = time.perf_counter()
            count = len(await live.load_instruments())
            times.append(time.perf_counter() - began)
        finally:
            await live.close()
    return times, count


async def count_cycles(fake: FakeBinanceProcess, cycles: int) -> Counter[str]:
    """Run snapshot cycles in one adapter; count what reached the fake."""
    fake.control("DELETE", "/_fake/requests")
    live = _live(fake)
    try:
        for _ in range(cycles):
            fake.control("POST", "/_fake/limits", {"reset": True})
            await live.pairs()
            await asyncio.gather(
                live.fetch_funding_snapshot(),
                live.fetch_best_quotes(MarketKind.SPOT),
                live.fetch_best_quotes(MarketKind.PERPETUAL),
            )
    finally:
        await live.close()
    return Counter(r["path"] for r in fake.control("GET", "/_fake/requests"))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--size", type=int, default=300)
    parser.add_argument("--cycles", type=int, default=20)
    args = parser.parse_args()
    with FakeBinanceProcess() as fake:
        fake.control("POST", "/_fake/universe", {"n": args.size})
        times, count = await time_loads(fake, args.runs)
        paths = await count_cycles(fake, args.cycles)
    times.sort()
    print(f"load_instruments: {args.size} spot+perp pairs, {count} instruments, {args.runs} runs")
    print(
        f"  median {statistics.median(times) * 1000:.1f} ms | min {times[0] * 1000:.1f} ms"
        f" | max {times[-1] * 1000:.1f} ms  (exchangeInfo x2 + time + fundingInfo)"
    )
    print(f"one adapter, {args.cycles} cycles of pairs() + funding snapshot + both quote sets:")
    for path in SHOWN:
        print(f"  {path:28s} {paths[path]:4d}")
    print(f"  total requests {sum(paths.values())}")


if __name__ == "__main__":
    asyncio.run(main())
