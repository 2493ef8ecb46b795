"""How far apart do a roll's two futures orders reach the exchange? HedgeExecutor over
LiveExchange (real ccxt) against the fake Binance in its own process, every order request
delayed `--delay-ms` there.

Per round: open a hedge on BTC's near quarter (spot + short at once: the **floor**, the gap
between two plain orders sent the same way), roll it into the next quarter (the buy-back
and the new short at once: the **roll gap**), close it. Gaps are the arrival times of the
two order POSTs in the server's own request log (its perf_counter). With `--sequential`
the USDⓈ-M wallet is cut to 900 USDT first, so at leverage 2 (the default) both shorts do
not fit and the roll buys back first: the figures are then that gap (one round trip) and
the `naked_ms` the executor records. The ledger is SQLite in a temporary directory.

    .venv/bin/python bench/bench_roll.py [--rolls 30] [--delay-ms 50] [--sequential]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_hedge_legs import HIGH, PERP_ORDER, SPOT_ORDER, control, quantile
from bot.clock import SystemClock
from bot.config import ExchangeConfig, RiskConfig
from bot.domain import MarketKind, OrderPurpose, Pair
from bot.domain.instruments import dated_pairs
from bot.domain.params import FeeParams
from bot.exchange.ccxt_live import LiveExchange
from bot.execution.account_setup import AccountSetup
from bot.execution.executor import HedgeExecutor
from bot.execution.legs import LegSender
from bot.ids import UidFactory
from bot.persistence import migrate
from bot.persistence.db import create_engine, session_factory
from bot.persistence.repositories import CycleReads, Ledger
from tests import kit
from tests.fakes import codec
from tests.fakes.fixtures import PRICES, FakeBinanceProcess, deep_book, standard_instruments

NOTIONAL = Decimal("1000")
WARM_UP = 2


@dataclass
class Figures:
    open_gap_ms: list[float] = field(default_factory=list)
    roll_gap_ms: list[float] = field(default_factory=list)
    send_gap_ms: list[float] = field(default_factory=list)  # the bot's sends (leg_gap_ms)
    naked_ms: list[float] = field(default_factory=list)
    sequential: int = 0


async def seed(fake: FakeBinanceProcess, delay_ms: int) -> None:
    """BTC spot, perpetual and two quarterlies with deep books, funded wallets, delays."""
    now = SystemClock().now()
    near = now.replace(hour=8, minute=0, second=0, microsecond=0) + timedelta(days=90)
    instruments = [
        *standard_instruments(now),
        kit.dated("BTC", expiry=near + timedelta(days=91), contract_type="NEXT_QUARTER"),
    ]
    body = {"instruments": [codec.to_json(i) for i in instruments]}
    await control(fake, "POST", "/_fake/instruments", body)
    for inst in instruments:
        mid = PRICES.get(inst.base, Decimal(100)) + (Decimal(10) if inst.is_derivative else 0)
        await control(fake, "POST", "/_fake/book", codec.to_json(deep_book(inst, mid, now)))
    for base, price in PRICES.items():
        funding = {
            "symbol": f"{base}/USDT:USDT",
            "rate": "0.0001",
            "mark": str(price + 10),
            "index": str(price),
            "next_funding_time": (now + timedelta(hours=8)).isoformat(),
        }
        await control(fake, "POST", "/_fake/funding", funding)
    for wallet in ("spot", "futures"):
        deposit = {"wallet": wallet, "asset": "USDT", "amount": "100000"}
        await control(fake, "POST", "/_fake/account/deposit", deposit)
    limits = {"spot_weight": HIGH, "futures_weight": HIGH, "spot_orders_10s": HIGH}
    await control(fake, "POST", "/_fake/limits", {**limits, "futures_orders_1m": HIGH})
    for path in (SPOT_ORDER, PERP_ORDER):
        fault = {"kind": "delay", "path": path, "method": "POST", "delay_ms": delay_ms}
        await control(fake, "POST", "/_fake/faults", {**fault, "times": None})


def executor_over(live: LiveExchange, ledger: Ledger, config: ExchangeConfig) -> HedgeExecutor:
    clock = SystemClock()
    risk = RiskConfig()
    sender = LegSender(
        live,
        ledger,
        clock,
        final_wait_seconds=risk.order_timeout_seconds,
        recv_window_seconds=config.recv_window_ms / 1000,
    )
    setup = AccountSetup(live, config, ledger.events, clock)
    return HedgeExecutor(
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


async def arrivals(fake: FakeBinanceProcess) -> dict[str, float]:
    """Client order id -> arrival (server perf_counter seconds) of every order POST."""
    return {
        r["params"]["newClientOrderId"]: r["at"]
        for path in (SPOT_ORDER, PERP_ORDER)
        for r in await control(fake, "GET", f"/_fake/requests?path={path}&method=POST")
    }


async def run(fake: FakeBinanceProcess, ledger: Ledger, rolls: int, sequential: bool) -> Figures:
    config = ExchangeConfig(
        spot_api_url=fake.url,
        futures_api_url=fake.url,
        spot_orders_per_10s=HIGH,
        futures_orders_per_minute=HIGH,
        spot_weight_per_minute=HIGH,
        futures_weight_per_minute=HIGH,
    )
    live = LiveExchange(config, api_key=fake.api_key, api_secret=fake.api_secret)
    executor = executor_over(live, ledger, config)
    figures = Figures()
    try:
        await executor._ctx.setup.detect()
        if sequential:  # 900 USDT carries one 1000 USDT short at 2x, not two
            futures = await live.fetch_futures_account()
            rest = futures.available_balance - Decimal(900)
            await live.transfer("USDT", rest, from_wallet="futures", to_wallet="spot")
        near, nxt = [p for p in dated_pairs(await live.load_instruments()) if p.base == "BTC"]
        for i in range(WARM_UP + rolls):
            await one_round(fake, live, ledger, executor, near, nxt, figures, i >= WARM_UP)
    finally:
        await live.close()
    return figures


async def one_round(
    fake: FakeBinanceProcess,
    live: LiveExchange,
    ledger: Ledger,
    executor: HedgeExecutor,
    near: Pair,
    nxt: Pair,
    figures: Figures,
    measured: bool,
) -> None:
    spot = (await live.fetch_best_quotes(MarketKind.SPOT))[near.spot.symbol]
    dated = await live.fetch_best_quotes(MarketKind.DATED_FUTURE)
    near_q, next_q = dated[near.perp.symbol], dated[nxt.perp.symbol]
    await control(fake, "DELETE", "/_fake/requests")
    hedge = await executor.open(
        near,
        NOTIONAL,
        reason="bench",
        metrics={},
        spot_quote=spot,
        perp_quote=near_q,
    )
    if hedge is None or hedge.state.value != "open":
        raise RuntimeError(f"the hedge did not open: {hedge}")
    rolled = await executor.roll(
        hedge,
        near,
        nxt,
        reason="bench",
        spot_quote=spot,
        held_quote=near_q,
        into_quote=next_q,
    )
    if rolled.perp_symbol != nxt.perp.symbol:
        raise RuntimeError(f"the hedge did not roll: {rolled}")
    at = await arrivals(fake)
    orders = {o.purpose: o.client_order_id for o in await ledger.orders.for_hedge(hedge.id)}
    event = (await ledger.events.recent(kind="hedge.rolled", limit=1))[0]
    closed = await executor.close(rolled, nxt, reason="bench")
    if closed.state.value != "closed":
        raise RuntimeError(f"the hedge did not close: {closed.state}")
    if not measured:
        return
    spot_at, perp_at = at[f"cb-{hedge.uid}-so1"], at[f"cb-{hedge.uid}-po1"]
    buy_back_at = at[orders[OrderPurpose.ROLL_CLOSE]]
    sell_at = at[orders[OrderPurpose.ROLL_OPEN]]
    figures.open_gap_ms.append(abs(spot_at - perp_at) * 1000)
    figures.roll_gap_ms.append(abs(buy_back_at - sell_at) * 1000)
    figures.send_gap_ms.append(float(str(event.data["leg_gap_ms"])))
    if event.data.get("sequential"):
        figures.sequential += 1
        figures.naked_ms.append(float(str(event.data["naked_ms"])))


def three(values: list[float]) -> str:
    return "  ".join(f"{quantile(values, q):8.3f}" for q in (0.5, 0.9, 0.99))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rolls", type=int, default=30)
    parser.add_argument("--delay-ms", type=int, default=50)
    parser.add_argument("--sequential", action="store_true")
    args = parser.parse_args()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    with FakeBinanceProcess() as fake, tempfile.TemporaryDirectory() as tmp:
        await seed(fake, args.delay_ms)
        engine = create_engine(f"sqlite+aiosqlite:///{Path(tmp) / 'ledger.db'}")
        try:
            await migrate.upgrade(engine)
            ledger = Ledger(session_factory(engine), CycleReads())
            figures = await run(fake, ledger, args.rolls, args.sequential)
        finally:
            await engine.dispose()
    floor = quantile(figures.open_gap_ms, 0.5)
    print(
        f"roll over ccxt, fake Binance process, {args.delay_ms} ms delay per order request, "
        f"{args.rolls} rolls (open + roll + close; open and roll measured), SQLite ledger, "
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    print(f"{'(ms)':<44}{'median':>8}  {'p90':>8}  {'p99':>8}")
    print(f"{'floor: open legs (spot + short) arrival gap':<44}{three(figures.open_gap_ms)}")
    print(f"{'roll: buy-back / new short arrival gap':<44}{three(figures.roll_gap_ms)}")
    print(f"{'roll: the two sends in the bot (leg_gap_ms)':<44}{three(figures.send_gap_ms)}")
    if figures.naked_ms:
        print(f"{'roll: spot unhedged (naked_ms recorded)':<44}{three(figures.naked_ms)}")
    ratio = quantile(figures.roll_gap_ms, 0.5) / floor if floor > 0 else float("inf")
    p99 = quantile(figures.roll_gap_ms, 0.99) / max(quantile(figures.open_gap_ms, 0.99), 1e-9)
    print(
        f"roll gap / floor: median {ratio:.2f}x, p99 {p99:.2f}x; sequential rolls "
        f"{figures.sequential}/{args.rolls}; bench CPU {time.process_time() - cpu0:.1f} s, "
        f"wall {time.perf_counter() - wall0:.1f} s"
    )


if __name__ == "__main__":
    asyncio.run(main())
