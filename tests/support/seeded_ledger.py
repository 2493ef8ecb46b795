"""A ledger with what the dashboard shows: open and closed hedges traded by the real executor
on the paper exchange, funding payments, balance snapshots, observations and an alert.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from bot.clock import SimulatedClock
from bot.domain import Event, FundingPayment, Hedge, MarketKind, Severity
from bot.domain.ledger import BalanceSnapshot, MarketObservation
from bot.persistence.repositories import Ledger
from tests.kit import T0
from tests.support.market_source import StaticMarketSource
from tests.support.paper_stack import build_stack

D = Decimal


@dataclass
class Seeded:
    clock: SimulatedClock
    open: list[Hedge]
    closed: list[Hedge]


async def seed_ledger(ledger: Ledger) -> Seeded:
    """Open BTC and ETH hedges, close ETH a day later, with funding and snapshots between."""
    clock = SimulatedClock(T0)
    source = StaticMarketSource(clock, ["BTC", "ETH"])
    stack = await build_stack(ledger, clock=clock, source=source)
    pairs = {p.base: p for p in await source.pairs()}
    opened: dict[str, Hedge] = {}
    for base in ("BTC", "ETH"):
        spot_q = (await source.fetch_best_quotes(MarketKind.SPOT))[pairs[base].spot.symbol]
        perp_q = (await source.fetch_best_quotes(MarketKind.PERPETUAL))[pairs[base].perp.symbol]
        hedge = await stack.executor.open(
            pairs[base],
            D("1000"),
            reason="seed",
            metrics={"apr": D("0.2")},
            spot_quote=spot_q,
            perp_quote=perp_q,
        )
        assert hedge is not None
        opened[base] = hedge
    venue = stack.exchange.venue
    equity = D("20000")
    for i in range(1, 4):
        clock.set(T0 + timedelta(hours=8 * i))
        payments = [
            FundingPayment(pairs[b].perp.symbol, clock.now(), D(amount), rate=D("0.0001"))
            for b, amount in (("BTC", "0.10"), ("ETH", "0.05"))
        ]
        owner = {pairs[b].perp.symbol: opened[b].id for b in opened}
        await ledger.funding.record_owned(venue, [(p, owner.get(p.symbol)) for p in payments])
        equity += D("0.15")
        await ledger.snapshots.record(
            [BalanceSnapshot(clock.now(), "total", "USDT", equity, D(0), equity)], []
        )
        await ledger.observations.upsert(
            [
                MarketObservation(
                    pairs[b].perp.symbol,
                    clock.now(),
                    funding_rate=D("0.0001") * (2 if b == "BTC" else 1),
                    interval_hours=8,
                    mark_price=source.prices[b],
                    spot_bid=source.prices[b],
                    spot_ask=source.prices[b] + 1,
                    perp_bid=source.prices[b] + 2,
                    perp_ask=source.prices[b] + 3,
                )
                for b in ("BTC", "ETH")
            ]
        )
    closed = await stack.executor.close(opened["ETH"], pairs["ETH"], reason="exit")
    await ledger.events.emit(
        Event("reconcile.drift", "seeded drift alert", clock.now(), Severity.ALERT, {})
    )
    btc = await ledger.hedges.get(opened["BTC"].id)
    assert btc is not None
    return Seeded(clock, [btc], [closed])
