"""VenueRouter: routing per leg, pairs across venues, USD in USDT terms, arrival alignment.

Two paper accounts over in-memory market data stand in for the venues; each answers an
order after its own (simulated) round trip.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from bot.clock import SimulatedClock
from bot.domain import MarketKind, Order, OrderRequest, OrderType, PositionMode, Quote, Side
from bot.errors import FatalExchangeError
from bot.exchange.venues import VenueRouter, arrival_delay
from tests import kit
from tests.support.market_source import StaticMarketSource
from tests.support.paper_stack import paper_exchange

D = Decimal


class Slow:
    """A venue whose order requests take `round_trip` seconds of the simulated clock."""

    def __init__(self, inner: Any, clock: SimulatedClock, round_trip: float) -> None:
        self._inner, self._clock, self._round_trip = inner, clock, round_trip

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def create_order(self, request: OrderRequest) -> Order:
        self._clock.advance(timedelta(seconds=self._round_trip))
        order: Order = await self._inner.create_order(request)
        return order


async def _router(*, align: bool, spot_rt: float = 0.08, perp_rt: float = 0.01) -> VenueRouter:
    clock = SimulatedClock(kit.T0)
    source = StaticMarketSource(clock, ["BTC"])
    spot = await paper_exchange(clock, source, mode=PositionMode.ONE_WAY)
    futures = await paper_exchange(clock, source, mode=PositionMode.ONE_WAY)
    return VenueRouter(
        Slow(spot, clock, spot_rt), Slow(futures, clock, perp_rt), venue="a+b",
        align_arrivals=align, clock=clock,
    )  # fmt: skip


def _order(symbol: str, cid: str) -> OrderRequest:
    side = Side.BUY if ":" not in symbol else Side.SELL
    return OrderRequest(symbol, side, OrderType.MARKET, D("0.01"), cid)


async def test_the_faster_venues_leg_waits_out_the_measured_latency_difference() -> None:
    router = await _router(align=True)
    assert arrival_delay(router, "BTC/USDT:USDT") == 0  # nothing measured yet

    await router.create_order(_order("BTC/USDT", "s1"))
    await router.create_order(_order("BTC/USDT:USDT", "p1"))

    # one-way: spot 40 ms, perp 5 ms: the perp leg waits 35 ms, the spot leg not at all
    assert arrival_delay(router, "BTC/USDT:USDT") == pytest.approx(0.035)
    assert arrival_delay(router, "BTC/USDT") == 0


async def test_no_alignment_when_off_or_on_one_venue() -> None:
    router = await _router(align=False)
    await router.create_order(_order("BTC/USDT", "s1"))
    await router.create_order(_order("BTC/USDT:USDT", "p1"))
    assert arrival_delay(router, "BTC/USDT:USDT") == 0
    assert arrival_delay(object(), "BTC/USDT:USDT") == 0


async def test_the_wait_is_capped() -> None:
    router = await _router(align=True, spot_rt=5.0)
    await router.create_order(_order("BTC/USDT", "s1"))
    await router.create_order(_order("BTC/USDT:USDT", "p1"))
    # a round trip counts at most 500 ms (a lost response's lookups are no latency)
    assert arrival_delay(router, "BTC/USDT:USDT") == pytest.approx(0.25 - 0.005)


async def test_orders_and_balances_go_to_the_venue_of_their_leg() -> None:
    router = await _router(align=False)
    await router.create_order(_order("BTC/USDT", "s1"))
    await router.create_order(_order("BTC/USDT:USDT", "p1"))

    spot_sim = router.spot_venue.simulator  # type: ignore[attr-defined]
    futures_sim = router.futures_venue.simulator  # type: ignore[attr-defined]
    assert spot_sim.spot_balances()["BTC"].total > 0 and spot_sim.positions() == []
    assert "BTC" not in futures_sim.spot_balances() and len(futures_sim.positions()) == 1
    assert (await router.fetch_order("BTC/USDT", "s1")).filled == D("0.01")
    with pytest.raises(FatalExchangeError, match="never moves money between exchanges"):
        await router.transfer("USDT", D(1), from_wallet="spot", to_wallet="futures")


async def test_usd_quotes_are_divided_by_the_usdt_usd_mid() -> None:
    router = await _router(align=False)
    await router.load_instruments()
    usd = replace(kit.spot("BTC", "USD"), exchange_symbol="btcusd")
    rate_inst = replace(kit.spot("USDT", "USD"), exchange_symbol="usdtusd")
    router._spot_symbols.update({"BTC/USD": usd, "USDT/USD": rate_inst})
    now = kit.T0
    quotes = {
        "BTC/USD": Quote("BTC/USD", D("49950"), D("49951"), D(1), D(1), now),
        "USDT/USD": Quote("USDT/USD", D("0.9989"), D("0.9991"), D(1), D(1), now),
    }

    async def fake_quotes(kind: MarketKind) -> dict[str, Quote]:
        return quotes

    router._spot.fetch_best_quotes = fake_quotes  # type: ignore[method-assign]
    seen = await router.fetch_best_quotes(MarketKind.SPOT)

    assert router.usd_per_usdt == D("0.999")
    assert seen["BTC/USD"].ask == D("49951") / D("0.999")
    assert seen["USDT/USD"].ask == D("0.9991")  # the rate itself is not converted
