"""Stream frames → domain values: exact decimals, wrappers, notices, one-line rejections."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from bot.streams.wire import BadFrame, BookTick, MarkTick, Notice, parse_frame

SPOT_BOOK = {"u": 7, "s": "BTCUSDT", "b": "28621.74000000", "B": "1.4", "a": "28621.75", "A": "2.5"}
MARK = {
    "e": "markPriceUpdate",
    "E": 1562305380000,
    "s": "BTCUSDT",
    "p": "11794.15000000",
    "i": "11784.62659091",
    "P": "11784.25641265",
    "r": "0.00038167",
    "T": 1562306400000,
}


def test_spot_book_ticker_keeps_the_wire_decimals() -> None:
    [tick] = parse_frame(SPOT_BOOK)
    assert tick == BookTick(
        "BTCUSDT",
        False,
        Decimal("28621.74000000"),
        Decimal("1.4"),
        Decimal("28621.75"),
        Decimal("2.5"),
        7,
    )


def test_futures_book_ticker_is_told_apart_by_its_event_type() -> None:
    [tick] = parse_frame({"e": "bookTicker", "E": 1, "T": 1, **SPOT_BOOK})
    assert isinstance(tick, BookTick) and tick.futures


def test_mark_price_array_gives_funding_rate_and_next_funding_time() -> None:
    ticks = parse_frame([MARK, {**MARK, "s": "ETHUSDT", "r": "-0.0001"}])
    assert all(isinstance(t, MarkTick) for t in ticks)
    assert [t.exchange_symbol for t in ticks if isinstance(t, MarkTick)] == ["BTCUSDT", "ETHUSDT"]
    first = ticks[0]
    assert isinstance(first, MarkTick)
    assert first.funding_rate == Decimal("0.00038167")
    assert first.next_funding_time == datetime(2019, 7, 5, 6, 0, tzinfo=UTC)
    assert first.index_price == Decimal("11784.62659091")


def test_combined_stream_and_ws_api_wrappers_are_unwrapped() -> None:
    (tick,) = parse_frame({"stream": "btcusdt@bookTicker", "data": SPOT_BOOK})
    assert isinstance(tick, BookTick) and tick.bid == Decimal("28621.74000000")
    assert parse_frame({"subscriptionId": 0, "event": {"e": "serverShutdown", "E": 1}}) == [
        Notice("serverShutdown")
    ]


def test_replies_and_other_events_are_not_market_data() -> None:
    assert parse_frame({"result": None, "id": 1}) == []
    assert parse_frame({"e": "ORDER_TRADE_UPDATE", "o": {}}) == []
    assert parse_frame({"e": "listenKeyExpired", "E": 1}) == [Notice("listenKeyExpired")]


@pytest.mark.parametrize(
    ("frame", "named"),
    [
        ({**SPOT_BOOK, "b": "abc"}, "b='abc'"),
        ({**SPOT_BOOK, "b": 1.5}, "b=1.5"),
        ({**SPOT_BOOK, "a": "0"}, "a=0"),
        ({**SPOT_BOOK, "b": "3", "a": "2"}, "above ask"),
        ({**SPOT_BOOK, "B": "-1"}, "B=-1"),
        ({k: v for k, v in SPOT_BOOK.items() if k != "s"}, "without symbol"),
        ({**MARK, "p": "NaN"}, "p='NaN'"),
        ({**MARK, "T": "soon"}, "T='soon'"),
        ({**MARK, "r": None}, "r=None"),
        ("not json", "not a JSON object"),
    ],
)
def test_bad_frames_raise_one_line_naming_the_field(frame: object, named: str) -> None:
    with pytest.raises(BadFrame) as raised:
        parse_frame(frame)
    assert named in str(raised.value)
    assert "\n" not in str(raised.value)
