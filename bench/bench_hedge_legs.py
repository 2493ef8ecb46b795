"""Do the two legs of a hedge really go out together? HedgeExecutor over LiveExchange (real
ccxt) against the fake Binance in its own process, every order request delayed 50 ms there.

Per hedge (open, then close so the wallets stay funded; only the open is measured):
- leg gap: |arrival of the spot order - arrival of the perp order| in the server's own
  request log (its perf_counter), target median < 2 ms;
- decision -> both acks: from the moment the executor starts sending (the hedge and its
  orders are already in the ledger) until both order responses are back, target
  < 1.2 x one order request's latency;
- one order request: a single leg's send -> ack on its own.

The same hedges are then sent with a baseline sender that sends the legs one after the
other (bench only, not product code), and the figures are printed side by side.
The ledger is SQLite in a temporary directory.

    .venv/bin/python bench/bench_hedge_legs.py [--hedges 100] [--delay-ms 50]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.clock import SystemClock
from bot.config import ExchangeConfig, RiskConfig
from bot.domain import MarketKind, Pair
from bot.domain.ledger import OrderRecord
from bot.domain.params import FeeParams
from bot.exchange.ccxt_live import LiveExchange
from bot.execution.account_setup import AccountSetup
from bot.execution.executor import HedgeExecutor
from bot.execution.legs import LegResult, LegSender
from bot.ids import UidFactory
from bot.persistence import migrate
from bot.persistence.db import create_engine, session_factory
from bot.persistence.repositories import CycleReads, Ledger
from tests.fakes import codec
from tests.fakes.fixtures import PRICES, FakeBinanceProcess, deep_book, standard_instruments

SPOT_ORDER, PERP_ORDER = "/api/v3/order", "/fapi/v1/order"
NOTIONAL = Decimal("1000")
WARM_UP = 3
HIGH = 1_000_000  # order and weight budgets: the bench measures overlap, not pacing


@dataclass
class Timings:
    """perf_counter stamps of one open, taken by the instrumented sender."""

    started: list[float] = field(default_factory=list)
    acked: list[float] = field(default_factory=list)
    legs: list[float] = field(default_factory=list)


class TimedSender(LegSender):
    """The product's LegSender, stamping when each send starts and when its ack is back."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.timings = Timings()

    async def send(self, record: OrderRecord) -> LegResult:
        began = time.perf_counter()
        self.timings.started.append(began)
        result = await super().send(record)
        done = time.perf_counter()
        self.timings.acked.append(done)
        self.timings.legs.append(done - began)
        return result


