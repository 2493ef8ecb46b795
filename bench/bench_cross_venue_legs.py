"""Leg arrival gap across two venues: spot on the fake Bitstamp, short on the fake Binance.

HedgeExecutor over a VenueRouter (BitstampSpot + LiveExchange, real ccxt) sends both legs
of each hedge with one `asyncio.gather`; each venue sits behind a TCP proxy that delays
every byte by that venue's one-way latency in both directions, so a request reaches the
server `latency` after it left the bot. Per hedge (open, then close; only the open is
measured), with `[venues] align_arrivals` off and on:
- arrival gap: Bitstamp arrival − Binance arrival of the two opening orders, in the
  servers' request logs (one process, one perf_counter); the floor is the injected
  latency difference without alignment, so `gap − ΔL` is what the bot itself adds; with
  alignment the faster venue's leg waits out the measured difference and the gap is ~0;
- both acks: from the start of sending until both responses are back, against the floor
  of the slower venue's round trip (2 × its latency).
The ledger is SQLite in a temporary directory.

    .venv/bin/python bench/bench_cross_venue_legs.py [--hedges 30] [--latency 0:0,5:40,40:5]

`--latency` lists `binance_ms:bitstamp_ms` pairs.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.clock import SystemClock
from bot.config import ExchangeConfig, RiskConfig, VenuesConfig
from bot.domain import MarketKind
from bot.domain.ledger import OrderRecord
from bot.domain.params import FeeParams
from bot.exchange.bitstamp_live import BitstampSpot
from bot.exchange.ccxt_live import LiveExchange
from bot.exchange.venues import VenueRouter
from bot.execution.account_setup import AccountSetup
from bot.execution.executor import HedgeExecutor
from bot.execution.legs import LegResult, LegSender
from bot.ids import UidFactory
from bot.persistence import migrate
from bot.persistence.db import create_engine, session_factory
from bot.persistence.repositories import CycleReads, Ledger
from tests.fakes.binance_server import DEFAULT_API_KEY, DEFAULT_API_SECRET, FakeBinance, Limits
from tests.fakes.bitstamp_fixtures import bitstamp_instruments, seed_bitstamp
from tests.fakes.bitstamp_server import DEFAULT_API_KEY as BS_KEY
from tests.fakes.bitstamp_server import DEFAULT_API_SECRET as BS_SECRET
from tests.fakes.bitstamp_server import FakeBitstamp
from tests.fakes.fixtures import seed, standard_instruments

NOTIONAL = Decimal("1000")
WARM_UP = 3
HIGH = 1_000_000
PERP_ORDER = "/fapi/v1/order"
SPOT_ORDER = "/api/v2/buy/market/btcusdt/"


class DelayProxy:
    """TCP proxy delivering every chunk `delay` seconds after it arrived, both directions."""

    def __init__(self, target_port: int, delay: float) -> None:
        self._target_port = target_port
        self._delay = delay
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._target_port)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        try:
            while chunk := await reader.read(65536):
                if self._delay > 0:
                    loop.call_later(self._delay, writer.write, chunk)
                else:
                    writer.write(chunk)
        except ConnectionError:
            pass
        finally:
            loop.call_later(self._delay, writer.close)


class TimedSender(LegSender):
    """The product's LegSender, stamping the start of sending and each ack."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.started: list[float] = []
        self.acked: list[float] = []

    async def send(self, record: OrderRecord) -> LegResult:
        self.started.append(time.perf_counter())
        result = await super().send(record)
        self.acked.append(time.perf_counter())
        return result


