"""The ledger schema: SQLAlchemy 2 typed declarative models. Created only by Alembic."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from bot.persistence.types import Money, UTCDateTime

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        Decimal: Money,
        datetime: UTCDateTime,
        dict[str, Any]: JSON,
    }


class BotRunRow(Base):
    """One start-to-stop of the bot (or one backtest)."""

    __tablename__ = "bot_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mode: Mapped[str] = mapped_column(String(16))
    exchange_environment: Mapped[str] = mapped_column(String(32))
    config_hash: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[datetime]
    stopped_at: Mapped[datetime | None]
    stop_reason: Mapped[str | None] = mapped_column(Text)


class MarketObservationRow(Base):
    """Funding and prices of one pair at one time (thinned to one row per symbol per minute)."""

    __tablename__ = "market_observations"
    __table_args__ = (UniqueConstraint("symbol", "observed_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    symbol: Mapped[str] = mapped_column(String(64))
    observed_at: Mapped[datetime]
    funding_rate: Mapped[Decimal | None]
    next_funding_time: Mapped[datetime | None]
    interval_hours: Mapped[int | None]
    mark_price: Mapped[Decimal | None]
    index_price: Mapped[Decimal | None]
    interest_rate: Mapped[Decimal | None]
    premium: Mapped[Decimal | None]
    spot_bid: Mapped[Decimal | None]
    spot_ask: Mapped[Decimal | None]
    perp_bid: Mapped[Decimal | None]
    perp_ask: Mapped[Decimal | None]


class SettledFundingRow(Base):
    """A funding rate that settled (market history, whether or not we held the perp)."""

    __tablename__ = "settled_funding"
    __table_args__ = (UniqueConstraint("venue", "symbol", "funding_time"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    venue: Mapped[str] = mapped_column(String(32))
    symbol: Mapped[str] = mapped_column(String(64))
    funding_time: Mapped[datetime]
    rate: Mapped[Decimal]
    mark_price: Mapped[Decimal | None]


class HedgeRow(Base):
    """One long-spot / short-perp position and its state machine."""

    __tablename__ = "hedges"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uid: Mapped[str] = mapped_column(String(24), unique=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("bot_runs.id"))
    pair: Mapped[str] = mapped_column(String(64), index=True)
    spot_symbol: Mapped[str] = mapped_column(String(64))
    perp_symbol: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), index=True)
    target_quantity: Mapped[Decimal]
    spot_quantity: Mapped[Decimal]
    perp_quantity: Mapped[Decimal]
    target_notional: Mapped[Decimal]
    entry_spot_price: Mapped[Decimal | None]
    entry_perp_price: Mapped[Decimal | None]
    exit_spot_price: Mapped[Decimal | None]
    exit_perp_price: Mapped[Decimal | None]
    open_reason: Mapped[str | None] = mapped_column(Text)
    close_reason: Mapped[str | None] = mapped_column(Text)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    opened_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]


class HedgeTransitionRow(Base):
    """Every state change of a hedge, with its reason."""

    __tablename__ = "hedge_transitions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    hedge_id: Mapped[int] = mapped_column(ForeignKey("hedges.id"), index=True)
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime]


class OrderRow(Base):
    """An order we sent (or are about to send): written before the POST."""

    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_order_id: Mapped[str] = mapped_column(String(36), unique=True)
    hedge_id: Mapped[int | None] = mapped_column(ForeignKey("hedges.id"), index=True)
    leg: Mapped[str] = mapped_column(String(8))
    purpose: Mapped[str] = mapped_column(String(16))
    venue: Mapped[str] = mapped_column(String(32))
    symbol: Mapped[str] = mapped_column(String(64))
    side: Mapped[str] = mapped_column(String(8))
    order_type: Mapped[str] = mapped_column(String(16))
    quantity: Mapped[Decimal]
    price: Mapped[Decimal | None]
    reduce_only: Mapped[bool] = mapped_column(Boolean, default=False)
    position_side: Mapped[str | None] = mapped_column(String(8))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(24))
    exchange_order_id: Mapped[str | None] = mapped_column(String(64))
    filled_quantity: Mapped[Decimal]
    average_price: Mapped[Decimal | None]
    error_code: Mapped[int | None]
    error_message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    acked_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class FillRow(Base):
    """One execution. Idempotent on (venue, symbol, trade_id): Binance trade ids are per symbol."""

    __tablename__ = "fills"
    __table_args__ = (UniqueConstraint("venue", "symbol", "trade_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    venue: Mapped[str] = mapped_column(String(32))
    trade_id: Mapped[str] = mapped_column(String(64))
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"), index=True)
    client_order_id: Mapped[str | None] = mapped_column(String(36))
    exchange_order_id: Mapped[str] = mapped_column(String(64))
    symbol: Mapped[str] = mapped_column(String(64))
    side: Mapped[str] = mapped_column(String(8))
    price: Mapped[Decimal]
    quantity: Mapped[Decimal]
    fee: Mapped[Decimal]
    fee_asset: Mapped[str] = mapped_column(String(16))
    fee_usdt: Mapped[Decimal | None]
    realized_pnl: Mapped[Decimal | None]
    is_maker: Mapped[bool] = mapped_column(Boolean, default=False)
    executed_at: Mapped[datetime]
    # A USD pair's fill: the USD price the venue reported and the USDT/USD rate `price`
    # (USDT terms) and `fee` were converted at. NULL when nothing was converted.
    venue_price: Mapped[Decimal | None]
    usd_per_usdt: Mapped[Decimal | None]


class FundingPaymentRow(Base):
    """Funding received or paid. Idempotent on (venue, symbol, funding_time)."""

    __tablename__ = "funding_payments"
    __table_args__ = (UniqueConstraint("venue", "symbol", "funding_time"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    venue: Mapped[str] = mapped_column(String(32))
    symbol: Mapped[str] = mapped_column(String(64))
    funding_time: Mapped[datetime]
    amount: Mapped[Decimal]
    asset: Mapped[str] = mapped_column(String(16))
    rate: Mapped[Decimal | None]
    mark_price: Mapped[Decimal | None]
    position_size: Mapped[Decimal | None]
    hedge_id: Mapped[int | None] = mapped_column(ForeignKey("hedges.id"), index=True)
    income_id: Mapped[str | None] = mapped_column(String(64))


class BalanceSnapshotRow(Base):
    """One asset of one wallet at one time."""

    __tablename__ = "balance_snapshots"
    __table_args__ = (Index("ix_balance_snapshots_taken_at_wallet", "taken_at", "wallet"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    taken_at: Mapped[datetime]
    wallet: Mapped[str] = mapped_column(String(16))
    asset: Mapped[str] = mapped_column(String(16))
    free: Mapped[Decimal]
    locked: Mapped[Decimal]
    total: Mapped[Decimal]
    value_usdt: Mapped[Decimal | None]


class PositionSnapshotRow(Base):
    """One perpetual position at one time."""

    __tablename__ = "position_snapshots"
    __table_args__ = (Index("ix_position_snapshots_taken_at_symbol", "taken_at", "symbol"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    taken_at: Mapped[datetime]
    symbol: Mapped[str] = mapped_column(String(64))
    position_side: Mapped[str] = mapped_column(String(8))
    size: Mapped[Decimal]
    is_short: Mapped[bool] = mapped_column(Boolean)
    entry_price: Mapped[Decimal]
    mark_price: Mapped[Decimal]
    liquidation_price: Mapped[Decimal | None]
    unrealized_pnl: Mapped[Decimal]
    margin_ratio: Mapped[Decimal | None]
    leverage: Mapped[int]


class EventRow(Base):
    """Risk decisions, alerts, errors, halts: everything the operator may ask about later."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_at_kind", "at", "kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(48))
    severity: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    hedge_id: Mapped[int | None] = mapped_column(ForeignKey("hedges.id"))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("bot_runs.id"))


