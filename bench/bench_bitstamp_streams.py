"""Bitstamp streams against the fake Bitstamp (in process, real ccxt / ccxt.pro, loopback).

Per run of `--orders` market buys of BTC/USD:
- floor: an order whose REST answer comes back (POST + `order_status/` read-back);
- lost POST answer, user stream on: the outcome from `private-my_orders`/`my_trades`;
- lost POST answer, REST only: the look-ups by client order id (`BitstampSpot`);
and `--reconnects` times `bts:request_reconnect`: seconds until the book stream is live
again with a fresh book. Times are wall-clock from sending to knowing the order's fills.

    .venv/bin/python bench/bench_bitstamp_streams.py [--orders 20] [--reconnects 10]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from decimal import Decimal

from bot.config import config_from_dict
from bot.domain import OrderRequest, OrderType, Side
from bot.streams.cross import bitstamp_source
from tests.fakes.bitstamp_fixtures import bitstamp_for, bitstamp_instruments, seed_bitstamp
from tests.fakes.bitstamp_server import DEFAULT_API_KEY, DEFAULT_API_SECRET, FakeBitstamp

BUY = "/api/v2/buy/market/btcusd/"


def _ms(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return f"p50 {statistics.median(values) * 1000:7.1f} ms, p95 {p95 * 1000:7.1f} ms"


async def _until(condition: object, limit: float = 10.0) -> None:
    started = time.perf_counter()
    while not condition():  # type: ignore[operator]
        if time.perf_counter() - started > limit:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.002)


async def main(orders: int, reconnects: int) -> None:
    fake = FakeBitstamp(bitstamp_instruments())
    await fake.start()
    seed_bitstamp(fake)
    for asset in ("USD",):
        fake.account.deposit("spot", asset, Decimal(10) ** 9)
    config = config_from_dict(
        {
            "venues": {"spot": "bitstamp", "bitstamp_api_url": fake.url,
                       "bitstamp_ws_url": fake.ws_url},
            "universe": {"symbols": ["BTC/USD"]},
        }
    )  # fmt: skip
    source = bitstamp_source(
        bitstamp_for(fake), config, fake.clock, api_key=DEFAULT_API_KEY,
        api_secret=DEFAULT_API_SECRET,
    )  # fmt: skip
    rest_only = bitstamp_for(fake)
    n = 0
    try:
        await source.start()
        await _until(lambda: source.user is not None and source.user.live())
        await _until(lambda: source.quote_problem("BTC/USD") is None)

        def request() -> OrderRequest:
            nonlocal n
            n += 1
            return OrderRequest("BTC/USD", Side.BUY, OrderType.MARKET, Decimal("0.01"), f"b-{n}")

        floor, streamed, looked_up = [], [], []
        for _ in range(orders):
            started = time.perf_counter()
            await source.create_order(request())
            floor.append(time.perf_counter() - started)
            fake.add_fault("drop", BUY, method="POST")
            started = time.perf_counter()
            await source.create_order(request())
            streamed.append(time.perf_counter() - started)
            fake.add_fault("drop", BUY, method="POST")
            started = time.perf_counter()
            await rest_only.create_order(request())
            looked_up.append(time.perf_counter() - started)
        assert source.stream_fills == orders, source.stream_fills

        back = []
        books = source.books
        assert books is not None and books.supervisor is not None
        health = books.supervisor.health
        for i in range(reconnects):
            await fake.streams.request_reconnect()
            started = time.perf_counter()
            await _until(lambda i=i: health.reconnects == i + 1 and health.state.value == "live")
            await _until(lambda: source.quote_problem("BTC/USD") is None)
            back.append(time.perf_counter() - started)

        f = statistics.median(floor)
        print(f"orders per case: {orders}")
        print(f"floor, REST answer received:        {_ms(floor)}")
        print(f"lost POST, user stream:             {_ms(streamed)}  "
              f"({statistics.median(streamed) / f:.2f}x the floor)")  # fmt: skip
        print(f"lost POST, REST look-ups:           {_ms(looked_up)}  "
              f"({statistics.median(looked_up) / f:.2f}x the floor)")  # fmt: skip
        if back:
            print(f"bts:request_reconnect → live, fresh book ({reconnects}x): {_ms(back)}")
    finally:
        await source.close()
        await rest_only.close()
        await fake.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=20)
    parser.add_argument("--reconnects", type=int, default=10)
    args = parser.parse_args()
    asyncio.run(main(args.orders, args.reconnects))
