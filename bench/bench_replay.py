"""Time loading ../shared/data and stepping a `ReplaySource` through every hour of it.

Each step moves a simulated clock one hour and calls `fetch_funding_snapshot` and both
`fetch_best_quotes`: the market-data floor under a backtest of all five symbols over their
full history (target: well under the 60 s a full backtest may take). A second pass adds
`fetch_volumes_24h` for both markets and one order book per listed perpetual.

    .venv/bin/python bench/bench_replay.py [DATA_DIR]
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from bot.backtest import ReplaySource, load_history
from bot.backtest.series import HOUR_MS, from_ms
from bot.clock import SimulatedClock
from bot.domain import MarketKind

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


async def step(
    source: ReplaySource, clock: SimulatedClock, start: int, end: int, *, full: bool
) -> tuple[int, int, float]:
    """Step hourly from `start` to `end` (ms); return (hours, answers, seconds)."""
    hours = answers = 0
    began = time.perf_counter()
    for ms in range(start, end, HOUR_MS):
        clock.set(from_ms(ms))
        funding = await source.fetch_funding_snapshot()
        spot = await source.fetch_best_quotes(MarketKind.SPOT)
        perp = await source.fetch_best_quotes(MarketKind.PERPETUAL)
        answers += len(funding) + len(spot) + len(perp)
        if full:
            answers += len(await source.fetch_volumes_24h(MarketKind.SPOT))
            answers += len(await source.fetch_volumes_24h(MarketKind.PERPETUAL))
            for symbol in perp:
                await source.fetch_order_book(symbol, 20)
                answers += 1
        hours += 1
    return hours, answers, time.perf_counter() - began


async def main(root: Path) -> None:
    began = time.perf_counter()
    history = load_history(root)
    loaded = time.perf_counter() - began
    start = min(s.start_ms for s in history.symbols.values())
    end = max(s.end_ms for s in history.symbols.values())
    print(f"load {root}: {len(history.symbols)} symbols in {loaded:.2f} s")
    for full in (False, True):
        clock = SimulatedClock(from_ms(start))
        source = ReplaySource(history, clock)
        hours, answers, seconds = await step(source, clock, start, end, full=full)
        what = "+ volumes + books" if full else "funding + quotes"
        print(
            f"step {hours} hours ({from_ms(start):%Y-%m-%d} → {from_ms(end):%Y-%m-%d}), "
            f"{what}: {answers} answers in {seconds:.2f} s "
            f"({seconds / hours * 1e6:.0f} µs/hour)"
        )


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]) if len(sys.argv) > 1 else DATA))
