"""Turn Binance's raw rows into CSV lines in the format of ../shared/data.

Values stay exactly the exchange's decimals; only their spelling is normalised to the one
the shared files use: plain notation, trailing zeros dropped, at least one decimal digit
(`"93881.30"` → `93881.3`, `"10000.00000000"` → `10000.0`). Times are ISO 8601 with `Z`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from bot.backtest.series import HOUR_MS, from_ms
from bot.datafetch.request import Kind

FUNDING_HEADER = "funding_time_utc,funding_time_ms,funding_rate"
DELIVERY_HEADER = "delivery_time_utc,delivery_time_ms,delivery_price"
MARK_HEADER = "date,open,high,low,close"
BAR_HEADER = "date,open,high,low,close,volume"


@dataclass(frozen=True, slots=True)
class Row:
    """One CSV line and where it sits in time.

    `time_ms` is the nominal time (bar open, funding settlement to the second); `next_ms` is
    the `startTime` of the request that continues after this row.
    """

    time_ms: int
    next_ms: int
    line: str


def header(kind: Kind) -> str:
    """Return the CSV header of `kind`'s files."""
    if kind.is_funding:
        return FUNDING_HEADER
    if kind.is_delivery:
        return DELIVERY_HEADER
    return MARK_HEADER if kind is Kind.MARK else BAR_HEADER


def iso(ms: int) -> str:
    """Format epoch ms (whole seconds) as `YYYY-MM-DDTHH:MM:SSZ`."""
    return f"{from_ms(ms):%Y-%m-%dT%H:%M:%SZ}"


def nominal_ms(exchange_ms: int) -> int:
    """Round an exchange time to the second: Binance stamps settlements a few ms late."""
    return (exchange_ms + 500) // 1000 * 1000


def plain(value: object, what: str, check: Callable[[Decimal], bool] | None = None) -> str:
    """Return `value` (a decimal string or int) spelled like the shared data; raise ValueError."""
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"{what} {value!r} is not a number") from None
    if not number.is_finite() or (check is not None and not check(number)):
        raise ValueError(f"{what} {value!r} is out of range")
    text = f"{number:f}"
    if "." not in text:
        text += ".0"
    else:
        text = text.rstrip("0")
        if text.endswith("."):
            text += "0"
    return "0.0" if text == "-0.0" else text


def _positive(value: Decimal) -> bool:
    return value > 0


def _non_negative(value: Decimal) -> bool:
    return value >= 0


def _int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"{what} {value!r} is not an integer")
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{what} {value!r} is not an integer") from None


def funding_row(info: Mapping[str, Any]) -> Row:
    """Build a funding line from one raw `/fapi/v1/fundingRate` (or dapi's) row."""
    exchange_ms = _int(info.get("fundingTime"), "fundingTime")
    rate = plain(info.get("fundingRate"), "fundingRate")
    nominal = nominal_ms(exchange_ms)
    return Row(nominal, exchange_ms + 1, f"{iso(nominal)},{exchange_ms},{rate}")


def delivery_row(info: Mapping[str, Any]) -> Row:
    """Build a delivery line from one `/futures/data/delivery-price` row."""
    exchange_ms = _int(info.get("deliveryTime"), "deliveryTime")
    price = plain(info.get("deliveryPrice"), "deliveryPrice", _positive)
    nominal = nominal_ms(exchange_ms)
    return Row(nominal, exchange_ms + 1, f"{iso(nominal)},{exchange_ms},{price}")


def kline_row(raw: object, kind: Kind) -> Row:
    """Build a 1h bar line from one raw kline array (`[openTime, o, h, l, c, volume, ...]`)."""
    if not isinstance(raw, Sequence) or isinstance(raw, str) or len(raw) < 6:
        raise ValueError(f"kline {raw!r} is not an array of at least 6 fields")
    open_ms = _int(raw[0], "open time")
    if open_ms % HOUR_MS:
        raise ValueError(f"open time {open_ms} is not on an hour boundary")
    cells = [
        plain(raw[1], "open", _positive),
        plain(raw[2], "high"),
        plain(raw[3], "low"),
        plain(raw[4], "close", _positive),
    ]
    if kind.is_coinm:  # dapi: [5] is contracts, [7] the base asset volume (as fapi's [5])
        if len(raw) < 8:
            raise ValueError(f"kline {raw!r} has no base asset volume")
        cells.append(plain(raw[7], "volume", _non_negative))
    elif kind is not Kind.MARK:
        cells.append(plain(raw[5], "volume", _non_negative))
    return Row(open_ms, open_ms + HOUR_MS, ",".join([iso(open_ms), *cells]))
