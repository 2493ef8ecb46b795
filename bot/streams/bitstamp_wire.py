"""Bitstamp WebSocket v2 frames → domain values, exact (Decimal from the wire's strings).

Bitstamp's protocol (`wss://ws.bitstamp.net`): the client sends `bts:subscribe` /
`bts:unsubscribe` with `{"channel": ...}` (private channels add `"auth": <token>` from
`websockets_token/`); the server answers `bts:subscription_succeeded`, sends channel data,
replies `bts:heartbeat` to a client's `bts:heartbeat`, asks for a reconnect with
`bts:request_reconnect` (before maintenance: reconnect, the old connection is closed soon),
and reports `bts:error`. Channels read here:
- `order_book_<pair>`: the top 100 bids and asks, sent whole on every change (`data`);
- `private-my_orders_<pair>-<user id>`: `order_created`, `order_changed`, `order_deleted`;
- `private-my_trades_<pair>-<user id>`: `trade` (price, amount, fee, order id) per fill.
A frame that fails validation raises `BadFrame` naming the field; the caller logs it and
ignores the frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from bot.streams.wire import BadFrame, Notice

BOOK_PREFIX = "order_book_"
ORDERS_PREFIX = "private-my_orders_"
TRADES_PREFIX = "private-my_trades_"
HEARTBEAT = "bts:heartbeat"
RECONNECT = "bts:request_reconnect"
ORDER_EVENTS = frozenset({"order_created", "order_changed", "order_deleted"})

Level = tuple[Decimal, Decimal]


@dataclass(frozen=True, slots=True)
class BookSnapshot:
    """The top of one pair's book (`order_book_<pair>`), best first."""

    pair_id: str
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    microtimestamp: int | None


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """The server's answer to our `bts:heartbeat`."""


@dataclass(frozen=True, slots=True)
class OrderEvent:
    """One `private-my_orders_<pair>` event: what is left and what traded so far."""

    pair_id: str
    event: str
    order_id: str
    client_order_id: str | None
    side_sell: bool
    amount_at_create: Decimal | None
    amount_left: Decimal
    amount_traded: Decimal | None
    at: datetime | None


@dataclass(frozen=True, slots=True)
class TradeEvent:
    """One fill of one of our orders (`private-my_trades_<pair>`)."""

    pair_id: str
    trade_id: str
    order_id: str
    price: Decimal
    amount: Decimal
    fee: Decimal
    at: datetime | None


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    """`bts:error`: e.g. 4009, a private subscription refused."""

    code: str
    message: str


Frame = BookSnapshot | Heartbeat | Notice | OrderEvent | TradeEvent | ErrorEvent


def parse_bitstamp_frame(message: Any) -> Frame | None:
    """Return what one decoded frame says (None for acknowledgements and other channels)."""
    if not isinstance(message, dict):
        raise BadFrame(
            f"frame is {type(message).__name__}, not a JSON object: {str(message)[:80]!r}"
        )
    event = message.get("event")
    channel = message.get("channel")
    if event == HEARTBEAT:
        return Heartbeat()
    if event == RECONNECT:
        return Notice(RECONNECT)
    if event == "bts:error":
        data = message.get("data")
        data = data if isinstance(data, dict) else {}
        return ErrorEvent(str(data.get("code", "")), str(data.get("message", "")))
    if not isinstance(channel, str):
        return None
    if event == "data" and channel.startswith(BOOK_PREFIX):
        return _book(channel.removeprefix(BOOK_PREFIX), message.get("data"))
    if event in ORDER_EVENTS and channel.startswith(ORDERS_PREFIX):
        pair = channel.removeprefix(ORDERS_PREFIX).rpartition("-")[0]
        return _order(pair, str(event), message.get("data"))
    if event == "trade" and channel.startswith(TRADES_PREFIX):
        pair = channel.removeprefix(TRADES_PREFIX).rpartition("-")[0]
        return _trade(pair, message.get("data"))
    return None


