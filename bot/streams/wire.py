"""Binance stream frames → domain values, exact (Decimal from the wire's strings).

ccxt.pro keeps the connections; carrybot reads each frame itself because ccxt's tickers
carry floats (money here is Decimal) and ccxt's mark-price ticker drops the funding rate and
next funding time the strategy needs. A frame that fails validation raises `BadFrame`
with one line naming the field; the caller logs it and ignores the frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from bot.clock import utc_from_ms


class BadFrame(ValueError):
    """A stream frame carrybot cannot use; the message names the field."""


@dataclass(frozen=True, slots=True)
class BookTick:
    """Best bid/ask of one exchange symbol (`bookTicker`)."""

    exchange_symbol: str
    futures: bool
    bid: Decimal
    bid_qty: Decimal
    ask: Decimal
    ask_qty: Decimal
    update_id: int | None


@dataclass(frozen=True, slots=True)
class MarkTick:
    """One USDⓈ-M `markPriceUpdate`: mark, index, funding estimate, next funding time."""

    exchange_symbol: str
    mark_price: Decimal
    index_price: Decimal
    funding_rate: Decimal
    next_funding_time: datetime
    event_time: datetime


@dataclass(frozen=True, slots=True)
class Notice:
    """A control event: `serverShutdown`, `listenKeyExpired`, `eventStreamTerminated`."""

    kind: str


NOTICES = frozenset({"serverShutdown", "listenKeyExpired", "eventStreamTerminated"})


def parse_frame(message: Any) -> list[BookTick | MarkTick | Notice]:
    """Return the market ticks and notices in one decoded frame ([] for anything else).

    Replies to requests (`{"result", "id"}`) and user-data events give []; a book ticker or
    mark price with a bad field raises BadFrame. Combined-stream and WebSocket-API wrappers
    (`{"stream", "data"}`, `{"subscriptionId", "event"}`) are unwrapped.
    """
    if isinstance(message, list):
        return [tick for item in message for tick in parse_frame(item)]
    if not isinstance(message, dict):
        raise BadFrame(
            f"frame is {type(message).__name__}, not a JSON object: {str(message)[:80]!r}"
        )
    if "stream" in message and isinstance(message.get("data"), dict | list):
        return parse_frame(message["data"])
    if "subscriptionId" in message and isinstance(message.get("event"), dict):
        return parse_frame(message["event"])
    event = message.get("e")
    if event in NOTICES:
        return [Notice(str(event))]
    if event == "markPriceUpdate":
        return [_mark(message)]
    if event == "bookTicker" or (event is None and "b" in message and "a" in message):
        return [_book(message, futures=event == "bookTicker")]
    return []


def _book(m: dict[str, Any], *, futures: bool) -> BookTick:
    symbol = _symbol(m)
    bid, ask = _price(m, "b", "bid"), _price(m, "a", "ask")
    if bid > ask:
        raise BadFrame(f"bookTicker {symbol}: bid b={bid} above ask a={ask}")
    update = m.get("u")
    return BookTick(
        symbol,
        futures,
        bid,
        _qty(m, "B", "bid quantity"),
        ask,
        _qty(m, "A", "ask quantity"),
        update if isinstance(update, int) else None,
    )


def _mark(m: dict[str, Any]) -> MarkTick:
    symbol = _symbol(m)
    return MarkTick(
        symbol,
        _price(m, "p", "mark price"),
        _price(m, "i", "index price", allow_zero=True),
        _decimal(m, "r", "funding rate"),
        utc_from_ms(_ms(m, "T", "next funding time")),
        utc_from_ms(_ms(m, "E", "event time")),
    )


def _symbol(m: dict[str, Any]) -> str:
    symbol = m.get("s")
    if not isinstance(symbol, str) or not symbol:
        raise BadFrame(f"frame without symbol s: {str(m)[:80]}")
    return symbol


def _decimal(m: dict[str, Any], key: str, what: str) -> Decimal:
    raw = m.get(key)
    if not isinstance(raw, str):
        raise BadFrame(f"{m.get('s')}: {what} {key}={raw!r} is not a decimal string")
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise BadFrame(f"{m.get('s')}: {what} {key}={raw!r} is not a number") from None
    if not value.is_finite():
        raise BadFrame(f"{m.get('s')}: {what} {key}={raw!r} is not finite")
    return value


def _price(m: dict[str, Any], key: str, what: str, *, allow_zero: bool = False) -> Decimal:
    value = _decimal(m, key, what)
    if value < 0 or (value == 0 and not allow_zero):
        raise BadFrame(f"{m.get('s')}: {what} {key}={value} must be positive")
    return value


def _qty(m: dict[str, Any], key: str, what: str) -> Decimal:
    value = _decimal(m, key, what)
    if value < 0:
        raise BadFrame(f"{m.get('s')}: {what} {key}={value} is negative")
    return value


def _ms(m: dict[str, Any], key: str, what: str) -> int:
    raw = m.get(key)
    if isinstance(raw, bool) or not isinstance(raw, int) or raw <= 0:
        raise BadFrame(f"{m.get('s')}: {what} {key}={raw!r} is not epoch milliseconds")
    return raw
