"""Row mapping of the SQL ledger: ORM rows to domain objects and domain objects to columns."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Table

from bot.domain import (
    Fill,
    FundingPayment,
    Hedge,
    HedgeState,
    Leg,
    OrderPurpose,
    OrderStatus,
    OrderType,
    PositionSide,
    Side,
)
from bot.domain.ledger import BotRun, MarketObservation, NewOrder, OrderRecord
from bot.persistence.models import (
    BotRunRow,
    FillRow,
    FundingPaymentRow,
    HedgeRow,
    MarketObservationRow,
    OrderRow,
)

HEDGE_FIELDS = frozenset(
    {
        "perp_symbol",  # a roll moves the short to a later contract
        "target_quantity",
        "spot_quantity",
        "perp_quantity",
        "target_notional",
        "entry_spot_price",
        "entry_perp_price",
        "exit_spot_price",
        "exit_perp_price",
        "open_reason",
        "close_reason",
        "metrics",
        "opened_at",
        "closed_at",
    }
)
"""The hedge columns `HedgeRepository.update` and `transition` may set."""


def table_of(model: type[Any]) -> Table:
    """Return the core table of an ORM model (for statements that need no ORM objects)."""
    return cast(Table, model.__table__)


def check_hedge_fields(fields: dict[str, Any]) -> None:
    """Refuse fields a hedge update may not set (a typo would otherwise be lost silently)."""
    unknown = set(fields) - HEDGE_FIELDS
    if unknown:
        raise TypeError(f"unknown hedge fields: {', '.join(sorted(unknown))}")


def run_of(r: BotRunRow) -> BotRun:
    """Return the run of a `bot_runs` row."""
    return BotRun(
        r.id,
        r.mode,
        r.exchange_environment,
        r.config_hash,
        r.version,
        r.started_at,
        r.stopped_at,
        r.stop_reason,
    )


def observation_values(o: MarketObservation) -> dict[str, Any]:
    """Return the columns of an observation as written."""
    return {
        "symbol": o.symbol,
        "observed_at": o.observed_at,
        "funding_rate": o.funding_rate,
        "next_funding_time": o.next_funding_time,
        "interval_hours": o.interval_hours,
        "mark_price": o.mark_price,
        "index_price": o.index_price,
        "interest_rate": o.interest_rate,
        "premium": o.premium,
        "spot_bid": o.spot_bid,
        "spot_ask": o.spot_ask,
        "perp_bid": o.perp_bid,
        "perp_ask": o.perp_ask,
    }


def observation_of(r: MarketObservationRow) -> MarketObservation:
    """Return the observation of a `market_observations` row."""
    return MarketObservation(
        r.symbol,
        r.observed_at,
        r.funding_rate,
        r.next_funding_time,
        r.interval_hours,
        r.mark_price,
        r.index_price,
        r.interest_rate,
        r.premium,
        r.spot_bid,
        r.spot_ask,
        r.perp_bid,
        r.perp_ask,
    )


def hedge_of(r: HedgeRow) -> Hedge:
    """Return the hedge of a `hedges` row."""
    return Hedge(
        id=r.id,
        uid=r.uid,
        pair=r.pair,
        spot_symbol=r.spot_symbol,
        perp_symbol=r.perp_symbol,
        state=HedgeState(r.state),
        target_quantity=r.target_quantity,
        spot_quantity=r.spot_quantity,
        perp_quantity=r.perp_quantity,
        target_notional=r.target_notional,
        created_at=r.created_at,
        updated_at=r.updated_at,
        opened_at=r.opened_at,
        closed_at=r.closed_at,
        entry_spot_price=r.entry_spot_price,
        entry_perp_price=r.entry_perp_price,
        exit_spot_price=r.exit_spot_price,
        exit_perp_price=r.exit_perp_price,
        open_reason=r.open_reason,
        close_reason=r.close_reason,
        metrics=dict(r.metrics or {}),
        run_id=r.run_id,
    )


def new_order_row(o: NewOrder, *, hedge_id: int | None, venue: str, at: datetime) -> OrderRow:
    """Return the row of an order written (PENDING) before it is sent."""
    return OrderRow(
        client_order_id=o.client_order_id,
        hedge_id=hedge_id,
        leg=o.leg.value,
        purpose=o.purpose.value,
        venue=venue,
        symbol=o.symbol,
        side=o.side.value,
        order_type=o.type.value,
        quantity=o.quantity,
        price=o.price,
        reduce_only=o.reduce_only,
        position_side=o.position_side.value if o.position_side else None,
        params=order_params(o),
        status=OrderStatus.PENDING.value,
        filled_quantity=Decimal(0),
        created_at=at,
        updated_at=at,
    )


def order_params(o: NewOrder) -> dict[str, Any]:
    """Return the exchange parameters stored with an order."""
    params: dict[str, Any] = {}
    if o.reduce_only:
        params["reduceOnly"] = True
    if o.position_side is not None:
        params["positionSide"] = o.position_side.value
    return params


def order_of(r: OrderRow) -> OrderRecord:
    """Return the order of an `orders` row."""
    return OrderRecord(
        id=r.id,
        client_order_id=r.client_order_id,
        hedge_id=r.hedge_id,
        leg=Leg(r.leg),
        purpose=OrderPurpose(r.purpose),
        venue=r.venue,
        symbol=r.symbol,
        side=Side(r.side),
        type=OrderType(r.order_type),
        quantity=r.quantity,
        status=OrderStatus(r.status),
        filled=r.filled_quantity,
        created_at=r.created_at,
        updated_at=r.updated_at,
        price=r.price,
        reduce_only=r.reduce_only,
        position_side=PositionSide(r.position_side) if r.position_side else None,
        exchange_order_id=r.exchange_order_id,
        average_price=r.average_price,
        error_code=r.error_code,
        error_message=r.error_message,
        sent_at=r.sent_at,
        acked_at=r.acked_at,
    )


def fill_of(r: FillRow) -> Fill:
    """Return the fill of a `fills` row."""
    return Fill(
        trade_id=r.trade_id,
        symbol=r.symbol,
        exchange_order_id=r.exchange_order_id,
        side=Side(r.side),
        price=r.price,
        quantity=r.quantity,
        fee=r.fee,
        fee_asset=r.fee_asset,
        timestamp=r.executed_at,
        is_maker=r.is_maker,
        client_order_id=r.client_order_id,
        realized_pnl=r.realized_pnl,
        fee_usdt=r.fee_usdt,
        venue_price=r.venue_price,
        usd_per_usdt=r.usd_per_usdt,
    )


def funding_of(r: FundingPaymentRow) -> FundingPayment:
    """Return the payment of a `funding_payments` row."""
    return FundingPayment(
        symbol=r.symbol,
        funding_time=r.funding_time,
        amount=r.amount,
        asset=r.asset,
        rate=r.rate,
        mark_price=r.mark_price,
        position_size=r.position_size,
        income_id=r.income_id,
    )
