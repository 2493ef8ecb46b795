"""The USDT/USD rate at a fill's time: nearest observation, the book read then, pinned."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from bot.clock import SimulatedClock
from bot.exchange.usd_rate import MATCH, RateHistory, UsdRates
from tests import kit

D = Decimal
S = timedelta(seconds=1)


def test_nearest_observation_wins_and_tolerance_bounds_it() -> None:
    h = RateHistory()
    h.observe(kit.T0, D("0.999"))
    h.observe(kit.T0 + 10 * S, D("1.001"))
    assert h.at(kit.T0 + 4 * S, MATCH) == D("0.999")
    assert h.at(kit.T0 + 6 * S, MATCH) == D("1.001")
    assert h.at(kit.T0 + 16 * S, MATCH) is None
    assert h.nearest(kit.T0 + 16 * S) == (D("1.001"), 6 * S)


def test_one_observation_a_second_and_the_oldest_half_dropped() -> None:
    h = RateHistory(max_observations=4)
    h.observe(kit.T0, D("1"))
    h.observe(kit.T0 + S / 2, D("2"))  # same second: replaces
    assert len(h) == 1 and h.at(kit.T0, MATCH) == D("2")
    h.observe(kit.T0 - S, D("9"))  # older than the last: ignored
    for i in range(1, 5):
        h.observe(kit.T0 + i * S, D(i))
    assert len(h) == 3  # 5 > 4: the oldest two dropped
    assert h.nearest(kit.T0) == (D("2"), 2 * S)


async def test_a_fill_just_made_without_a_near_quote_reads_the_book_then() -> None:
    clock = SimulatedClock(kit.T0)
    reads: list[Decimal] = []
    book = [D("1.002")]

    async def read_now() -> Decimal | None:
        reads.append(book[0])
        return book[0]

    rates = UsdRates(clock.now, read_now)
    rates.observe(kit.T0, D("0.999"))
    clock.advance(timedelta(seconds=30))
    assert await rates.at(clock.now(), ("BTC/USD", "t1")) == D("1.002")
    assert reads == [D("1.002")]
    book[0] = D("1.100")
    # pinned: the same fill read again converts at the same rate, without a request
    assert await rates.at(clock.now(), ("BTC/USD", "t1")) == D("1.002")
    # an old fill (the bot was down) takes the nearest rate seen, with no request
    assert await rates.at(kit.T0 - timedelta(hours=1)) == D("0.999")
    assert reads == [D("1.002")]
    assert rates.latest == D("1.002")


async def test_an_old_fill_reads_the_venues_history_before_falling_back_to_the_nearest() -> None:
    clock = SimulatedClock(kit.T0)
    minutes: dict[object, Decimal | None] = {kit.T0 - timedelta(hours=2): D("1.004")}

    async def read_now() -> Decimal | None:
        return D("0.999")

    async def read_at(when: object) -> Decimal | None:
        return minutes.get(when)

    rates = UsdRates(clock.now, read_now, read_at)
    rates.observe(kit.T0, D("0.999"))
    assert await rates.at(kit.T0 - timedelta(hours=2)) == D("1.004")  # that minute's bar
    assert await rates.at(kit.T0 - timedelta(hours=3)) == D("0.999")  # none: the nearest
