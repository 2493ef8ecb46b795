"""Time series of historical market data: parallel arrays keyed by epoch milliseconds.

Lookups are a `bisect` on a sorted list of ints, so replaying years of hourly bars costs
microseconds per call and never touches a file.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Context, Decimal, localcontext
from itertools import accumulate
from operator import mul

HOUR_MS = 3_600_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
# Wide enough that cumulative sums of price x volume stay exact over any realistic history.
_SUM_PRECISION = 100
_SUMS = Context(prec=_SUM_PRECISION)  # what `localcontext(prec=...)` gives, without entering it


def to_ms(when: datetime) -> int:
    """Convert an aware datetime to epoch milliseconds exactly (no float rounding)."""
    if when.tzinfo is None:
        raise ValueError("naive datetime: timestamps must be timezone-aware UTC")
    return (when - EPOCH) // _ONE_MS


def from_ms(ms: int) -> datetime:
    """Convert epoch milliseconds to an aware UTC datetime."""
    return EPOCH + timedelta(milliseconds=ms)


def hour_floor(ms: int) -> int:
    """Return the start of the UTC hour containing `ms`."""
    return ms - ms % HOUR_MS


class BarSeries:
    """Klines of one market: open times (ms), opens and cumulative quote volume.

    Bars are `bar_ms` long and sorted by open time; gaps are allowed (exchange downtime).
    Only the open and Σ volume x close are kept: the replay never needs high, low or close.
    """

    __slots__ = ("_cum_quote", "_last", "bar_ms", "opens", "times")

    def __init__(
        self,
        bar_ms: int,
        times: list[int],
        opens: list[Decimal],
        cum_quote: list[Decimal] | None = None,
    ) -> None:
        self.bar_ms = bar_ms
        self.times = times
        self.opens = opens
        # cum_quote[i] = Σ volume x close of bars [0, i); None for series without volume.
        self._cum_quote = cum_quote
        self._last = (-1, -1)  # (ms, index_containing(ms)) of the latest lookup

    @classmethod
    def from_bars(
        cls,
        bar_ms: int,
        times: list[int],
        opens: list[Decimal],
        closes: Sequence[Decimal] | None = None,
        volumes: Sequence[Decimal] | None = None,
    ) -> BarSeries:
        """Build a series; with closes and volumes it can answer quote-volume queries."""
        cum: list[Decimal] | None = None
        if closes is not None and volumes is not None:
            if len(closes) != len(volumes):
                raise ValueError(f"{len(closes)} closes but {len(volumes)} volumes")
            with localcontext(prec=_SUM_PRECISION):  # running sums in C, same rounding
                cum = list(accumulate(map(mul, closes, volumes), initial=Decimal(0)))
        return cls(bar_ms, times, opens, cum)

    def __len__(self) -> int:
        return len(self.times)

    @property
    def has_volume(self) -> bool:
        return self._cum_quote is not None

    @property
    def first_ms(self) -> int:
        return self.times[0]

    @property
    def end_ms(self) -> int:
        """End (exclusive) of the last bar."""
        return self.times[-1] + self.bar_ms

    def index_containing(self, ms: int) -> int:
        """Return the index of the bar whose [open, open + bar) contains `ms`, or -1."""
        last = self._last  # one replayed time asks several times (quotes, funding, marks)
        if last[0] == ms:
            return last[1]
        i = bisect_right(self.times, ms) - 1
        if i < 0 or ms >= self.times[i] + self.bar_ms:
            i = -1
        self._last = (ms, i)  # one tuple: threads sharing the series read a consistent pair
        return i

    def index_opening_at(self, ms: int) -> int:
        """Return the index of the bar that opens exactly at `ms`, or -1."""
        i = bisect_left(self.times, ms)
        if i < len(self.times) and self.times[i] == ms:
            return i
        return -1

    def open_containing(self, ms: int) -> Decimal | None:
        """Return the open of the bar containing `ms`, or None in a gap or outside the data."""
        i = self.index_containing(ms)
        return self.opens[i] if i >= 0 else None

    def quote_volume(self, start_ms: int, end_ms: int) -> Decimal:
        """Return Σ volume x close of the bars opening in [start_ms, end_ms)."""
        if self._cum_quote is None:
            raise ValueError("this series has no volume")
        lo = bisect_left(self.times, start_ms)
        hi = bisect_left(self.times, end_ms)
        if hi <= lo:
            return Decimal(0)
        return _SUMS.subtract(self._cum_quote[hi], self._cum_quote[lo])

    def tail(self, start: int) -> BarSeries:
        """Return the series without its first `start` bars."""
        cum = self._cum_quote
        if cum is not None and start:
            with localcontext(prec=_SUM_PRECISION):
                base = cum[start]
                cum = [c - base for c in cum[start:]]
        return BarSeries(self.bar_ms, self.times[start:], self.opens[start:], cum)


class FundingSeries:
    """Settled funding rates of one perpetual, keyed by nominal settlement time (ms)."""

    __slots__ = ("rates", "times")

    def __init__(self, times: list[int], rates: list[Decimal]) -> None:
        self.times = times
        self.rates = rates

    def __len__(self) -> int:
        return len(self.times)

    def last_index_at_or_before(self, ms: int) -> int:
        """Return the index of the latest settlement at or before `ms`, or -1."""
        return bisect_right(self.times, ms) - 1

    def index_range(self, since_ms: int, until_ms: int) -> range:
        """Return the indices of settlements in [since_ms, until_ms]."""
        return range(bisect_left(self.times, since_ms), bisect_right(self.times, until_ms))

    def interval_ms(self, i: int) -> int:
        """Return the spacing of settlement `i` to its neighbour (next, else previous)."""
        if i + 1 < len(self.times):
            return self.times[i + 1] - self.times[i]
        if i >= 1:
            return self.times[i] - self.times[i - 1]
        return 8 * HOUR_MS
