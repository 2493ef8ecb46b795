"""Market-data streams through real ccxt.pro against the fake Binance's WebSocket side."""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal

import pytest

from bot.domain import MarketKind
from tests.integration.streams.conftest import MakeRig, wait_for

BOOK_TICKER = "/api/v3/ticker/bookTicker"
FUTURES_BOOK_TICKER = "/fapi/v1/ticker/bookTicker"
PREMIUM_INDEX = "/fapi/v1/premiumIndex"


async def test_snapshot_data_comes_from_the_streams_without_rest_requests(
    make_rig: MakeRig,
) -> None:
    rig = await make_rig()
    await rig.started()
    rig.fake.set_quote("BTC/USDT", "50100.00", "50100.50")
    rig.fake.set_quote("BTC/USDT:USDT", "50150.0", "50150.5")
    rig.fake.set_funding("BTC/USDT:USDT", rate="0.00042", mark="50151")
    await rig.source.fetch_funding_snapshot()  # the REST base (interest, intervals) once
    rig.fake.clear_requests()
    rig.fake.streams.push_now()
    await wait_for(
        lambda: (
            rig.streams.quotes["BTC/USDT"].bid == Decimal("50100.00")
            and rig.streams.marks["BTC/USDT:USDT"].funding_rate == Decimal("0.00042")
        ),
        timeout=3,
    )

    spot = await rig.source.fetch_best_quotes(MarketKind.SPOT)
    perp = await rig.source.fetch_best_quotes(MarketKind.PERPETUAL)
    funding = await rig.source.fetch_funding_snapshot()

    assert (spot["BTC/USDT"].bid, spot["BTC/USDT"].ask) == (
        Decimal("50100.00"),
        Decimal("50100.50"),
    )
    assert perp["BTC/USDT:USDT"].ask == Decimal("50150.5")
    btc = funding["BTC/USDT:USDT"]
    assert (btc.funding_rate, btc.mark_price) == (Decimal("0.00042"), Decimal("50151"))
    assert funding["ETH/USDT:USDT"].interval_hours == 4  # from the REST base, not the stream
    assert rig.fake.requests == []
    assert rig.fake.streams.subscribed() == {
        "btcusdt@bookTicker",
        "ethusdt@bookTicker",
        "!markPrice@arr@1s",
    }


async def test_forced_disconnect_reconnects_and_resubscribes_within_3_seconds(
    make_rig: MakeRig,
) -> None:
    rig = await make_rig()
    await rig.started()
    dropped = await rig.fake.streams.drop_all()
    assert dropped == 3
    took = await wait_for(lambda: rig.all_live() and rig.reconnects() == 3, timeout=3)
    assert took < 3
    assert rig.fake.streams.open_count() == 3
    assert len(rig.fake.streams.subscribed()) == 3


async def test_refused_window_blocks_entries_falls_back_to_rest_and_resumes_after_settle(
    make_rig: MakeRig,
) -> None:
    rig = await make_rig()
    await rig.started()
    await wait_for(lambda: rig.gate("BTC/USDT") is None, timeout=3)
    rig.fake.streams.refuse_for(2.0)
    await rig.fake.streams.drop_all()
    await wait_for(lambda: not rig.all_live(), timeout=2)
    rig.fake.clear_requests()

    reason = rig.gate("BTC/USDT")
    quotes = await rig.source.fetch_best_quotes(MarketKind.SPOT)

    assert reason is not None and "REST data only" in reason
    assert len(rig.fake.requests_to(BOOK_TICKER)) == 1  # REST took over
    assert quotes["BTC/USDT"].bid > 0
    await wait_for(rig.all_live, timeout=6)  # accepted again after 2 s
    assert "settling" in (rig.gate("BTC/USDT") or "")
    await wait_for(lambda: rig.gate("BTC/USDT") is None, timeout=3)  # resumes by itself
    assert rig.fake.streams.refused >= 3


