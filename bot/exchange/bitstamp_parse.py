"""Bitstamp v2 JSON → domain objects, exactly: every number as Decimal from text.

Each parser raises ValueError naming the field when a row is unusable; the adapter drops
such rows from bulk responses and logs them. Bitstamp's shapes:
- markets/: `base_decimals`, `counter_decimals`, `minimum_order_value` (tick and step are
  10^-decimals, the min notional is in the quote currency);
- ticker/: every pair's `bid`, `ask`, `volume` (base) and `vwap`;
- order_status/: `status` ("Open", "Finished", "Canceled"), `amount_remaining` and the
  order's `transactions`; user_transactions/: `type` 2 rows (trades) with signed base and
  quote amounts, the price under `<base>_<quote>` and the fee in the quote currency.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from bot.domain import (
    Balance,
    Fill,
    Instrument,
    MarketKind,
    Order,
    OrderBook,
    OrderStatus,
    OrderType,
    Quote,
    Side,
)
from bot.domain.numbers import ZERO, to_decimal

Row = Mapping[str, Any]

_STATUS = {
    "Open": OrderStatus.NEW,
    "In Queue": OrderStatus.NEW,
    "Finished": OrderStatus.FILLED,
    "Canceled": OrderStatus.CANCELED,
    "Cancel pending": OrderStatus.NEW,
    "Expired": OrderStatus.EXPIRED,
}
TRADE_TYPE = "2"


def _dec(row: Row, key: str) -> Decimal:
    return to_decimal(row.get(key), field=key)


def _positive(row: Row, key: str) -> Decimal:
    value = _dec(row, key)
    if value <= 0:
        raise ValueError(f"{key}: expected a positive number, got {row.get(key)!r}")
    return value


def _step(decimals: object, field: str) -> Decimal:
    try:
        places = int(str(decimals))
    except ValueError:
        raise ValueError(f"{field}: expected an integer, got {decimals!r}") from None
    if not 0 <= places <= 18:
        raise ValueError(f"{field}: expected 0..18 decimals, got {places}")
    return Decimal(1).scaleb(-places)


def parse_time(text: object) -> datetime:
    """Return Bitstamp's `YYYY-MM-DD HH:MM:SS[.ffffff]` (UTC) or epoch seconds as UTC."""
    raw = str(text)
    if raw.isdigit():
        return datetime.fromtimestamp(int(raw), UTC)
    try:
        return datetime.fromisoformat(raw).replace(tzinfo=UTC)
    except ValueError:
        raise ValueError(f"datetime: expected Bitstamp's format, got {text!r}") from None


def instrument(market: Row) -> Instrument | None:
    """Return the spot instrument of one ccxt market (its `info` is Bitstamp's row)."""
    if market.get("type") != "spot":
        return None
    info = market["info"]
    step = _step(info.get("base_decimals"), "base_decimals")
    tick = _step(info.get("counter_decimals"), "counter_decimals")
    min_qty = to_decimal(info.get("minimum_order_amount") or step, field="minimum_order_amount")
    max_qty = info.get("maximum_order_amount")
    return Instrument(
        symbol=str(market["symbol"]),
        exchange_symbol=str(market["id"]),
        kind=MarketKind.SPOT,
        base=str(market["base"]),
        quote=str(market["quote"]),
        tick_size=tick,
        step_size=step,
        min_qty=min_qty,
        min_notional=_dec(info, "minimum_order_value"),
        max_qty=to_decimal(max_qty, field="maximum_order_amount") if max_qty else None,
        active=info.get("trading") == "Enabled"
        and info.get("instant_and_market_orders", "Enabled") == "Enabled",
    )


def quote(row: Row, symbol: str, now: datetime) -> Quote:
    """Return best bid/ask of a ticker/ row (Bitstamp's ticker has no sizes at the top)."""
    bid, ask = _positive(row, "bid"), _positive(row, "ask")
    if bid > ask:
        raise ValueError(f"bid {bid} above ask {ask}")
    return Quote(symbol, bid, ask, ZERO, ZERO, now)


