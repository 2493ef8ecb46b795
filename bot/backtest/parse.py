"""Bulk parsing of history files: whole columns at a time, at the speed of C loops.

`bars_in_bulk` and `funding_in_bulk` turn the rows of one file into the same values the
line-by-line readers of `history.py` produce (they call the same `Decimal` and
`date.fromisoformat` on the same text), but convert each column with one `map` and check it
with one `min`/`max` instead of a Python call per cell. They accept only the canonical forms
(`YYYY-MM-DDTHH:MM:SSZ` exactly, finite numbers in range) and return None for anything else:
the caller then reads the file line by line, which finds the bad row and names it. So a
file parses to the same series either way, and only a broken file pays the slow path.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from itertools import repeat

HOUR_MS = 3_600_000
_DAY_MS = 24 * HOUR_MS
_EPOCH_DAY = date(1970, 1, 1).toordinal()
_DIGITS = frozenset("0123456789")


class _DayMs(dict[str, int]):
    """`YYYY-MM-DD` → epoch ms of its midnight, parsed on first sight."""

    def __missing__(self, day: str) -> int:
        value = (date.fromisoformat(day).toordinal() - _EPOCH_DAY) * _DAY_MS
        self[day] = value
        return value


class _TimeOfDayMs(dict[str, int]):
    """`THH:MM:SSZ` → ms since midnight; anything else raises KeyError (→ slow path)."""

    def __missing__(self, text: str) -> int:
        if (
            len(text) != 10
            or text[0] != "T"
            or text[3] != ":"
            or text[6] != ":"
            or text[9] != "Z"
            or not _DIGITS.issuperset(text[1:3] + text[4:6] + text[7:9])
        ):
            raise KeyError(text)
        hour, minute, second = int(text[1:3]), int(text[4:6]), int(text[7:9])
        if hour >= 24 or minute >= 60 or second >= 60:
            raise KeyError(text)
        value = hour * HOUR_MS + minute * 60_000 + second * 1000
        self[text] = value
        return value


_BULK_ERRORS = (ValueError, KeyError, IndexError, ArithmeticError, TypeError)


def _columns(rows: Sequence[str], width: int, idx: Sequence[int]) -> list[list[str]] | None:
    """The cells of columns `idx` of every row, if each row has exactly `width` cells.

    One regular expression over the whole text finds them (a C loop, no list per row).
    """
    cell, wanted = "[^,\n]*", set(idx)
    pattern = ",".join(f"({cell})" if i in wanted else cell for i in range(width))
    found = re.findall(f"^{pattern}$", "\n".join(rows), re.MULTILINE)
    if not rows or len(found) != len(rows):
        return None  # a row with too few or too many cells
    order = sorted(wanted)
    if len(order) == 1:
        return [found]
    return [[row[order.index(i)] for row in found] for i in idx]


def _times(texts: list[str]) -> list[int] | None:
    """Epoch ms of each `YYYY-MM-DDTHH:MM:SSZ`, or None unless strictly increasing."""
    days, clock = _DayMs(), _TimeOfDayMs()
    times = [days[t[:10]] + clock[t[10:]] for t in texts]
    if not all(map(operator.lt, times, times[1:])):
        return None
    return times


def _finite(values: list[Decimal], lower: Decimal | None, strict: bool) -> bool:
    """Every value finite and above `lower` (strictly, or at least); NaN raises (→ slow path)."""
    lo, hi = min(values), max(values)
    if not (lo.is_finite() and hi.is_finite()):
        return False
    if lower is None:
        return True
    return lo > lower if strict else lo >= lower


def bars_in_bulk(
    rows: Sequence[str], width: int, idx: Sequence[int], bar_ms: int, *, with_volume: bool
) -> tuple[list[int], list[Decimal], list[Decimal], list[Decimal]] | None:
    """(times, opens, closes, volumes) of kline rows, or None if any row is not canonical.

    `width` is the header's column count; `idx` gives the columns of date, open, close (and
    volume). Without volume, closes and volumes come back empty.
    """
    zero = Decimal(0)
    try:
        columns = _columns(rows, width, idx)
        if columns is None:
            return None
        times = _times(columns[0])
        if times is None or any(map(operator.mod, times, repeat(bar_ms))):
            return None
        opens = list(map(Decimal, columns[1]))
        if not _finite(opens, zero, strict=True):
            return None
        if not with_volume:
            return times, opens, [], []
        closes = list(map(Decimal, columns[2]))
        volumes = list(map(Decimal, columns[3]))
        if not (_finite(closes, zero, strict=True) and _finite(volumes, zero, strict=False)):
            return None
        return times, opens, closes, volumes
    except _BULK_ERRORS:
        return None


def funding_in_bulk(
    rows: Sequence[str], width: int, idx: Sequence[int]
) -> tuple[list[int], list[Decimal]] | None:
    """(nominal times, rates) of funding rows, or None if any row is not canonical.

    `width` is the header's column count; `idx` gives the columns of funding_time_utc,
    funding_time_ms and funding_rate.
    """
    try:
        columns = _columns(rows, width, idx)
        if columns is None:
            return None
        times = _times(columns[0])
        if times is None:
            return None
        exchange_ms = list(map(int, columns[1]))
        if max(map(abs, map(operator.sub, exchange_ms, times))) >= 1000:
            return None
        rates = list(map(Decimal, columns[2]))
        if not _finite(rates, None, strict=False):
            return None
        return times, rates
    except _BULK_ERRORS:
        return None
