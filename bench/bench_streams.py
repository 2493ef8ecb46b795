"""Streams vs REST polling against the fake Binance (its own process), 300 pairs by default.

Prints, in one run:
- age of the market data at decision time: streams measured (a snapshot at random times,
  age = now − arrival of each book ticker used), REST polling from the measured snapshot
  latency L and the poll interval P (a decision sees data L + U(0, P) old);
- REST request weight per minute at the default 10 s cadence, both ways (weights counted
  by the fake); the ratio is the reduction;
- forced disconnects of every connection: time until every stream is live again, p50/p99;
- a refused-handshake window (60 s by default): entries blocked during it, the oldest quote
  the REST fallback served, time from acceptance to live and to entries open;
- fills while the user-data streams are down (`--gaps`): each order's REST response and
  look-ups lost, resolved by the look-up after the resync, recorded once;
- a soak: forced disconnects every `--every` seconds for `--soak` seconds, with orders every
  `--order-every` s, a gap fill at each disconnect and funding settled every
  `--funding-every` s; RSS, asyncio tasks and sockets, duplicate fills, missed funding
  (the issue's 1-hour soak: `--soak-only --soak 3600 --every 600 --verbose`).

    .venv/bin/python bench/bench_streams.py [--pairs 300] [--book-interval 0.25]
        [--disconnects 20] [--refuse 60] [--gaps 5] [--soak 60] [--every 10] [--soak-only]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.streams_trading import USER_PREFIXES, Book, Funding
from bot.clock import SystemClock
from bot.config import Config, config_from_dict
from bot.domain import MarketKind
from bot.exchange.ccxt_live import LiveExchange
from bot.streams.exchange import StreamedExchange
from bot.streams.factory import with_streams
from bot.streams.gate import EntryGate
from bot.streams.health import StreamState
from bot.streams.source import StreamingSource
from bot.streams.user import FUTURES_USER, SPOT_USER
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


def sockets_open() -> int:
    fds = Path("/proc/self/fd")
    count = 0
    for fd in fds.iterdir():
        try:
            count += os.readlink(fd).startswith("socket:")
        except OSError:
            continue
    return count


def sample() -> tuple[float, int, int]:
    return rss_mib(), len(asyncio.all_tasks()), sockets_open()


async def user_down(exchange: StreamedExchange, fake: FakeBinanceProcess, seconds: float) -> None:
    """Refuse the user-data paths for `seconds`, drop every connection, wait until down."""
    for prefix in USER_PREFIXES:
        fake.control("POST", "/_fake/streams/refuse", {"seconds": seconds, "prefix": prefix})
    fake.control("POST", "/_fake/streams/drop", {})
    user = exchange.source.user
    assert user is not None
    began = time.perf_counter()
    while user.live(FUTURES_USER) or user.live(SPOT_USER):
        if time.perf_counter() - began > 5:
            raise TimeoutError("user streams still live after the drop")
        await asyncio.sleep(0.01)


async def gap_fill(
    exchange: StreamedExchange, fake: FakeBinanceProcess, book: Book, resynced: asyncio.Event
) -> float:
    """Orders filled while the user streams are down; returns seconds until resolved."""
    source = exchange.source
    target = reconnects(source)
    resynced.clear()
    await user_down(exchange, fake, 3.0)
    began = time.perf_counter()
    await book.trade_in_gap()
    await all_live(source, 30, since=target)
    await asyncio.wait_for(resynced.wait(), 10)
    await book.resync()
    return time.perf_counter() - began


async def main(args: argparse.Namespace) -> None:
    fake = FakeBinanceProcess(universe=args.pairs, book_interval=args.book_interval)
    ws = fake.url.replace("http://", "ws://", 1)
    raw = {
        "exchange": {"spot_api_url": fake.url, "futures_api_url": fake.url},
        "universe": {"symbols": []},
        "streams": {
            "spot_ws_url": f"{ws}/stream/ws",
            "futures_ws_url": f"{ws}/f/ws",
            "spot_ws_api_url": f"{ws}/ws-api/v3",
            "settle_seconds": 2,
            "reconnect_max_backoff_seconds": 1,
        },
    }
    for wallet in ("spot", "futures"):
        fake.control(
            "POST", "/_fake/account/deposit", {"wallet": wallet, "asset": "USDT", "amount": "1e7"}
        )
    try:
        latency, rest_weight = await rest_figures(fake, raw, 5)
        config = config_from_dict(raw)
        live = LiveExchange(
            config.exchange,
            api_key=fake.api_key,
            api_secret=fake.api_secret,
            clock=SystemClock(),
        )
        exchange = with_streams(
            live, config, SystemClock(), api_key=fake.api_key, api_secret=fake.api_secret
        )
        assert isinstance(exchange, StreamedExchange)
        source = exchange.source
        resynced = asyncio.Event()
        source.on_user_resync = resynced.set
        try:
            await source.start()
            await all_live(source, 30)
            connections = len(source.health.all())
            await snapshot(source)  # the REST funding base
            bases = sorted(p.spot.symbol for p in source.pairs_by_key.values())[:20]
            book = Book(exchange, fake, bases)
            funding = Funding(exchange, fake)
            if not args.soak_only:
                await figures(args, fake, source, config, latency, rest_weight, connections)
                times = [await gap_fill(exchange, fake, book, resynced) for _ in range(args.gaps)]
                result = await book.check()
                print(
                    f"fills while the user streams were down x{args.gaps}: "
                    f"{result['gap_orders']} orders (response and look-ups lost), "
                    f"{result['resolved_after_resync']} resolved by the resync look-up "
                    f"(p50 {pct(times, 0.5):.2f}s after the fill), {result['unresolved']} "
                    f"unresolved, {result['mismatched']} differing from the exchange, "
                    f"{result['fills_offered']} fills offered, {result['fills_recorded']} "
                    f"recorded, {result['stream_duplicates']} counted twice by the stream"
                )
            if args.soak > 0:
                await soak(args, fake, exchange, book, funding, resynced)
        finally:
            await exchange.close()
    finally:
        fake.stop()


async def soak(
    args: argparse.Namespace,
    fake: FakeBinanceProcess,
    exchange: StreamedExchange,
    book: Book,
    funding: Funding,
    resynced: asyncio.Event,
) -> None:
    """Forced disconnects every `--every` s for `--soak` s, with orders, gap fills, funding."""
    source = exchange.source
    perps = [f"{b}:USDT" for b in book.pairs[:3]]
    await book.trade()  # positions on the perps whose funding is settled below
    began = time.perf_counter()
    ended = began + args.soak
    samples: list[tuple[float, float, int, int]] = []
    drops, next_drop = 0, began + args.every
    next_order, next_funding = began, began + args.funding_every
    reconnect_times: list[float] = []
    while time.perf_counter() < ended:
        now = time.perf_counter()
        if now >= next_drop:
            drops += 1
            reconnect_times.append(await gap_fill(exchange, fake, book, resynced))
            await funding.settle(perps)  # right after a reconnect
            await asyncio.sleep(1)
            samples.append((time.perf_counter() - began, *sample()))
            if args.verbose:
                print(
                    f"  t={samples[-1][0]:.0f}s rss={samples[-1][1]:.1f} MiB "
                    f"tasks={samples[-1][2]} sockets={samples[-1][3]}",
                    flush=True,
                )
            next_drop += args.every
        if now >= next_order:
            await book.trade()
            await snapshot(source)
            next_order += args.order_every
        if now >= next_funding:
            await funding.settle(perps)
            next_funding += args.funding_every
        await asyncio.sleep(0.2)
    await asyncio.sleep(1)
    end = (time.perf_counter() - began, *sample())
    first = samples[0] if samples else end
    open_now = len(fake.control("GET", "/_fake/streams")["open"])
    orders, paid = await book.check(), await funding.check()
    print(
        f"soak {args.soak:g}s, {drops} forced disconnects of all {len(source.health.all())} "
        f"connections (user streams refused 3 s each): RSS {first[1]:.0f} -> {end[1]:.0f} MiB "
        f"(max {max(s[1] for s in [*samples, end]):.0f}), asyncio tasks {first[2]} -> {end[2]}, "
        f"sockets {first[3]} -> {end[3]}, fake's open connections {open_now}, "
        f"bad frames {source.streams.bad_frames if source.streams else 0}"
    )
    print(
        f"soak orders: {orders['orders']} recorded ({orders['gap_orders']} filled during a "
        f"user-stream gap, {orders['resolved_after_resync']} of them resolved after the resync, "
        f"{orders['unresolved']} unresolved), {orders['stream_fills']} answered by the stream "
        f"first; {orders['mismatched']} differing from the exchange, "
        f"{orders['fills_not_matching_exchange']} whose recorded fills differ, "
        f"{orders['stream_duplicates']} counted twice by the stream"
    )
    print(
        f"soak funding: {paid['settlements']} settlements, {paid['seen_in_snapshot']} seen in "
        f"the snapshot (slowest {paid['slowest_seen_s']:.1f}s), payments {paid['payments']} "
        f"({paid['distinct_payments']} distinct), missed {paid['missed_payments']}"
    )
    print(
        f"soak reconnect (drop -> every stream live, resync done) p50 "
        f"{pct(reconnect_times, 0.5):.2f}s max {max(reconnect_times, default=0):.2f}s"
    )


async def figures(
    args: argparse.Namespace,
    fake: FakeBinanceProcess,
    source: StreamingSource,
    config: Config,
    latency: float,
    rest_weight: int,
    connections: int,
) -> None:
    """Data age and weight, forced disconnects, the refused window."""
    # --- age at decision time ----------------------------------------------------------
    fake.control("POST", "/_fake/limits", {"reset": True})
    ages: list[float] = []
    rng = random.Random(7)
    for _ in range(args.decisions):
        await asyncio.sleep(rng.uniform(0.02, 0.2))
        quotes = await source.fetch_best_quotes(MarketKind.SPOT)
        perp = await source.fetch_best_quotes(MarketKind.PERPETUAL)
        now = SystemClock().now()
        ages += [(now - q.timestamp).total_seconds() for q in (*quotes.values(), *perp.values())]
    stream_weight = weight(fake)
    per_min_stream = stream_weight / args.decisions * (60 / POLL_SECONDS) + 10 * 60 / 300
    per_min_rest = rest_weight * (60 / POLL_SECONDS)
    print(
        f"pairs {args.pairs}, {connections} stream connections (market + 2 user-data), "
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
    # --- forced disconnects ------------------------------------------------------------
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
    # --- refused window ----------------------------------------------------------------
    gate = EntryGate(config.streams, SystemClock(), source, {})
    key = next(iter(source.pairs_by_key))
    fake.control("POST", "/_fake/streams/refuse", {"seconds": args.refuse})
    target = reconnects(source)
    fake.control("POST", "/_fake/streams/drop", {})
    blocked, checks, fallbacks = 0, 0, source.rest_fallbacks
    oldest = 0.0
    accepted_at = time.perf_counter() + args.refuse
    while time.perf_counter() < accepted_at:
        checks += 1
        blocked += gate(key) is not None
        quotes = await source.fetch_best_quotes(MarketKind.SPOT)
        await snapshot(source)
        now = SystemClock().now()
        oldest = max(oldest, max((now - q.timestamp).total_seconds() for q in quotes.values()))
        await asyncio.sleep(0.5)
    back = await all_live(source, 30, since=target)
    settle_began = time.perf_counter()
    while gate(key) is not None:  # noqa: ASYNC110 - the gate is a pure check, no event
        await asyncio.sleep(0.05)
    print(
        f"refused {args.refuse:g}s: {blocked}/{checks} entry checks blocked, "
        f"{source.rest_fallbacks - fallbacks} REST fallbacks, oldest quote in a snapshot "
        f"{oldest:.2f}s; live {back:.2f}s after acceptance, entries open "
        f"{time.perf_counter() - settle_began + back:.2f}s after "
        f"(settle {config.streams.settle_seconds:g}s)"
    )


if __name__ == "__main__":
    logging.basicConfig(level=logging.ERROR)  # reconnect warnings are expected here
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=300)
    parser.add_argument("--book-interval", type=float, default=0.25)
    parser.add_argument("--decisions", type=int, default=100)
    parser.add_argument("--disconnects", type=int, default=20)
    parser.add_argument("--refuse", type=float, default=60.0)
    parser.add_argument("--gaps", type=int, default=5, help="fills while user streams are down")
    parser.add_argument("--soak", type=float, default=60.0)
    parser.add_argument("--every", type=float, default=10.0)
    parser.add_argument("--order-every", type=float, default=30.0)
    parser.add_argument("--funding-every", type=float, default=300.0)
    parser.add_argument("--soak-only", action="store_true", help="skip the other figures")
    parser.add_argument("--verbose", action="store_true", help="print a sample per disconnect")
    asyncio.run(main(parser.parse_args()))