class SequentialSender(TimedSender):
    """Baseline: the second leg is sent only once the first one's response is back."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._one_at_a_time = asyncio.Lock()

    async def send(self, record: OrderRecord) -> LegResult:
        if not self.timings.started:
            self.timings.started.append(time.perf_counter())  # the decision, as above
        async with self._one_at_a_time:
            began = time.perf_counter()
            result = await LegSender.send(self, record)
            done = time.perf_counter()
        self.timings.acked.append(done)
        self.timings.legs.append(done - began)
        return result


@dataclass
class Figures:
    gaps_ms: list[float] = field(default_factory=list)
    decision_ms: list[float] = field(default_factory=list)
    leg_ms: list[float] = field(default_factory=list)


async def control(fake: FakeBinanceProcess, method: str, path: str, body: Any = None) -> Any:
    return await asyncio.to_thread(fake.control, method, path, body)


async def seed(fake: FakeBinanceProcess, delay_ms: int) -> None:
    """BTC/ETH markets with deep books and funding, 10 000 USDT a wallet, order delays."""
    clock = SystemClock()
    now = clock.now()
    instruments = standard_instruments(now)
    await control(
        fake, "POST", "/_fake/instruments", {"instruments": [codec.to_json(i) for i in instruments]}
    )
    for inst in instruments:
        mid = PRICES.get(inst.base, Decimal(100)) + (Decimal(10) if inst.is_derivative else 0)
        book = deep_book(inst, mid, now)
        await control(fake, "POST", "/_fake/book", codec.to_json(book))
    for base, price in PRICES.items():
        await control(
            fake,
            "POST",
            "/_fake/funding",
            {
                "symbol": f"{base}/USDT:USDT",
                "rate": "0.0001",
                "mark": str(price + 10),
                "index": str(price),
                "next_funding_time": (now + timedelta(hours=8)).isoformat(),
            },
        )
    for wallet in ("spot", "futures"):
        await control(
            fake,
            "POST",
            "/_fake/account/deposit",
            {"wallet": wallet, "asset": "USDT", "amount": "10000"},
        )
    limits = {"spot_weight": HIGH, "futures_weight": HIGH, "spot_orders_10s": HIGH}
    await control(fake, "POST", "/_fake/limits", {**limits, "futures_orders_1m": HIGH})
    for path in (SPOT_ORDER, PERP_ORDER):
        fault = {"kind": "delay", "path": path, "method": "POST", "delay_ms": delay_ms}
        await control(fake, "POST", "/_fake/faults", {**fault, "times": None})


async def run(
    fake: FakeBinanceProcess, ledger: Ledger, sender_type: type[TimedSender], hedges: int
) -> Figures:
    clock = SystemClock()
    config = ExchangeConfig(
        spot_api_url=fake.url,
        futures_api_url=fake.url,
        spot_orders_per_10s=HIGH,
        futures_orders_per_minute=HIGH,
        spot_weight_per_minute=HIGH,
        futures_weight_per_minute=HIGH,
    )
    live = LiveExchange(config, api_key=fake.api_key, api_secret=fake.api_secret, clock=clock)
    risk = RiskConfig()
    sender = sender_type(
        live,
        ledger,
        clock,
        final_wait_seconds=risk.order_timeout_seconds,
        recv_window_seconds=config.recv_window_ms / 1000,
    )
    setup = AccountSetup(live, config, ledger.events, clock)
    executor = HedgeExecutor(
        live,
        ledger,
        clock,
        setup,
        risk=risk,
        fees=FeeParams(),
        events=ledger.events,
        uids=UidFactory(clock, random.Random(1)),
        sender=sender,
    )
    figures = Figures()
    try:
        await setup.detect()
        pair: Pair = next(p for p in await live.pairs() if p.base == "BTC")
        spot_q = (await live.fetch_best_quotes(MarketKind.SPOT))[pair.spot.symbol]
        perp_q = (await live.fetch_best_quotes(MarketKind.PERPETUAL))[pair.perp.symbol]
        for i in range(WARM_UP + hedges):
            await control(fake, "DELETE", "/_fake/requests")
            sender.timings = Timings()
            hedge = await executor.open(
                pair, NOTIONAL, reason="bench", metrics={}, spot_quote=spot_q, perp_quote=perp_q
            )
            if hedge is None or hedge.state.value != "open":
                raise RuntimeError(f"hedge {i} did not open: {hedge}")
            timings = sender.timings
            arrivals = {
                r["params"]["newClientOrderId"]: r["at"]
                for path in (SPOT_ORDER, PERP_ORDER)
                for r in await control(fake, "GET", f"/_fake/requests?path={path}&method=POST")
            }
            spot_at = arrivals[f"cb-{hedge.uid}-so1"]
            perp_at = arrivals[f"cb-{hedge.uid}-po1"]
            closed = await executor.close(hedge, pair, reason="bench")
            if closed.state.value != "closed":
                raise RuntimeError(f"hedge {i} did not close: {closed.state}")
            if i < WARM_UP:
                continue
            figures.gaps_ms.append(abs(spot_at - perp_at) * 1000)
            figures.decision_ms.append((max(timings.acked[:2]) - timings.started[0]) * 1000)
            figures.leg_ms.extend(x * 1000 for x in timings.legs[:2])
    finally:
        await live.close()
    return figures


def quantile(values: list[float], q: float) -> float:
    """Nearest-rank quantile."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q * len(ordered) + 0.5) - 1))
    return ordered[rank]


def row(name: str, a: list[float], b: list[float]) -> str:
    def three(v: list[float]) -> str:
        return "  ".join(f"{quantile(v, q):7.2f}" for q in (0.5, 0.9, 0.99))

    return f"{name:<36}{three(a)}    {three(b)}"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hedges", type=int, default=100)
    parser.add_argument("--delay-ms", type=int, default=50)
    args = parser.parse_args()
    with FakeBinanceProcess() as fake, tempfile.TemporaryDirectory() as tmp:
        await seed(fake, args.delay_ms)
        engine = create_engine(f"sqlite+aiosqlite:///{Path(tmp) / 'ledger.db'}")
        try:
            await migrate.upgrade(engine)
            ledger = Ledger(session_factory(engine), CycleReads())
            together = await run(fake, ledger, TimedSender, args.hedges)
            apart = await run(fake, ledger, SequentialSender, args.hedges)
        finally:
            await engine.dispose()
    one_request = quantile(apart.leg_ms, 0.5)
    print(
        f"hedge legs over ccxt, fake Binance process, {args.delay_ms} ms delay per order "
        f"request, {args.hedges} hedges (open + close; the open measured), SQLite ledger"
    )
    print(f"{'':<36}{'together (HedgeExecutor)':^25}    {'one after the other':^25}")
    heads = f"{'median':>7}  {'p90':>7}  {'p99':>7}"
    print(f"{'(ms)':<36}{heads}    {heads}")
    print(row("leg arrival gap at the server", together.gaps_ms, apart.gaps_ms))
    print(row("decision -> both acks", together.decision_ms, apart.decision_ms))
    print(row("one leg: send -> ack", together.leg_ms, apart.leg_ms))
    ratio_t = quantile(together.decision_ms, 0.5) / one_request
    ratio_a = quantile(apart.decision_ms, 0.5) / one_request
    print(
        f"{'decision -> both acks / 1 request':<36}{ratio_t:7.2f}x{'':<21}{ratio_a:7.2f}x"
        f"   (one request = median single leg, sent alone: {one_request:.2f} ms)"
    )
    gap_ok = quantile(together.gaps_ms, 0.5) < 2
    print(
        f"targets: median leg gap < 2 ms: {'met' if gap_ok else 'MISSED'}; "
        f"decision -> both acks < 1.2 x one request: {'met' if ratio_t < 1.2 else 'MISSED'}"
    )


if __name__ == "__main__":
    asyncio.run(main())
