"""Streams vs REST polling against the fake Binance (its own process), 300 pairs by default.

Prints, in one run:
- age of the market data at decision time: streams measured (a snapshot at random times,
  age = now − arrival of each book ticker used), REST polling from the measured snapshot
  latency L and the poll interval P (a decision sees data L + U(0, P) old);
- REST request weight per minute at the default 10 s cadence, both ways (weights counted
  by the fake); the ratio is the reduction;
- forced disconnects of every connection: time until every stream is live again, p50/p99;
- a refused-handshake window: entries blocked during it, time from acceptance to live;
- a short soak: forced disconnects every `--every` seconds for `--soak` seconds; RSS, asyncio
  tasks and open connections before and after (the 1-hour soak of the issue is
  `--soak 3600 --every 600`).

    .venv/bin/python bench/bench_streams.py [--pairs 300] [--book-interval 0.25]
        [--disconnects 20] [--soak 60] [--every 10]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.clock import SystemClock
from bot.config import config_from_dict
from bot.domain import MarketKind
from bot.exchange.ccxt_live import LiveExchange
from bot.streams.factory import streaming_source
from bot.streams.gate import EntryGate
from bot.streams.health import StreamState
from bot.streams.source import StreamingSource
from tests.fakes.fixtures import FakeBinanceProcess

POLL_SECONDS = 10.0


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def weight(fake: FakeBinanceProcess) -> int:
    used = fake.control("GET", "/_fake/state")["used_weight"]
    return int(used["spot"]) + int(used["futures"])


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def rest_figures(fake: FakeBinanceProcess, config_raw: dict, runs: int) -> tuple[float, int]:
    """Median REST snapshot latency (s) and weight of one snapshot."""
    config = config_from_dict(config_raw)
    live = LiveExchange(config.exchange, clock=SystemClock())
    try:
        await live.load_instruments()
        times, weights = [], []
        for _ in range(runs):
            fake.control("POST", "/_fake/limits", {"reset": True})
            began = time.perf_counter()
            await asyncio.gather(
                live.fetch_funding_snapshot(),
                live.fetch_best_quotes(MarketKind.SPOT),
                live.fetch_best_quotes(MarketKind.PERPETUAL),
            )
            times.append(time.perf_counter() - began)
            weights.append(weight(fake))
        return statistics.median(times), int(statistics.median(weights))
    finally:
        await live.close()


async def all_live(
    source: StreamingSource, limit: float, *, since: dict[str, int] | None = None
) -> float:
    """Seconds until every stream is live (and reconnected since the counts in `since`)."""
    began = time.perf_counter()
    while time.perf_counter() - began < limit:
        streams = source.health.all()
        again = all(h.reconnects > (since or {}).get(h.name, -1) for h in streams)
        if streams and again and all(h.state is StreamState.LIVE for h in streams):
            return time.perf_counter() - began
        await asyncio.sleep(0.01)
    raise TimeoutError(f"streams not live: {source.health.to_json()}")


def reconnects(source: StreamingSource) -> dict[str, int]:
    return {h.name: h.reconnects for h in source.health.all()}


async def snapshot(source: StreamingSource) -> None:
    await asyncio.gather(
        source.fetch_funding_snapshot(),
        source.fetch_best_quotes(MarketKind.SPOT),
        source.fetch_best_quotes(MarketKind.PERPETUAL),
    )


async def main(args: argparse.Namespace) -> None:
    fake = FakeBinanceProcess(universe=args.pairs, book_interval=args.book_interval)
    ws = fake.url.replace("http://", "ws://", 1)
    raw = {
        "exchange": {"spot_api_url": fake.url, "futures_api_url": fake.url},
        "universe": {"symbols": []},
        "streams": {
            "spot_ws_url": f"{ws}/stream/ws",
            "futures_ws_url": f"{ws}/f/ws",
            "settle_seconds": 2,
            "reconnect_max_backoff_seconds": 1,
        },
    }
    try:
        latency, rest_weight = await rest_figures(fake, raw, 5)
        config = config_from_dict(raw)
        source = streaming_source(
            LiveExchange(config.exchange, clock=SystemClock()), config, SystemClock()
        )
        assert source is not None
        try:
            await source.start()
            await all_live(source, 30)
            connections = len(source.health.all())
            await snapshot(source)  # the REST funding base
            # --- age at decision time ------------------------------------------------------
            fake.control("POST", "/_fake/limits", {"reset": True})
            ages: list[float] = []
            rng = random.Random(7)
            for _ in range(args.decisions):
                await asyncio.sleep(rng.uniform(0.02, 0.2))
                quotes = await source.fetch_best_quotes(MarketKind.SPOT)
                perp = await source.fetch_best_quotes(MarketKind.PERPETUAL)
                now = SystemClock().now()
                ages += [
                    (now - q.timestamp).total_seconds() for q in (*quotes.values(), *perp.values())
                ]
            stream_weight = weight(fake)
            per_min_stream = stream_weight / args.decisions * (60 / POLL_SECONDS) + 10 * 60 / 300
            per_min_rest = rest_weight * (60 / POLL_SECONDS)
            print(
                f"pairs {args.pairs}, {connections} stream connections, "
                f"fake book ticker every {args.book_interval:g}s"
            )
            print(
                f"data age at decision: streams p50 {pct(ages, 0.5) * 1000:.0f} ms p99 "
                f"{pct(ages, 0.99) * 1000:.0f} ms | REST poll {POLL_SECONDS:g}s: p50 "
                f"{(latency + POLL_SECONDS / 2) * 1000:.0f} ms p99 "
                f"{(latency + 0.99 * POLL_SECONDS) * 1000:.0f} ms "
                f"(snapshot latency {latency * 1000:.0f} ms)"
            )
            print(
                f"REST weight/min at {POLL_SECONDS:g}s cadence: REST polling {per_min_rest:.0f}, "
                f"streams {per_min_stream:.1f} (premiumIndex every 300 s) -> "
                f"{(1 - per_min_stream / per_min_rest) * 100:.1f}% less"
            )
            # --- forced disconnects --------------------------------------------------------
            times = []
            for _ in range(args.disconnects):
                target = reconnects(source)
                began = time.perf_counter()
                fake.control("POST", "/_fake/streams/drop", {})
                await all_live(source, 30, since=target)
                times.append(time.perf_counter() - began)
                await asyncio.sleep(0.3)
            print(
                f"forced disconnect of all {connections} connections x{args.disconnects}: "
                f"live again p50 {pct(times, 0.5):.2f}s p99 {pct(times, 0.99):.2f}s "
                f"max {max(times):.2f}s"
            )
            # --- refused window ------------------------------------------------------------
            gate = EntryGate(config.streams, SystemClock(), source, {})
            key = next(iter(source.pairs_by_key))
            fake.control("POST", "/_fake/streams/refuse", {"seconds": args.refuse})
            target = reconnects(source)
            fake.control("POST", "/_fake/streams/drop", {})
            blocked, checks, fallbacks = 0, 0, source.rest_fallbacks
            accepted_at = time.perf_counter() + args.refuse
            while time.perf_counter() < accepted_at:
                checks += 1
                blocked += gate(key) is not None
                await snapshot(source)
                await asyncio.sleep(0.5)
            back = await all_live(source, 30, since=target)
            settle_began = time.perf_counter()
            while gate(key) is not None:  # noqa: ASYNC110 - the gate is a pure check, no event
                await asyncio.sleep(0.05)
            print(
                f"refused {args.refuse:g}s: {blocked}/{checks} entry checks blocked, "
                f"{source.rest_fallbacks - fallbacks} REST fallbacks; live {back:.2f}s after "
                f"acceptance, entries open {time.perf_counter() - settle_began + back:.2f}s after "
                f"(settle {config.streams.settle_seconds:g}s)"
            )
            # --- soak ----------------------------------------------------------------------
            rss0, tasks0 = rss_mib(), len(asyncio.all_tasks())
            open0 = len(fake.control("GET", "/_fake/streams")["open"])
            ended = time.perf_counter() + args.soak
            drops = 0
            while time.perf_counter() < ended:
                await asyncio.sleep(min(args.every, max(0.0, ended - time.perf_counter())))
                target = reconnects(source)
                fake.control("POST", "/_fake/streams/drop", {})
                drops += 1
                await all_live(source, 30, since=target)
                await snapshot(source)
            await asyncio.sleep(1)
            rss1, tasks1 = rss_mib(), len(asyncio.all_tasks())
            open1 = len(fake.control("GET", "/_fake/streams")["open"])
            print(
                f"soak {args.soak:g}s, {drops} forced disconnects: "
                f"RSS {rss0:.0f} -> {rss1:.0f} MiB, "
                f"tasks {tasks0} -> {tasks1}, open connections {open0} -> {open1}, "
                f"bad frames {source.streams.bad_frames if source.streams else 0}"
            )
        finally:
            await source.close()
    finally:
        fake.stop()


if __name__ == "__main__":
    logging.basicConfig(level=logging.ERROR)  # reconnect warnings are expected here
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=300)
    parser.add_argument("--book-interval", type=float, default=0.25)
    parser.add_argument("--decisions", type=int, default=100)
    parser.add_argument("--disconnects", type=int, default=20)
    parser.add_argument("--refuse", type=float, default=10.0)
    parser.add_argument("--soak", type=float, default=60.0)
    parser.add_argument("--every", type=float, default=10.0)
    asyncio.run(main(parser.parse_args()))
