"""Pacing on the injected clock: weight window, order priority, Retry-After, bans."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from bot.clock import SimulatedClock
from bot.config import ExchangeConfig
from bot.errors import BannedError, RateLimitedError
from bot.exchange.throttle import Budget, Pacer, VenueGate, WeightThrottler
from bot.exchange.weights import Venue
from tests import kit


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock(kit.T0)


def gate(clock: SimulatedClock, weight: int = 100, orders: int = 5) -> VenueGate:
    return VenueGate(Venue.FUTURES, Budget(weight, orders, 10.0), Decimal("0.8"), clock)


async def test_weight_throttler_within_budget_does_not_wait(clock: SimulatedClock) -> None:
    throttler = WeightThrottler(100, 60.0, clock)

    await throttler.acquire(60)
    await throttler.acquire(40)

    assert clock.monotonic() == 0 and throttler.used() == 100


async def test_weight_throttler_over_budget_waits_for_the_oldest_entries(
    clock: SimulatedClock,
) -> None:
    throttler = WeightThrottler(100, 60.0, clock)
    await throttler.acquire(60)
    clock.advance(timedelta(seconds=10))
    await throttler.acquire(40)

    await throttler.acquire(30)  # needs the 60 recorded at t=0 to leave the window

    assert clock.monotonic() == 60 and throttler.used() == 70


async def test_weight_heavier_than_the_budget_is_clamped(clock: SimulatedClock) -> None:
    throttler = WeightThrottler(10, 60.0, clock)

    await throttler.acquire(50)

    assert throttler.used() == 10


async def test_gate_data_share_is_budget_times_headroom(clock: SimulatedClock) -> None:
    g = gate(clock)

    for _ in range(8):
        await g.before_data(10)
    await g.before_data(10)

    assert clock.monotonic() == 60  # 80 of 100 is the data share


async def test_gate_orders_never_wait_for_weight(clock: SimulatedClock) -> None:
    g = gate(clock)
    g.observe_used_weight(500)  # the exchange says the window is far over our share

    await g.before_order(1, counts_as_order=True)

    assert clock.monotonic() == 0


async def test_gate_orders_wait_for_the_order_count(clock: SimulatedClock) -> None:
    g = gate(clock, orders=2)

    for _ in range(3):
        await g.before_order(0, counts_as_order=True)

    assert clock.monotonic() == 10


async def test_gate_exchange_count_above_ours_slows_data_down(clock: SimulatedClock) -> None:
    g = gate(clock)
    g.observe_used_weight(75)

    await g.before_data(10)

    assert clock.monotonic() == 60


async def test_gate_retry_after_delays_data_and_refuses_orders(clock: SimulatedClock) -> None:
    g = gate(clock)
    g.block(2.5)

    with pytest.raises(RateLimitedError) as refused:
        await g.before_order(1, counts_as_order=True)
    await g.before_data(1)

    assert refused.value.retry_after == 2.5
    assert clock.monotonic() == 2.5


async def test_gate_ban_refuses_everything_until_it_ends(clock: SimulatedClock) -> None:
    g = gate(clock)
    g.ban(120)

    with pytest.raises(BannedError) as banned:
        await g.before_data(1)
    with pytest.raises(BannedError):
        await g.before_order(1, counts_as_order=True)
    clock.advance(timedelta(seconds=120))
    await g.before_data(1)

    assert banned.value.until == kit.T0 + timedelta(seconds=120)


async def test_pacer_routes_by_path_and_reports_bans(clock: SimulatedClock) -> None:
    pacer = Pacer.from_config(ExchangeConfig(), clock)

    pacer.after("/fapi/v1/premiumIndex", 418, used_weight=None, order_count=None, retry_after=60)
    await pacer.before("public", "GET", "ticker/bookTicker", {})

    with pytest.raises(BannedError):
        await pacer.before("fapiPublic", "GET", "premiumIndex", {})
    notices = pacer.take_ban_notices()
    assert [(n.venue, n.retry_after) for n in notices] == [(Venue.FUTURES, 60)]
    assert pacer.take_ban_notices() == []
