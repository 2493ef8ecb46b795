"""Bulk parsing: the same series as line by line, and None (the slow path) for any odd row."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from bot.backtest.history import _bars_by_line, _funding_by_line, read_bars, read_funding
from bot.backtest.parse import bars_in_bulk, funding_in_bulk
from bot.backtest.series import HOUR_MS

BARS = [
    "date,open,high,low,close,volume",
    "2024-01-01T00:00:00Z,42000.5,42100,41900,42050.25,12.5",
    "2024-01-01T01:00:00Z,42050.25,42200,42000,42100.0,0",
    "2024-01-01T03:00:00Z,1E+4,1.1E+4,9E+3,10000.00,3.125",
]
FUNDING = [
    "funding_time_utc,funding_time_ms,funding_rate",
    "2024-01-01T00:00:00Z,1704067200003,0.0001",
    "2024-01-01T08:00:00Z,1704096000000,-0.00012500",
    "2024-01-01T16:00:00Z,1704124800999,0E-8",
]
BAR_IDX = [0, 1, 4, 5]
FUNDING_IDX = [0, 1, 2]


def test_bars_in_bulk_equal_line_by_line_to_the_digit() -> None:
    bulk = bars_in_bulk(BARS[1:], 6, BAR_IDX, HOUR_MS, with_volume=True)

    assert bulk is not None
    line = _bars_by_line(Path("x.csv"), BARS, BAR_IDX, HOUR_MS, True)
    assert bulk == line
    assert [str(v) for v in bulk[1]] == ["42000.5", "42050.25", "1E+4"]  # the text's own digits


def test_bars_in_bulk_without_volume_reads_opens_only() -> None:
    bulk = bars_in_bulk(BARS[1:], 6, BAR_IDX[:3], HOUR_MS, with_volume=False)

    assert bulk == ((*_bars_by_line(Path("x.csv"), BARS, BAR_IDX[:3], HOUR_MS, False)[:2], [], []))


def test_funding_in_bulk_equal_line_by_line() -> None:
    bulk = funding_in_bulk(FUNDING[1:], 3, FUNDING_IDX)

    assert bulk is not None
    assert bulk == _funding_by_line(Path("f.csv"), FUNDING, FUNDING_IDX)
    assert bulk[0][1] == 1704096000000  # nominal time, not the exchange's ms


@pytest.mark.parametrize(
    ("row", "why"),
    [
        ("2024-01-01T04:00:00Z,NaN,1,1,1,1", "NaN open"),
        ("2024-01-01T04:00:00Z,Infinity,1,1,1,1", "infinite open"),
        ("2024-01-01T04:00:00Z,0,1,1,1,1", "zero open"),
        ("2024-01-01T04:00:00Z,1,1,1,1,-1", "negative volume"),
        ("2024-01-01T04:00:00Z,abc,1,1,1,1", "not a number"),
        ("2024-01-01T02:00:00Z,1,1,1,1,1", "not after the previous row"),
        ("2024-01-01T04:30:00Z,1,1,1,1,1", "off the hour"),
        ("2024-01-01 04:00:00,1,1,1,1,1", "other time format"),
        ("2024-13-01T04:00:00Z,1,1,1,1,1", "no such month"),
        ("2024-01-01T04:00:00Z,1,1,1,1", "a cell short"),
        ("2024-01-01T04:00:00Z,1,1,1,1,1,7", "a cell over"),
        ("", "blank line"),
    ],
)
def test_bars_in_bulk_leaves_any_odd_row_to_the_line_reader(row: str, why: str) -> None:
    assert bars_in_bulk([*BARS[1:], row], 6, BAR_IDX, HOUR_MS, with_volume=True) is None, why


def test_bars_in_bulk_rejects_bars_off_an_8h_boundary() -> None:
    rows = ["2024-01-01T00:00:00Z,1,1,1,1", "2024-01-01T09:00:00Z,1,1,1,1"]

    assert bars_in_bulk(rows, 5, [0, 1, 4], 8 * HOUR_MS, with_volume=False) is None


@pytest.mark.parametrize(
    "row",
    [
        "2024-01-02T00:00:00Z,1704153601000,0.0001",  # exchange ms 1 s away
        "2024-01-02T00:00:00Z,1704153600000,sNaN",
        "2024-01-02T00:00:00Z,x,0.0001",
    ],
)
def test_funding_in_bulk_leaves_odd_rows_to_the_line_reader(row: str) -> None:
    assert funding_in_bulk([*FUNDING[1:], row], 3, FUNDING_IDX) is None


def test_read_bars_falls_back_for_valid_but_odd_rows(tmp_path: Path) -> None:
    canonical, spaced = tmp_path / "a.csv", tmp_path / "b.csv"
    canonical.write_text("\n".join(BARS) + "\n")
    spaced.write_text("\n".join([BARS[0], *(r.replace("Z,", "Z ,", 1) for r in BARS[1:])]))

    a, b = (
        read_bars(canonical, HOUR_MS, with_volume=True),
        read_bars(spaced, HOUR_MS, with_volume=True),
    )

    assert (a.times, a.opens, a.quote_volume(0, 2**62)) == (
        b.times,
        b.opens,
        b.quote_volume(0, 2**62),
    )
    assert a.quote_volume(0, 2**62) == Decimal("42050.25") * Decimal("12.5") + Decimal("31250")


def test_read_funding_bad_row_still_named_by_line(tmp_path: Path) -> None:
    path = tmp_path / "BTCUSDT.csv"
    path.write_text("\n".join([*FUNDING, "2024-01-02T00:00:00Z,1704153600000,oops"]))

    with pytest.raises(Exception, match=r"BTCUSDT.csv:5: bad funding_rate 'oops'"):
        read_funding(path)