async def test_a_silent_stream_is_noticed_dropped_and_replaced(make_rig: MakeRig) -> None:
    rig = await make_rig(silence_seconds=0.5)
    await rig.started()
    spot = rig.health("spot-0")
    rig.fake.streams.silence(True, prefix="/stream/")
    took = await wait_for(lambda: spot.state.value != "live", timeout=3)
    assert took < 2.0  # silence_seconds 0.5 + the watchdog's pass, with room for a loaded machine
    assert "no message" in spot.last_error
    assert rig.gate("BTC/USDT") is not None
    rig.fake.streams.silence(False, prefix="/stream/")
    await wait_for(rig.all_live, timeout=3)
    assert spot.reconnects == 1
    assert rig.health("mark").reconnects == 0  # its own, slower, floor


async def test_server_shutdown_notice_reconnects_before_the_server_drops(make_rig: MakeRig) -> None:
    rig = await make_rig()
    await rig.started()
    accepted = rig.fake.streams.accepted
    sent = await rig.fake.streams.server_shutdown()
    assert sent == 3
    await wait_for(lambda: rig.reconnects() == 3 and rig.all_live(), timeout=3)
    assert rig.fake.streams.accepted == accepted + 3


async def test_failover_to_the_next_endpoint_when_the_first_refuses(make_rig: MakeRig) -> None:
    rig = await make_rig(spot_fallback_paths=("/alt/stream/ws",))
    fallback = rig.fake.spot_ws_url.replace("/stream/ws", "/alt/stream/ws")
    await rig.started()
    rig.fake.streams.refuse_for(30, prefix="/stream/")
    await rig.fake.streams.drop_all(prefix="/stream/")
    await wait_for(lambda: rig.health("spot-0").endpoint == fallback, timeout=3)
    await wait_for(rig.all_live, timeout=3)
    assert rig.fake.streams.open_count("/alt/stream/") == 1


async def test_bad_frames_are_logged_in_one_line_and_ignored(
    make_rig: MakeRig, caplog: pytest.LogCaptureFixture
) -> None:
    rig = await make_rig()
    await rig.started()
    before = rig.streams.quotes["BTC/USDT"]
    caplog.set_level(logging.WARNING)
    await rig.fake.streams.send_raw(
        '{"u":1,"s":"BTCUSDT","b":"abc","B":"1","a":"1","A":"1"}', prefix="/stream/"
    )
    await rig.fake.streams.send_raw(
        '{"u":2,"s":"BTCUSDT","b":"2","B":"1","a":"1","A":"1"}', prefix="/stream/"
    )
    await rig.fake.streams.send_raw("not json at all", prefix="/stream/")
    await rig.fake.streams.send_raw(
        '[{"e":"markPriceUpdate","s":"BTCUSDT","p":"NaN"}]', prefix="/f/market/"
    )
    await wait_for(lambda: rig.streams.bad_frames >= 4, timeout=2)

    lines = [r.getMessage() for r in caplog.records if "Bad stream frame" in r.getMessage()]
    assert len(lines) == 4
    assert all("\n" not in line for line in lines)
    assert any("b='abc'" in line for line in lines)
    assert any("above ask" in line for line in lines)
    assert rig.streams.quotes["BTC/USDT"].bid == before.bid
    assert rig.all_live()  # the connections carry on


async def test_spread_guard_blocks_entries_on_a_wide_book(make_rig: MakeRig) -> None:
    rig = await make_rig(settle_seconds=0, max_spread_bps=10)
    await rig.started()
    rig.fake.set_quote("ETH/USDT", "3000.00", "3009.00")  # 30 bps
    rig.fake.streams.push_now()
    await wait_for(lambda: rig.streams.quotes["ETH/USDT"].ask == Decimal("3009.00"), timeout=2)
    reason = rig.gate("ETH/USDT")
    assert reason is not None and "max_spread_bps" in reason
    assert rig.gate("BTC/USDT") is None


async def test_stream_ages_at_decision_time_are_small(make_rig: MakeRig) -> None:
    rig = await make_rig()
    await rig.started()
    ages = []
    for _ in range(20):
        quotes = await rig.source.fetch_best_quotes(MarketKind.SPOT)
        now = rig.fake.clock.now()
        ages += [(now - q.timestamp).total_seconds() for q in quotes.values()]
        await asyncio.sleep(0.03)
    ages.sort()
    assert ages[len(ages) // 2] < 0.3
    assert ages[-1] < 1.5
