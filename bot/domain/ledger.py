"""Records the ledger keeps besides hedges, fills and funding: runs, orders, snapshots, state."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from bot.domain.hedge import Leg, OrderPurpose
from bot.domain.orders import OrderStatus, OrderType, PositionSide, Side


class TradingState(StrEnum):
    """The kill switch. REDUCING allows only closes; HALTED sends nothing new but keeps hedges."""

    ACTIVE = "active"
    REDUCING = "reducing"
    HALTED = "halted"


@dataclass(frozen=True, slots=True)
class TradingStatus:
    state: TradingState
    reason: str
    changed_by: str
    changed_at: datetime


@dataclass(frozen=True, slots=True)
class CloseRequest:
    """An operator's request to close a healthy hedge (`carrybot close`, the dashboard)."""

    id: int
    hedge_id: int
    reason: str
    source: str
    requested_at: datetime


class TransferStatus(StrEnum):
    """Where a universal transfer between wallets stands."""

    PENDING = "pending"  # written before the request is sent
    DONE = "done"  # the exchange answered it (with its transfer id)
    DONE_BY_BALANCE = "done_by_balance"  # answer lost; the destination rose by the amount
    FAILED = "failed"  # refused, or known not done (never landed)
    UNKNOWN = "unknown"  # answer lost and the balance unread: resolved before the next send

    @property
    def is_final(self) -> bool:
        return self not in (TransferStatus.PENDING, TransferStatus.UNKNOWN)


@dataclass(frozen=True, slots=True)
class Transfer:
    """One universal transfer request (spot <-> COIN-M wallet) as the ledger records it."""

    id: int
    hedge_id: int | None
    asset: str
    amount: Decimal
    from_wallet: str
    to_wallet: str
    status: TransferStatus
    reason: str
    requested_at: datetime
    completed_at: datetime | None = None
    exchange_id: str | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class BotRun:
    id: int
    mode: str
    exchange_environment: str
    config_hash: str
    version: str
    started_at: datetime
    stopped_at: datetime | None = None
    stop_reason: str | None = None


@dataclass(frozen=True, slots=True)
class MarketObservation:
    """One pair's funding and prices at one time (the perpetual symbol names it)."""

    symbol: str
    observed_at: datetime
    funding_rate: Decimal | None = None
    next_funding_time: datetime | None = None
    interval_hours: int | None = None
    mark_price: Decimal | None = None
    index_price: Decimal | None = None
    interest_rate: Decimal | None = None
    premium: Decimal | None = None
    spot_bid: Decimal | None = None
    spot_ask: Decimal | None = None
    perp_bid: Decimal | None = None
    perp_ask: Decimal | None = None


@dataclass(frozen=True, slots=True)
class OrderRecord:
    """An order as the ledger knows it: written (PENDING) before it is sent."""

    id: int
    client_order_id: str
    hedge_id: int | None
    leg: Leg
    purpose: OrderPurpose
    venue: str
    symbol: str
    side: Side
    type: OrderType
    quantity: Decimal
    status: OrderStatus
    filled: Decimal
    created_at: datetime
    updated_at: datetime
    price: Decimal | None = None
    reduce_only: bool = False
    position_side: PositionSide | None = None
    exchange_order_id: str | None = None
    average_price: Decimal | None = None
    error_code: int | None = None
    error_message: str | None = None
    sent_at: datetime | None = None
    acked_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class NewOrder:
    """An order to write to the ledger before sending it."""

    client_order_id: str
    leg: Leg
    purpose: OrderPurpose
    symbol: str
    side: Side
    type: OrderType
    quantity: Decimal
    price: Decimal | None = None
    reduce_only: bool = False
    position_side: PositionSide | None = None


@dataclass(frozen=True, slots=True)
class HedgeTransition:
    hedge_id: int
    from_state: str | None
    to_state: str
    reason: str
    at: datetime


@dataclass(frozen=True, slots=True)
class BalanceSnapshot:
    taken_at: datetime
    wallet: str
    asset: str
    free: Decimal
    locked: Decimal
    value_usdt: Decimal | None = None

    @property
    def total(self) -> Decimal:
        return self.free + self.locked


@dataclass(frozen=True, slots=True)
class PositionSnapshot:
    taken_at: datetime
    symbol: str
    position_side: PositionSide
    size: Decimal
    is_short: bool
    entry_price: Decimal
    mark_price: Decimal
    liquidation_price: Decimal | None
    unrealized_pnl: Decimal
    margin_ratio: Decimal | None
    leverage: int
