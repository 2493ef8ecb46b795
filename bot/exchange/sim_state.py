"""The simulator's mutable records and their JSON form (Decimals as strings, times as ISO)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from bot.domain import (
    Fill,
    FundingPayment,
    Order,
    OrderRequest,
    OrderStatus,
    OrderType,
    PositionSide,
    Side,
)

OPEN_STATUSES = frozenset({OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED})


@dataclass(slots=True)
class OrderState:
    """One order as the matching engine tracks it."""

    request: OrderRequest
    order_id: str
    position_side: PositionSide | None
    status: OrderStatus
    created_at: datetime
    updated_at: datetime
    filled: Decimal = Decimal(0)
    cost: Decimal = Decimal(0)
    fee: Decimal = Decimal(0)
    fee_asset: str | None = None
    reserved: Decimal = Decimal(0)  # spot funds still locked for the open remainder

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def remaining(self) -> Decimal:
        return self.request.quantity - self.filled

    def to_order(self) -> Order:
        """Return the exchange's view of this order."""
        r = self.request
        return Order(
            symbol=r.symbol,
            client_order_id=r.client_order_id,
            exchange_order_id=self.order_id,
            side=r.side,
            type=r.type,
            status=self.status,
            quantity=r.quantity,
            filled=self.filled,
            average_price=self.cost / self.filled if self.filled else None,
            price=r.price if r.type is OrderType.LIMIT else None,
            created_at=self.created_at,
            updated_at=self.updated_at,
            reduce_only=r.reduce_only,
            position_side=self.position_side,
            fee=self.fee if self.filled else None,
            fee_asset=self.fee_asset if self.filled else None,
        )


@dataclass(slots=True)
class PositionState:
    """One perpetual position: signed size (negative short), entry, isolated margin."""

    size: Decimal
    entry: Decimal
    margin: Decimal
    opened_at: datetime


# --- primitives ------------------------------------------------------------------------


def enc_dec(value: Decimal) -> str:
    return str(value)


def dec(value: Any) -> Decimal:
    if not isinstance(value, str):
        raise ValueError(f"expected a decimal string, got {value!r}")
    return Decimal(value)


def opt_dec(value: Any) -> Decimal | None:
    return None if value is None else dec(value)


def enc_opt_dec(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def enc_time(value: datetime) -> str:
    return value.isoformat()


def time(value: Any) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"expected an ISO timestamp, got {value!r}")
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError(f"naive timestamp in paper state: {value!r}")
    return parsed


def opt_time(value: Any) -> datetime | None:
    return None if value is None else time(value)


# --- records ---------------------------------------------------------------------------


def encode_order(o: OrderState) -> dict[str, Any]:
    r = o.request
    return {
        "symbol": r.symbol,
        "side": r.side.value,
        "type": r.type.value,
        "quantity": enc_dec(r.quantity),
        "client_order_id": r.client_order_id,
        "price": enc_opt_dec(r.price),
        "reduce_only": r.reduce_only,
        "requested_position_side": r.position_side.value if r.position_side else None,
        "order_id": o.order_id,
        "position_side": o.position_side.value if o.position_side else None,
        "status": o.status.value,
        "created_at": enc_time(o.created_at),
        "updated_at": enc_time(o.updated_at),
        "filled": enc_dec(o.filled),
        "cost": enc_dec(o.cost),
        "fee": enc_dec(o.fee),
        "fee_asset": o.fee_asset,
        "reserved": enc_dec(o.reserved),
    }


def decode_order(d: Mapping[str, Any]) -> OrderState:
    requested = d["requested_position_side"]
    request = OrderRequest(
        symbol=d["symbol"],
        side=Side(d["side"]),
        type=OrderType(d["type"]),
        quantity=dec(d["quantity"]),
        client_order_id=d["client_order_id"],
        price=opt_dec(d["price"]),
        reduce_only=bool(d["reduce_only"]),
        position_side=PositionSide(requested) if requested else None,
    )
    side = d["position_side"]
    return OrderState(
        request=request,
        order_id=d["order_id"],
        position_side=PositionSide(side) if side else None,
        status=OrderStatus(d["status"]),
        created_at=time(d["created_at"]),
        updated_at=time(d["updated_at"]),
        filled=dec(d["filled"]),
        cost=dec(d["cost"]),
        fee=dec(d["fee"]),
        fee_asset=d["fee_asset"],
        reserved=dec(d["reserved"]),
    )


def encode_fill(f: Fill) -> dict[str, Any]:
    return {
        "trade_id": f.trade_id,
        "symbol": f.symbol,
        "exchange_order_id": f.exchange_order_id,
        "side": f.side.value,
        "price": enc_dec(f.price),
        "quantity": enc_dec(f.quantity),
        "fee": enc_dec(f.fee),
        "fee_asset": f.fee_asset,
        "timestamp": enc_time(f.timestamp),
        "is_maker": f.is_maker,
        "client_order_id": f.client_order_id,
        "realized_pnl": enc_opt_dec(f.realized_pnl),
    }


def decode_fill(d: Mapping[str, Any]) -> Fill:
    return Fill(
        trade_id=d["trade_id"],
        symbol=d["symbol"],
        exchange_order_id=d["exchange_order_id"],
        side=Side(d["side"]),
        price=dec(d["price"]),
        quantity=dec(d["quantity"]),
        fee=dec(d["fee"]),
        fee_asset=d["fee_asset"],
        timestamp=time(d["timestamp"]),
        is_maker=bool(d["is_maker"]),
        client_order_id=d["client_order_id"],
        realized_pnl=opt_dec(d["realized_pnl"]),
    )


def encode_payment(p: FundingPayment) -> dict[str, Any]:
    return {
        "symbol": p.symbol,
        "funding_time": enc_time(p.funding_time),
        "amount": enc_dec(p.amount),
        "asset": p.asset,
        "rate": enc_opt_dec(p.rate),
        "mark_price": enc_opt_dec(p.mark_price),
        "position_size": enc_opt_dec(p.position_size),
        "income_id": p.income_id,
    }


def decode_payment(d: Mapping[str, Any]) -> FundingPayment:
    return FundingPayment(
        symbol=d["symbol"],
        funding_time=time(d["funding_time"]),
        amount=dec(d["amount"]),
        asset=d["asset"],
        rate=opt_dec(d["rate"]),
        mark_price=opt_dec(d["mark_price"]),
        position_size=opt_dec(d["position_size"]),
        income_id=d["income_id"],
    )


def encode_position(symbol: str, side: PositionSide, p: PositionState) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "position_side": side.value,
        "size": enc_dec(p.size),
        "entry": enc_dec(p.entry),
        "margin": enc_dec(p.margin),
        "opened_at": enc_time(p.opened_at),
    }


def decode_position(d: Mapping[str, Any]) -> tuple[str, PositionSide, PositionState]:
    state = PositionState(
        size=dec(d["size"]),
        entry=dec(d["entry"]),
        margin=dec(d["margin"]),
        opened_at=time(d["opened_at"]),
    )
    return d["symbol"], PositionSide(d["position_side"]), state
