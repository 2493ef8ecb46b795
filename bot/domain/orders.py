"""Orders and fills in domain terms."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"


class PositionSide(StrEnum):
    """Binance `positionSide`: BOTH in one-way mode, LONG or SHORT in hedge mode."""

    BOTH = "BOTH"
    LONG = "LONG"
    SHORT = "SHORT"


class OrderStatus(StrEnum):
    PENDING = "pending"  # recorded in the ledger, not yet acknowledged by the exchange
    NEW = "new"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"
    EXPIRED = "expired"
    UNKNOWN = "unknown"  # sent, response lost: must be looked up by client order id

    @property
    def is_final(self) -> bool:
        return self in {
            OrderStatus.FILLED,
            OrderStatus.CANCELED,
            OrderStatus.REJECTED,
            OrderStatus.EXPIRED,
        }


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """What the bot asks the exchange for. `client_order_id` is chosen by the caller."""

    symbol: str
    side: Side
    type: OrderType
    quantity: Decimal
    client_order_id: str
    price: Decimal | None = None
    reduce_only: bool = False
    position_side: PositionSide | None = None


@dataclass(frozen=True, slots=True)
class Order:
    """The exchange's view of an order."""

    symbol: str
    client_order_id: str
    exchange_order_id: str | None
    side: Side
    type: OrderType
    status: OrderStatus
    quantity: Decimal
    filled: Decimal
    average_price: Decimal | None
    price: Decimal | None
    created_at: datetime | None
    updated_at: datetime | None
    reduce_only: bool = False
    position_side: PositionSide | None = None
    fee: Decimal | None = None
    fee_asset: str | None = None

    @property
    def remaining(self) -> Decimal:
        return self.quantity - self.filled


@dataclass(frozen=True, slots=True)
class Fill:
    """One trade (execution) of one of our orders. Binance trade ids are unique per symbol."""

    trade_id: str
    symbol: str
    exchange_order_id: str
    side: Side
    price: Decimal
    quantity: Decimal
    fee: Decimal
    fee_asset: str
    timestamp: datetime
    is_maker: bool = False
    client_order_id: str | None = None
    realized_pnl: Decimal | None = None
    fee_usdt: Decimal | None = None
    """The fee in USDT as the ledger recorded it (a BNB fee at the BNB price then)."""
    venue_price: Decimal | None = None
    """A USD pair's price as the venue reported it, in USD (`price` is in USDT terms)."""
    usd_per_usdt: Decimal | None = None
    """The USDT/USD rate (USD per USDT) `price` and `fee` were converted at: the mid of the
    venue's USDT/USD book at the fill. None when nothing was converted."""

    @property
    def notional(self) -> Decimal:
        return self.price * self.quantity