async def measure(
    binance_ms: float, bitstamp_ms: float, hedges: int, ledger: Ledger, *, align: bool
) -> dict[str, float]:
    clock = SystemClock()
    binance = FakeBinance(
        standard_instruments(clock.now()),
        limits=Limits(spot_weight=HIGH, futures_weight=HIGH, spot_orders_10s=HIGH,
                      futures_orders_1m=HIGH),
    )  # fmt: skip
    bitstamp = FakeBitstamp(bitstamp_instruments(), requests_per_10_min=HIGH)
    await binance.start()
    await bitstamp.start()
    seed(binance)
    seed_bitstamp(bitstamp)
    binance_proxy = DelayProxy(int(binance.url.rsplit(":", 1)[1]), binance_ms / 1000)
    bitstamp_proxy = DelayProxy(int(bitstamp.url.rsplit(":", 1)[1]), bitstamp_ms / 1000)
    binance_url, bitstamp_url = await binance_proxy.start(), await bitstamp_proxy.start()
    config = ExchangeConfig(
        spot_api_url=binance_url, futures_api_url=binance_url,
        spot_orders_per_10s=HIGH, futures_orders_per_minute=HIGH,
        spot_weight_per_minute=HIGH, futures_weight_per_minute=HIGH,
    )  # fmt: skip
    venues = VenuesConfig.model_validate(
        {"spot": "bitstamp", "bitstamp_api_url": bitstamp_url,
         "bitstamp_requests_per_10_min": HIGH}
    )  # fmt: skip
    router = VenueRouter(
        BitstampSpot(venues, config, api_key=BS_KEY, api_secret=BS_SECRET, clock=clock),
        LiveExchange(config, api_key=DEFAULT_API_KEY, api_secret=DEFAULT_API_SECRET, clock=clock),
        venue="bitstamp+binance",
        align_arrivals=align,
        clock=clock,
    )
    risk = RiskConfig()
    sender = TimedSender(router, ledger, clock, final_wait_seconds=risk.order_timeout_seconds)
    setup = AccountSetup(router, config, ledger.events, clock)
    executor = HedgeExecutor(
        router, ledger, clock, setup, risk=risk, fees=FeeParams(), events=ledger.events,
        uids=UidFactory(clock, random.Random(1)), sender=sender,
    )  # fmt: skip
    gaps: list[float] = []
    acks: list[float] = []
    try:
        await setup.detect()
        pair = next(p for p in await router.pairs() if p.key == "BTC/USDT")
        spot_q = (await router.fetch_best_quotes(MarketKind.SPOT))[pair.spot.symbol]
        perp_q = (await router.fetch_best_quotes(MarketKind.PERPETUAL))[pair.perp.symbol]
        for i in range(WARM_UP + hedges):
            binance.clear_requests()
            bitstamp.clear_requests()
            sender.started, sender.acked = [], []
            hedge = await executor.open(
                pair, NOTIONAL, reason="bench", metrics={}, spot_quote=spot_q, perp_quote=perp_q
            )
            if hedge is None or hedge.state.value != "open":
                raise RuntimeError(f"hedge {i} did not open: {hedge}")
            spot_at = bitstamp.requests_to(SPOT_ORDER, "POST")[0].at
            perp_at = binance.requests_to(PERP_ORDER, "POST")[0].at
            both_acked = max(sender.acked[:2]) - min(sender.started[:2])
            closed = await executor.close(hedge, pair, reason="bench")
            if closed.state.value != "closed":
                raise RuntimeError(f"hedge {i} did not close: {closed.state}")
            if i >= WARM_UP:
                gaps.append((spot_at - perp_at) * 1000)
                acks.append(both_acked * 1000)
    finally:
        await router.close()
        await binance_proxy.stop()
        await bitstamp_proxy.stop()
        await binance.stop()
        await bitstamp.stop()
    gaps.sort()
    acks.sort()
    return {
        "gap_median": statistics.median(gaps),
        "gap_p95": gaps[int(len(gaps) * 0.95) - 1],
        "acks_median": statistics.median(acks),
    }


async def main(hedges: int, latencies: list[tuple[float, float]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_engine(f"sqlite+aiosqlite:///{tmp}/bench.db")
        await migrate.upgrade(engine)
        ledger = Ledger(session_factory(engine), CycleReads())
        print(
            f"{hedges} hedges per row (after {WARM_UP} warm-up), spot BTC/USDT on the fake "
            "Bitstamp, short BTC/USDT:USDT on the fake Binance; latency one-way, each way"
        )
        print(
            f"{'align':>5} {'binance ms':>10} {'bitstamp ms':>11} {'ΔL ms':>6} | "
            f"{'gap median':>10} {'gap p95':>8} {'gap−ΔL':>7} | {'both acks':>9} "
            f"{'floor 2×max':>11} {'ratio':>6}"
        )
        for (binance_ms, bitstamp_ms), align in itertools.product(latencies, (False, True)):
            f = await measure(binance_ms, bitstamp_ms, hedges, ledger, align=align)
            delta = bitstamp_ms - binance_ms
            floor = 2 * max(binance_ms, bitstamp_ms)
            ratio = f"{f['acks_median'] / floor:.2f}" if floor else "-"
            print(f"{'on' if align else 'off':>5} {binance_ms:>10.0f} {bitstamp_ms:>11.0f} "
                  f"{delta:>6.0f} | {f['gap_median']:>10.2f} {f['gap_p95']:>8.2f} "
                  f"{f['gap_median'] - delta:>7.2f} | {f['acks_median']:>9.2f} "
                  f"{floor:>11.0f} {ratio:>6}")  # fmt: skip
        await engine.dispose()


def _latencies(text: str) -> list[tuple[float, float]]:
    out = []
    for part in text.split(","):
        a, _, b = part.partition(":")
        out.append((float(a), float(b)))
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hedges", type=int, default=30)
    parser.add_argument("--latency", type=_latencies, default=_latencies("0:0,5:40,40:5,20:80"))
    args = parser.parse_args()
    asyncio.run(main(args.hedges, args.latency))