class TradingStateRow(Base):
    """The kill switch: ACTIVE, REDUCING or HALTED. One row; `carrybot halt` writes it."""

    __tablename__ = "trading_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    changed_by: Mapped[str] = mapped_column(String(32))
    changed_at: Mapped[datetime]


class CloseRequestRow(Base):
    """An operator close of a hedge (`carrybot close`, `POST /api/hedges/{id}/close`).

    Written by the command or the dashboard, read by the running bot every cycle while
    `done_at` is empty; the bot records the outcome when it has acted on it.
    """

    __tablename__ = "close_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    hedge_id: Mapped[int] = mapped_column(ForeignKey("hedges.id"), index=True)
    reason: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(32))
    requested_at: Mapped[datetime]
    done_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(Text)


class TransferRow(Base):
    """A universal transfer between wallets (spot <-> COIN-M), written before it is sent.

    One row per request: a retried transfer has a row per attempt. `status` is a
    `TransferStatus`; `exchange_id` is Binance's `tranId` (none in paper and backtest).
    """

    __tablename__ = "transfers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    hedge_id: Mapped[int | None] = mapped_column(ForeignKey("hedges.id"), index=True)
    asset: Mapped[str] = mapped_column(String(16))
    amount: Mapped[Decimal]
    from_wallet: Mapped[str] = mapped_column(String(16))
    to_wallet: Mapped[str] = mapped_column(String(16))
    exchange_id: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(24))
    reason: Mapped[str] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    requested_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]


class PaperStateRow(Base):
    """The simulated account of paper mode (balances, positions, orders), restored on restart."""

    __tablename__ = "paper_state"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime]


class StreamStateRow(Base):
    """One WebSocket stream's health as the running bot last wrote it (`carrybot status`)."""

    __tablename__ = "stream_states"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    endpoint: Mapped[str] = mapped_column(String(256))
    last_message_at: Mapped[datetime | None]
    reconnects: Mapped[int] = mapped_column(Integer)
    messages: Mapped[int] = mapped_column(Integer)
    bad_messages: Mapped[int] = mapped_column(Integer)
    last_error: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime]
