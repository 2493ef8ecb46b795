"""Which spans a job still has to fetch, given what is on disk."""

from __future__ import annotations

from bot.backtest.series import HOUR_MS
from bot.datafetch.fetcher import Segment, missing
from bot.datafetch.files import OnDisk

DAY = 24 * HOUR_MS
T0 = 1704067200000  # 2024-01-01T00:00:00Z


def on_disk(first: int, last: int, next_ms: int | None = None) -> OnDisk:
    return OnDisk([], first, last, next_ms if next_ms is not None else last + HOUR_MS)


def test_missing_nothing_on_disk_fetches_whole_range() -> None:
    assert missing(T0, T0 + DAY, None) == (Segment(T0, T0 + DAY),)


def test_missing_range_without_an_hour_boundary_fetches_nothing() -> None:
    assert missing(T0 + 1, T0 + HOUR_MS, None) == ()


def test_missing_last_bar_on_disk_is_up_to_date() -> None:
    assert missing(T0, T0 + DAY, on_disk(T0, T0 + DAY - HOUR_MS)) == ()


def test_missing_tail_continues_after_last_row() -> None:
    funding = on_disk(T0, T0 + 8 * HOUR_MS, next_ms=T0 + 8 * HOUR_MS + 6)

    assert missing(T0, T0 + DAY, funding) == (Segment(T0 + 8 * HOUR_MS + 6, T0 + DAY),)


def test_missing_earlier_start_adds_head_up_to_first_row() -> None:
    disk = on_disk(T0 + DAY, T0 + 2 * DAY - HOUR_MS)

    assert missing(T0, T0 + 2 * DAY, disk) == (Segment(T0, T0 + DAY, head=True),)


def test_missing_range_after_the_file_extends_it_without_a_hole() -> None:
    disk = on_disk(T0, T0 + DAY - HOUR_MS)

    assert missing(T0 + 5 * DAY, T0 + 6 * DAY, disk) == (Segment(T0 + DAY, T0 + 6 * DAY),)
