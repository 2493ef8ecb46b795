"""Raw Binance rows to CSV lines: exact decimals spelled like ../shared/data."""

from __future__ import annotations

import pytest

from bot.datafetch.request import Kind
from bot.datafetch.rows import funding_row, kline_row, plain

HOUR_0 = 1704067200000  # 2024-01-01T00:00:00Z


@pytest.mark.parametrize(
    ("raw", "written"),
    [
        ("93881.30", "93881.3"),
        ("10000.00000000", "10000.0"),
        ("0.00001234", "0.00001234"),  # never 1.234e-05
        ("-0.00006876", "-0.00006876"),
        ("-0.00000000", "0.0"),
        ("1E+4", "10000.0"),
        ("123456789012345678901234567890.123456789", "123456789012345678901234567890.123456789"),
        (42, "42.0"),
    ],
)
def test_plain_exchange_value_keeps_its_exact_value(raw: object, written: str) -> None:
    assert plain(raw, "x") == written


@pytest.mark.parametrize("raw", ["", "abc", "NaN", "Infinity", None])
def test_plain_not_a_finite_number_raises(raw: object) -> None:
    with pytest.raises(ValueError, match="x"):
        plain(raw, "x")


@pytest.mark.parametrize(
    ("exchange_ms", "nominal"),
    [(HOUR_0 + 8, "2024-01-01T00:00:00Z"), (HOUR_0 - 2, "2024-01-01T00:00:00Z")],
)
def test_funding_row_jittered_time_keyed_by_nominal_second(exchange_ms: int, nominal: str) -> None:
    row = funding_row({"fundingTime": exchange_ms, "fundingRate": "0.00010000"})

    assert row.line == f"{nominal},{exchange_ms},0.0001"
    assert row.next_ms == exchange_ms + 1


def test_kline_row_mark_has_no_volume_column() -> None:
    raw = [HOUR_0, "42000.10", "42100.00", "41900.50", "42050.00", "0", HOUR_0 + 3599999]

    assert kline_row(raw, Kind.MARK).line == "2024-01-01T00:00:00Z,42000.1,42100.0,41900.5,42050.0"
    assert kline_row(raw, Kind.SPOT).line.endswith(",42050.0,0.0")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([HOUR_0 + 60_000, "1", "1", "1", "1", "1"], "not on an hour boundary"),
        ([HOUR_0, "0", "1", "1", "1", "1"], "open '0' is out of range"),
        ([HOUR_0, "1", "1", "1", "1", "-1"], "volume '-1' is out of range"),
        ([HOUR_0, "1"], "not an array of at least 6 fields"),
        ({"openTime": HOUR_0}, "not an array"),
    ],
)
def test_kline_row_invalid_raises(raw: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        kline_row(raw, Kind.PERP)
