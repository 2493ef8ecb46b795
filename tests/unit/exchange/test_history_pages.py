"""History read window by window: the whole span covered, full pages continued, no gap."""

from __future__ import annotations

from datetime import timedelta

from bot.exchange.history_pages import read_windows

DAY = 24 * 3600 * 1000


async def test_every_row_of_a_long_span_is_read_in_windows_and_full_pages() -> None:
    rows = [0, DAY // 2, 3 * DAY, 3 * DAY + 1, 3 * DAY + 2, 9 * DAY + 5]  # row times, ms
    asked: list[tuple[int, int]] = []

    async def fetch(start: int, end: int | None) -> tuple[list[int], int]:
        asked.append((start, end if end is not None else 99 * DAY))
        page = [t for t in rows if start <= t <= (end or 99 * DAY)][:2]  # 2 rows at most
        return page, len(page)

    got = await read_windows(
        fetch, start_ms=0, end_ms=10 * DAY, window=timedelta(days=7), limit=2, time_ms=lambda t: t
    )

    assert got == rows
    closed = [(start, end) for start, end in asked if end != 99 * DAY]
    assert closed == [(0, 7 * DAY - 1), (DAY // 2 + 1, DAY // 2 + 7 * DAY)]  # full pages go on
    assert asked[2:] == [(3 * DAY + 2, 99 * DAY), (9 * DAY + 6, 99 * DAY)]  # open: reaches now