def _trade(pair: str, data: Any) -> TradeEvent:
    if not isinstance(data, dict):
        raise BadFrame(f"my_trades_{pair}: data is not an object")
    trade_id, order_id = data.get("id_str") or data.get("id"), data.get("order_id")
    if trade_id in (None, "") or order_id in (None, ""):
        raise BadFrame(f"my_trades_{pair}: a trade needs id and order_id")
    price = _decimal(pair, data.get("price"), "price")
    amount = _decimal(pair, data.get("amount"), "amount")
    if price <= 0 or amount <= 0:
        raise BadFrame(f"my_trades_{pair}: price {price} and amount {amount} must be positive")
    micro = str(data.get("microtimestamp", ""))
    return TradeEvent(
        pair_id=pair,
        trade_id=str(trade_id),
        order_id=str(order_id),
        price=price,
        amount=amount,
        fee=_decimal(pair, data.get("fee", "0"), "fee"),
        at=datetime.fromtimestamp(int(micro) / 1_000_000, UTC) if micro.isdigit() else None,
    )


def _book(pair: str, data: Any) -> BookSnapshot:
    if not isinstance(data, dict):
        raise BadFrame(f"order_book_{pair}: data is not an object")
    bids, asks = _side(pair, data, "bids"), _side(pair, data, "asks")
    if bids and asks and bids[0][0] > asks[0][0]:
        raise BadFrame(f"order_book_{pair}: best bid {bids[0][0]} above best ask {asks[0][0]}")
    if not bids or not asks:
        raise BadFrame(f"order_book_{pair}: a side is empty")
    micro = str(data.get("microtimestamp", ""))
    return BookSnapshot(pair, bids, asks, int(micro) if micro.isdigit() else None)


def _side(pair: str, data: dict[str, Any], key: str) -> tuple[Level, ...]:
    levels = data.get(key)
    if not isinstance(levels, list):
        raise BadFrame(f"order_book_{pair}: {key} is not a list")
    out = []
    for level in levels:
        if not isinstance(level, list) or len(level) < 2:
            raise BadFrame(f"order_book_{pair}: {key} level {level!r} is not [price, amount]")
        price = _decimal(pair, level[0], f"{key} price")
        amount = _decimal(pair, level[1], f"{key} amount")
        if price <= 0 or amount < 0:
            raise BadFrame(f"order_book_{pair}: {key} level {level!r} is out of range")
        out.append((price, amount))
    return tuple(out)


def _order(pair: str, event: str, data: Any) -> OrderEvent:
    if not isinstance(data, dict):
        raise BadFrame(f"my_orders_{pair} {event}: data is not an object")
    order_id = data.get("id_str") or data.get("id")
    if order_id in (None, ""):
        raise BadFrame(f"my_orders_{pair} {event}: no id")
    side = str(data.get("order_type"))
    if side not in ("0", "1"):
        raise BadFrame(f"my_orders_{pair} {event}: order_type {side!r} is not 0 or 1")
    left = _decimal(pair, data.get("amount_str", data.get("amount")), "amount_str")
    created = data.get("amount_at_create")
    traded = data.get("amount_traded")
    stamp = str(data.get("datetime", ""))
    cid = data.get("client_order_id")
    return OrderEvent(
        pair_id=pair,
        event=event,
        order_id=str(order_id),
        client_order_id=str(cid) if cid else None,
        side_sell=side == "1",
        amount_at_create=_decimal(pair, created, "amount_at_create") if created else None,
        amount_left=left,
        amount_traded=_decimal(pair, traded, "amount_traded") if traded is not None else None,
        at=datetime.fromtimestamp(int(stamp), UTC) if stamp.isdigit() else None,
    )


def _decimal(pair: str, raw: Any, what: str) -> Decimal:
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        raise BadFrame(f"{pair}: {what} {raw!r} is not a decimal string")
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        raise BadFrame(f"{pair}: {what} {raw!r} is not a number") from None
    if not value.is_finite():
        raise BadFrame(f"{pair}: {what} {raw!r} is not finite")
    return value