def quote_volume(row: Row) -> Decimal:
    """Return the 24h quote volume of a ticker/ row: base volume × VWAP."""
    return _dec(row, "volume") * _dec(row, "vwap")


def book(raw: Row, symbol: str, now: datetime, depth: int) -> OrderBook:
    """Return `depth` levels a side of an order_book/ answer, best first."""

    def side(key: str) -> tuple[tuple[Decimal, Decimal], ...]:
        levels = raw.get(key)
        if not isinstance(levels, list):
            raise ValueError(f"{key}: expected a list")
        out = []
        for level in levels[:depth]:
            price = to_decimal(level[0], field=f"{key} price")
            qty = to_decimal(level[1], field=f"{key} amount")
            if price <= 0 or qty < 0:
                raise ValueError(f"{key}: bad level {level!r}")
            out.append((price, qty))
        return tuple(out)

    return OrderBook(symbol, side("bids"), side("asks"), now)


def order(info: Row, inst: Instrument, *, client_order_id: str) -> Order:
    """Return an order from order_status/ (`transactions` hold its fills so far).

    Its quantity is what filled plus `amount_remaining`; `type` 0 is a buy, 1 a sell.
    """
    status = _STATUS.get(str(info.get("status")))
    if status is None:
        raise ValueError(f"status: unknown order status {info.get('status')!r}")
    base_key = inst.base.lower()
    filled = cost = fee = ZERO
    for trade in info.get("transactions") or ():
        qty = abs(_dec(trade, base_key))
        filled += qty
        cost += qty * _positive(trade, "price")
        fee += _dec(trade, "fee")
    if status is OrderStatus.NEW and filled > 0:
        status = OrderStatus.PARTIALLY_FILLED
    side = {"0": Side.BUY, "1": Side.SELL}.get(str(info.get("type")))
    if side is None:
        raise ValueError(f"type: expected 0 (buy) or 1 (sell), got {info.get('type')!r}")
    quantity = filled + _dec(info, "amount_remaining")
    created = parse_time(info["datetime"]) if info.get("datetime") else None
    return Order(
        symbol=inst.symbol,
        client_order_id=str(info.get("client_order_id") or client_order_id),
        exchange_order_id=str(info["id"]),
        side=side,
        type=OrderType.MARKET,
        status=status,
        quantity=quantity,
        filled=filled,
        average_price=cost / filled if filled > 0 else None,
        price=None,
        created_at=created,
        updated_at=created,
        fee=fee,
        fee_asset=inst.quote,
    )


def fill(row: Row, inst: Instrument) -> Fill | None:
    """Return our trade from a user_transactions/ row, or None when it is not a trade."""
    if str(row.get("type")) != TRADE_TYPE:
        return None
    base_key = inst.base.lower()
    amount = _dec(row, base_key)
    if amount == 0:
        return None
    price_key = f"{base_key}_{inst.quote.lower()}"
    return Fill(
        trade_id=str(row["id"]),
        symbol=inst.symbol,
        exchange_order_id=str(row["order_id"]),
        side=Side.BUY if amount > 0 else Side.SELL,
        price=_positive(row, price_key),
        quantity=abs(amount),
        fee=_dec(row, "fee"),
        fee_asset=inst.quote,
        timestamp=parse_time(row["datetime"]),
    )


def balances(rows: object) -> dict[str, Balance]:
    """Return the non-zero balances of an account_balances/ answer, keyed by asset."""
    if not isinstance(rows, list):
        raise ValueError("account_balances: expected a list")
    out: dict[str, Balance] = {}
    for row in rows:
        asset = str(row["currency"]).upper()
        free, locked = _dec(row, "available"), _dec(row, "reserved")
        if free or locked:
            out[asset] = Balance(asset, free, locked)
    return out
