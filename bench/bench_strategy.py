"""Time `funding_carry.evaluate` on a 500-pair snapshot with 21 settled periods per perpetual.

Prints the median and p99 time per evaluation and what one evaluation allocates (tracemalloc:
peak traced memory during the call, and blocks still alive after it). Target: median < 5 ms
on a 2-core machine. Scenarios: the automatic universe (top 10 of 500 liquid pairs, the
default shape) and an explicit universe of all 500 pairs (every pair fully evaluated).

    .venv/bin/python bench/bench_strategy.py [--runs N]
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from bot.domain import (
    FundingInfo,
    Hedge,
    HedgeState,
    Instrument,
    MarketKind,
    MarketSnapshot,
    Pair,
    Portfolio,
    Quote,
    SettledFunding,
)
from bot.domain.params import UniverseParams
from strategies.funding_carry import FundingCarry, FundingCarryParams

D = Decimal
NOW = datetime(2025, 10, 1, 12, 0, tzinfo=UTC)
PAIRS = 500
HISTORY = 21


def instrument(base: str, kind: MarketKind) -> Instrument:
    symbol = f"{base}/USDT" if kind is MarketKind.SPOT else f"{base}/USDT:USDT"
    return Instrument(
        symbol=symbol,
        exchange_symbol=f"{base}USDT",
        kind=kind,
        base=base,
        quote="USDT",
        tick_size=D("0.0001"),
        step_size=D("0.1"),
        min_qty=D("0.1"),
        min_notional=D("5"),
        settle=None if kind is MarketKind.SPOT else "USDT",
        listed_at=NOW - timedelta(days=400),
    )


def build_snapshot(rng: random.Random) -> MarketSnapshot:
    pairs: list[Pair] = []
    funding: dict[str, FundingInfo] = {}
    spot_quotes: dict[str, Quote] = {}
    perp_quotes: dict[str, Quote] = {}
    volumes: dict[str, Decimal] = {}
    history: dict[str, list[SettledFunding]] = {}
    for i in range(PAIRS):
        base = f"C{i:03d}"
        pair = Pair(instrument(base, MarketKind.SPOT), instrument(base, MarketKind.PERPETUAL))
        pairs.append(pair)
        interval = rng.choice([8, 8, 8, 4, 4, 1])
        price = D(str(round(rng.uniform(0.5, 500), 4)))
        premium = rng.gauss(0.0001, 0.0004)  # the perp's premium drives its funding rate
        per_8h = premium + min(0.0005, max(-0.0005, 0.0001 - premium))
        rate = D(str(round(per_8h * interval / 8, 8)))
        spot_quotes[pair.spot.symbol] = Quote(
            pair.spot.symbol, price, price + D("0.0001"), D("1000"), D("1000"), NOW
        )
        perp_bid = price * (1 + D(str(round(premium, 6))))
        perp_quotes[pair.perp.symbol] = Quote(
            pair.perp.symbol, perp_bid, perp_bid + D("0.0001"), D("1000"), D("1000"), NOW
        )
        funding[pair.perp.symbol] = FundingInfo(
            symbol=pair.perp.symbol,
            funding_rate=rate,
            next_funding_time=NOW + timedelta(hours=interval / 2),
            interval_hours=interval,
            mark_price=price,
            index_price=price,
            interest_rate=D("0.0001"),
            timestamp=NOW,
        )
        volumes[pair.spot.symbol] = volumes[pair.perp.symbol] = D("100000000")
        last = NOW - timedelta(hours=interval / 2)
        history[pair.perp.symbol] = [
            SettledFunding(
                pair.perp.symbol,
                last - timedelta(hours=interval * (HISTORY - 1 - k)),
                D(str(round(rng.gauss(per_8h, 0.0002) * interval / 8, 8))),
            )
            for k in range(HISTORY)
        ]
    return MarketSnapshot(
        taken_at=NOW,
        pairs=pairs,
        funding=funding,
        spot_quotes=spot_quotes,
        perp_quotes=perp_quotes,
        volumes_24h=volumes,
        funding_history=history,
    )


def build_portfolio(snapshot: MarketSnapshot) -> Portfolio:
    hedges = [
        Hedge(
            id=i + 1,
            uid=f"bench{i}",
            pair=pair.key,
            spot_symbol=pair.spot.symbol,
            perp_symbol=pair.perp.symbol,
            state=HedgeState.OPEN,
            target_quantity=D("10"),
            spot_quantity=D("10"),
            perp_quantity=D("10"),
            target_notional=D("1000"),
            created_at=NOW - timedelta(days=3),
            updated_at=NOW - timedelta(days=3),
            opened_at=NOW - timedelta(days=3),
            entry_spot_price=snapshot.spot_quotes[pair.spot.symbol].ask,
            entry_perp_price=snapshot.perp_quotes[pair.perp.symbol].bid,
        )
        for i, pair in enumerate(list(snapshot.pairs)[:3])
    ]
    return Portfolio(hedges=hedges)


def measure(label: str, params: FundingCarryParams, snapshot: MarketSnapshot, runs: int) -> None:
    strategy = FundingCarry()
    portfolio = build_portfolio(snapshot)
    for _ in range(20):
        intents = strategy.evaluate(snapshot, portfolio, params)
    times: list[float] = []
    gc.disable()
    try:
        for _ in range(runs):
            start = time.perf_counter_ns()
            strategy.evaluate(snapshot, portfolio, params)
            times.append((time.perf_counter_ns() - start) / 1e6)
    finally:
        gc.enable()
    times.sort()
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]

    tracemalloc.start()
    strategy.evaluate(snapshot, portfolio, params)  # warm caches under tracing
    before = tracemalloc.take_snapshot()
    tracemalloc.reset_peak()
    base, _ = tracemalloc.get_traced_memory()
    strategy.evaluate(snapshot, portfolio, params)
    _, peak = tracemalloc.get_traced_memory()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    diff = after.compare_to(before, "filename")
    kept_blocks = sum(max(0, d.count_diff) for d in diff)
    kept_bytes = sum(max(0, d.size_diff) for d in diff)

    print(f"{label}:")
    print(f"  intents per evaluation  {len(intents)}")
    print(f"  median                  {statistics.median(times):.3f} ms")
    print(f"  p99                     {p99:.3f} ms   (runs={runs})")
    print(f"  peak traced per call    {(peak - base) / 1024:.1f} KiB")
    print(f"  retained after call     {kept_blocks} blocks, {kept_bytes} B")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=500)
    args = parser.parse_args()
    snapshot = build_snapshot(random.Random(7))
    print(f"snapshot: {PAIRS} pairs, {HISTORY} settled periods each, 3 open hedges")
    auto = FundingCarryParams(universe=UniverseParams(symbols=(), top_n=10))
    measure("automatic universe (top 10 of 500)", auto, snapshot, args.runs)
    explicit = FundingCarryParams(
        universe=UniverseParams(symbols=tuple(p.key for p in snapshot.pairs))
    )
    measure("explicit universe (all 500 evaluated)", explicit, snapshot, max(20, args.runs // 10))


if __name__ == "__main__":
    main()
