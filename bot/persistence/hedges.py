"""Hedges and their orders in the SQL ledger.

A hedge and the orders it will send are written in one transaction before any is sent;
every state change is checked against the state machine and recorded with its reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain import Hedge, HedgeState, Order, OrderStatus, check_transition
from bot.domain.ledger import HedgeTransition, NewOrder, OrderRecord
from bot.persistence.base import Sessions, SqlRepository
from bot.persistence.cycle_reads import ALL_HEDGES, CycleReads
from bot.persistence.mapping import check_hedge_fields, hedge_of, new_order_row, order_of
from bot.persistence.models import HedgeRow, HedgeTransitionRow, OrderRow


def _apply_hedge_fields(row: HedgeRow, fields: dict[str, Any]) -> None:
    check_hedge_fields(fields)
    for key, value in fields.items():
        setattr(row, key, dict(value) if key == "metrics" else value)


class HedgeRepository(SqlRepository):
    def __init__(self, sessions: Sessions, reads: CycleReads) -> None:
        super().__init__(sessions)
        self._reads = reads

    def _writing(self) -> AbstractAsyncContextManager[None]:
        return self._reads.writing()

    async def create(
        self,
        *,
        uid: str,
        pair: str,
        spot_symbol: str,
        perp_symbol: str,
        target_quantity: Decimal,
        target_notional: Decimal,
        reason: str,
        metrics: dict[str, str],
        at: datetime,
        venue: str,
        orders: Sequence[NewOrder],
        state: HedgeState = HedgeState.OPENING,
        run_id: int | None = None,
    ) -> tuple[Hedge, list[OrderRecord]]:
        """Write a hedge and the orders it will send in one transaction, before any send."""
        async with self._writing(), self._sessions.begin() as s:
            row = HedgeRow(
                uid=uid,
                run_id=run_id,
                pair=pair,
                spot_symbol=spot_symbol,
                perp_symbol=perp_symbol,
                state=state.value,
                target_quantity=target_quantity,
                spot_quantity=Decimal(0),
                perp_quantity=Decimal(0),
                target_notional=target_notional,
                open_reason=reason,
                metrics=dict(metrics),
                created_at=at,
                updated_at=at,
            )
            s.add(row)
            await s.flush()
            s.add(
                HedgeTransitionRow(
                    hedge_id=row.id, from_state=None, to_state=state.value, reason=reason, at=at
                )
            )
            order_rows = [new_order_row(o, hedge_id=row.id, venue=venue, at=at) for o in orders]
            s.add_all(order_rows)
            await s.flush()
            return hedge_of(row), [order_of(o) for o in order_rows]

    async def get(self, hedge_id: int) -> Hedge | None:
        async with self._sessions() as s:
            row = await s.get(HedgeRow, hedge_id)
            return hedge_of(row) if row else None

    async def in_states(self, states: Iterable[HedgeState] | None = None) -> list[Hedge]:
        """Return hedges (in the given states), oldest first."""
        async with self._sessions() as s:
            return await _hedges_in_states(s, states)

    async def active(self) -> list[Hedge]:
        """Return hedges that may hold exposure (anything but CLOSED and FAILED)."""
        return (await self._cycle_hedges())[0]

    async def transition(
        self, hedge_id: int, to: HedgeState, *, reason: str, at: datetime, **fields: Any
    ) -> Hedge:
        """Move a hedge along its state machine, recording the reason; update other fields."""
        async with self._writing(), self._sessions.begin() as s:
            row = await s.get(HedgeRow, hedge_id, with_for_update=True)
            if row is None:
                raise KeyError(f"hedge {hedge_id} not found")
            current = HedgeState(row.state)
            check_transition(current, to)
            _apply_hedge_fields(row, fields)
            row.state = to.value
            row.updated_at = at
            s.add(
                HedgeTransitionRow(
                    hedge_id=hedge_id,
                    from_state=current.value,
                    to_state=to.value,
                    reason=reason,
                    at=at,
                )
            )
            await s.flush()
            return hedge_of(row)

    async def update(self, hedge_id: int, *, at: datetime, **fields: Any) -> Hedge:
        """Update quantities, prices or metrics without changing state."""
        async with self._writing(), self._sessions.begin() as s:
            row = await s.get(HedgeRow, hedge_id, with_for_update=True)
            if row is None:
                raise KeyError(f"hedge {hedge_id} not found")
            _apply_hedge_fields(row, fields)
            row.updated_at = at
            await s.flush()
            return hedge_of(row)

    async def transitions(self, hedge_id: int) -> list[HedgeTransition]:
        async with self._sessions() as s:
            rows = await s.scalars(
                select(HedgeTransitionRow)
                .where(HedgeTransitionRow.hedge_id == hedge_id)
                .order_by(HedgeTransitionRow.id)
            )
            return [
                HedgeTransition(r.hedge_id, r.from_state, r.to_state, r.reason, r.at) for r in rows
            ]

    async def held_since(self, since: datetime) -> list[Hedge]:
        """Return hedges that held a position at some time at or after `since`, oldest first."""
        reads = self._reads
        kept = reads.kept_held(since)
        if kept is not None:
            return kept
        async with self._engine.connect() as conn:
            return await reads.read_held(conn, since)

    async def _cycle_hedges(self) -> tuple[list[Hedge], dict[str, datetime]]:
        """The active hedges and last close per pair: kept copies, else read on a connection."""
        reads = self._reads
        kept = reads.current()
        if kept is not None:
            return kept
        async with self._engine.connect() as conn:
            return await reads.read(conn)


async def _hedges_in_states(s: AsyncSession, states: Iterable[HedgeState] | None) -> list[Hedge]:
    q = ALL_HEDGES
    if states is not None:
        q = q.where(HedgeRow.state.in_([st.value for st in states]))
    return [hedge_of(cast(HedgeRow, r)) for r in await s.execute(q)]


class OrderRepository(SqlRepository):
    async def add(
        self, orders: Sequence[NewOrder], *, venue: str, at: datetime, hedge_id: int | None
    ) -> list[OrderRecord]:
        """Write orders (status PENDING) before they are sent."""
        async with self._sessions.begin() as s:
            rows = [new_order_row(o, hedge_id=hedge_id, venue=venue, at=at) for o in orders]
            s.add_all(rows)
            await s.flush()
            return [order_of(r) for r in rows]

    async def get(self, client_order_id: str) -> OrderRecord | None:
        async with self._sessions() as s:
            row = await s.scalar(
                select(OrderRow).where(OrderRow.client_order_id == client_order_id)
            )
            return order_of(row) if row else None

    async def for_hedge(self, hedge_id: int) -> list[OrderRecord]:
        async with self._sessions() as s:
            rows = await s.scalars(
                select(OrderRow).where(OrderRow.hedge_id == hedge_id).order_by(OrderRow.id)
            )
            return [order_of(r) for r in rows]

    async def apply(
        self, order: Order, *, at: datetime, acked: bool = True, sent_at: datetime | None = None
    ) -> OrderRecord:
        """Record the exchange's view of an order (status, filled, average price)."""
        async with self._sessions.begin() as s:
            row = await s.scalar(
                select(OrderRow).where(OrderRow.client_order_id == order.client_order_id)
            )
            if row is None:
                raise KeyError(f"order {order.client_order_id} is not in the ledger")
            row.status = order.status.value
            row.exchange_order_id = order.exchange_order_id or row.exchange_order_id
            row.filled_quantity = order.filled
            row.average_price = order.average_price
            row.updated_at = at
            if sent_at is not None and row.sent_at is None:
                row.sent_at = sent_at
            if acked and row.acked_at is None:
                row.acked_at = at
            await s.flush()
            return order_of(row)

    async def mark_failed(
        self,
        client_order_id: str,
        *,
        at: datetime,
        status: OrderStatus,
        code: int | None,
        message: str,
        sent_at: datetime | None = None,
    ) -> OrderRecord:
        """Record that an order was rejected, or that its outcome is unknown."""
        async with self._sessions.begin() as s:
            row = await s.scalar(
                select(OrderRow).where(OrderRow.client_order_id == client_order_id)
            )
            if row is None:
                raise KeyError(f"order {client_order_id} is not in the ledger")
            row.status = status.value
            row.error_code = code
            row.error_message = message[:2000]
            row.updated_at = at
            if sent_at is not None and row.sent_at is None:
                row.sent_at = sent_at
            await s.flush()
            return order_of(row)
