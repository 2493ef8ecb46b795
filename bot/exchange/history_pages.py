"""History endpoints read window by window, so a long downtime is covered in full.

Binance answers a trade or income history request for one time window only: USDⓈ-M
`userTrades` 7 days (ccxt adds `endTime = startTime + 7 days` by itself), spot `myTrades`
24 hours; each answer holds at most `limit` rows. After a stop longer than that, one request
from the stop time would miss everything after its window. `read_windows` walks consecutive
windows from `since` to now, and pages within a window while answers come back full.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

T = TypeVar("T")

FUTURES_TRADES_WINDOW = timedelta(days=7)
SPOT_TRADES_WINDOW = timedelta(hours=24)
INCOME_WINDOW = timedelta(days=7)

Page = Callable[[int, int | None], Awaitable[tuple[list[T], int]]]
"""(start ms, end ms or None: open, both included) -> (parsed items, rows returned)."""


async def read_windows(
    fetch: Page[T],
    *,
    start_ms: int,
    end_ms: int,
    window: timedelta,
    limit: int,
    time_ms: Callable[[T], int],
) -> list[T]:
    """Every item from `start_ms` on, one window (and full page) at a time.

    Windows are closed up to the one that reaches `end_ms` (now, by the exchange's clock);
    that last one is left open-ended, as a single request from `start_ms` would be.
    """
    width = int(window.total_seconds() * 1000)
    out: list[T] = []
    start = start_ms
    while True:
        last = start + width - 1 >= end_ms
        window_end = None if last else start + width - 1
        items, returned = await fetch(start, window_end)
        out.extend(items)
        if returned >= limit and items:
            start = max(time_ms(i) for i in items) + 1  # more in this window
        elif window_end is None:
            return out
        else:
            start = window_end + 1
