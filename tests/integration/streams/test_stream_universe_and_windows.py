"""Streams over time: subscriptions follow the universe, quiet books, a 60 s refused window.

Real ccxt.pro against the fake's WebSocket side; the long waits are jumps of an injected
clock shared by the fake (its refused window) and the bot (ages, settle time).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from bot.domain import MarketKind
from tests import kit
from tests.fakes.fixtures import deep_book, standard_instruments
from tests.integration.streams.conftest import JumpClock, MakeRig, wait_for

BOOK_TICKER = "/api/v3/ticker/bookTicker"


async def test_subscriptions_follow_the_universe(make_rig: MakeRig) -> None:
    rig = await make_rig(symbols=[])  # every spot/perpetual pair of the exchange
    await rig.started()
    assert {"btcusdt@bookTicker", "ethusdt@bookTicker"} <= rig.fake.streams.subscribed()
    now = datetime.now(UTC)
    sol_spot, sol_perp = kit.spot("SOL"), kit.perp("SOL")
    rig.fake.set_instruments(
        [i for i in standard_instruments(now) if i.base != "ETH"] + [sol_spot, sol_perp]
    )
    for inst, mid in ((sol_spot, Decimal("150")), (sol_perp, Decimal("150.1"))):
        rig.fake.set_book(deep_book(inst, mid, now))
    rig.fake.set_funding(
        sol_perp.symbol, rate="0.0002", next_funding_time=now + timedelta(hours=8), mark="150.1"
    )

    await rig.source.load_instruments(reload=True)  # the snapshot's instrument refresh
    await rig.source.pairs()

    await wait_for(
        lambda: (
            "solusdt@bookTicker" in rig.fake.streams.subscribed()
            and "ethusdt@bookTicker" not in rig.fake.streams.subscribed()
        ),
        timeout=3,
    )
    assert "ETH/USDT" not in rig.streams.stream_of
    await wait_for(lambda: rig.gate("SOL/USDT") is None, timeout=5)  # entries on the new pair
    assert rig.gate("ETH/USDT") is not None  # no stream for a pair that left
    assert rig.health("spot-0").reconnects == 0  # running connections undisturbed
    assert rig.health("perp-0").reconnects == 0
    rig.fake.clear_requests()
    quotes = await rig.source.fetch_best_quotes(MarketKind.SPOT)
    assert set(quotes) == {"BTC/USDT", "SOL/USDT"}
    assert rig.fake.requests_to(BOOK_TICKER) == []  # all from the streams

    rig.fake.set_instruments(standard_instruments(now))  # SOL delisted, ETH back
    await rig.source.load_instruments(reload=True)
    await rig.source.pairs()
    await wait_for(
        lambda: (
            "solusdt@bookTicker" not in rig.fake.streams.subscribed()
            and "ethusdt@bookTicker" in rig.fake.streams.subscribed()
        ),
        timeout=3,
    )
    # the connection left without symbols is closed and forgotten
    assert [h.name for h in rig.source.health.all() if h.name.startswith("spot-")] == [
        "spot-0",
        "spot-2",
    ]
    await wait_for(rig.all_live, timeout=3)
    await wait_for(lambda: rig.fake.streams.open_count() == 5, timeout=3)  # spot-0, perp-0,
    # mark, spot-2, perp-2


async def test_an_unchanged_book_does_not_block_entries_while_its_connection_delivers(
    make_rig: MakeRig,
) -> None:
    clock = JumpClock()
    rig = await make_rig(clock=clock, silence_seconds=120, max_quote_age_seconds=5)
    rig.fake.streams.changes_only = True  # as Binance: an unchanged book sends nothing
    await rig.started()
    await wait_for(lambda: rig.gate("ETH/USDT") is None, timeout=3)
    clock.jump(31)  # 31 s without a change of ETH's book, and without any frame at all

    stale = rig.gate("ETH/USDT")
    assert stale is not None and "old" in stale  # nothing vouches for the book: REST only

    rig.fake.set_quote("BTC/USDT", "50001.00", "50001.50")  # the connection delivers again
    rig.fake.set_quote("BTC/USDT:USDT", "50011.0", "50011.5")
    rig.fake.streams.push_now()
    await wait_for(lambda: rig.streams.quotes["BTC/USDT:USDT"].bid == Decimal("50011.0"), timeout=3)
    await wait_for(lambda: rig.source.mark_problem("ETH/USDT:USDT") is None, timeout=3)
    rig.fake.clear_requests()

    age = rig.streams.quote_age("ETH/USDT")
    assert age is not None and age > 30  # no ETH frame since
    assert rig.gate("ETH/USDT") is None
    quotes = await rig.source.fetch_best_quotes(MarketKind.SPOT)
    assert rig.fake.requests_to(BOOK_TICKER) == []
    age = (clock.now() - quotes["ETH/USDT"].timestamp).total_seconds()
    assert age < 3  # stamped when its connection last delivered: the risk gate's age is fresh


async def test_a_quiet_book_with_no_frame_since_subscribing_is_taken_from_rest_once(
    make_rig: MakeRig,
) -> None:
    """As after a reconnect: Binance sends nothing for a book that does not change."""
    rig = await make_rig(silence_seconds=120)
    rig.fake.streams.changes_only = True
    rig.fake.streams.first_book_on_subscribe = False  # Binance: no frame for a quiet book
    await rig.source.start()
    await wait_for(  # spot, perpetual and mark connections subscribed
        lambda: sum(1 for c in rig.fake.streams.connections if c.subscriptions) == 3, timeout=3
    )
    rig.fake.set_quote("BTC/USDT", "50001.00", "50001.50")  # sent: it changed
    for base in ("BTC", "ETH"):  # the perpetuals change too (their own connection)
        rig.fake.set_quote(f"{base}/USDT:USDT", "3001.0", "3001.5")
    rig.fake.streams.push_now()
    await wait_for(lambda: "BTC/USDT" in rig.streams.quotes, timeout=3)
    assert "ETH/USDT" not in rig.streams.quotes  # unchanged since the subscription
    assert "no stream quote" in (rig.source.quote_problem("ETH/USDT") or "")
    await wait_for(rig.all_live, timeout=5)

    first = await rig.source.fetch_best_quotes(MarketKind.SPOT)  # REST, taken as ETH's book
    rig.fake.clear_requests()
    second = await rig.source.fetch_best_quotes(MarketKind.SPOT)

    assert first["ETH/USDT"].bid == second["ETH/USDT"].bid > 0
    assert rig.fake.requests_to(BOOK_TICKER) == []  # from memory now
    assert rig.source.quote_problem("ETH/USDT") is None


async def test_new_connections_refused_for_60_s_block_entries_and_trading_resumes_alone(
    make_rig: MakeRig,
) -> None:
    clock = JumpClock()
    rig = await make_rig(clock=clock, settle_seconds=10, silence_seconds=30)
    await rig.started()
    clock.jump(10)
    await wait_for(lambda: rig.gate("BTC/USDT") is None, timeout=3)
    rig.fake.streams.refuse_for(60)
    await rig.fake.streams.drop_all()
    await wait_for(lambda: not rig.all_live(), timeout=2)
    accepted = rig.fake.streams.accepted

    reasons, ages = [], []
    for _ in range(11):  # 55 s of the window, a check every 5 s
        clock.jump(5)
        reasons.append(rig.gate("BTC/USDT"))
        spot = await rig.source.fetch_best_quotes(MarketKind.SPOT)
        funding = await rig.source.fetch_funding_snapshot()
        ages += [(clock.now() - spot["BTC/USDT"].timestamp).total_seconds()]
        assert funding["BTC/USDT:USDT"].mark_price > 0
        await asyncio.sleep(0.05)

    assert all(r is not None and "REST data only" in r for r in reasons)  # zero entries
    assert max(ages) < 2  # the REST fallback keeps the snapshot fresh
    assert rig.fake.streams.accepted == accepted and rig.fake.streams.refused > 0
    assert rig.source.rest_fallbacks >= 11
    clock.jump(6)  # the server accepts again
    await wait_for(rig.all_live, timeout=5)
    assert "settling" in (rig.gate("BTC/USDT") or "")
    clock.jump(10)  # the settle time
    await wait_for(lambda: rig.gate("BTC/USDT") is None, timeout=3)  # resumed by itself
