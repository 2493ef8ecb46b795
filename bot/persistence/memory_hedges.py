"""Hedges and their orders in an in-memory ledger (see `bot.persistence.memory`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from bot.domain import Hedge, HedgeState, Order, OrderStatus, check_transition
from bot.domain.ledger import HedgeTransition, NewOrder, OrderRecord
from bot.persistence.hedges import HedgeRepository, OrderRepository
from bot.persistence.mapping import check_hedge_fields
from bot.persistence.memory_rows import (
    HEDGE_MONEY,
    ORDER_MONEY,
    MemoryRepository,
    Row,
    Tables,
    assign,
    hedge_of,
    order_of,
    order_row,
)


class MemoryHedges(MemoryRepository, HedgeRepository):
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
        t = self._t
        if t.hedge_by_uid(uid) is not None:
            raise ValueError(f"hedge uid {uid!r} exists already")  # UNIQUE, as the schema
        row = t.add(
            "hedges",
            {
                "uid": uid,
                "run_id": run_id,
                "pair": pair,
                "spot_symbol": spot_symbol,
                "perp_symbol": perp_symbol,
                "state": state.value,
                "target_quantity": target_quantity,
                "spot_quantity": Decimal(0),
                "perp_quantity": Decimal(0),
                "target_notional": target_notional,
                "entry_spot_price": None,
                "entry_perp_price": None,
                "exit_spot_price": None,
                "exit_perp_price": None,
                "open_reason": reason,
                "close_reason": None,
                "metrics": dict(metrics),
                "created_at": at,
                "updated_at": at,
                "opened_at": None,
                "closed_at": None,
            },
        )
        t.hedge_written(row)
        t.add_transition(row["id"], None, state.value, reason, at)
        records = [_add_order(t, o, hedge_id=row["id"], venue=venue, at=at) for o in orders]
        return hedge_of(row, raw=HEDGE_MONEY), records

    async def get(self, hedge_id: int) -> Hedge | None:
        row = self._t.hedge_rows.get(hedge_id)
        return self._t.hedge_read(row) if row is not None else None

    async def in_states(self, states: Iterable[HedgeState] | None = None) -> list[Hedge]:
        t = self._t
        wanted = None if states is None else {st.value for st in states}
        return [t.hedge_read(r) for r in t.rows["hedges"] if wanted is None or r["state"] in wanted]

    async def active(self) -> list[Hedge]:
        return list(self._t.active.values())

    async def transition(
        self, hedge_id: int, to: HedgeState, *, reason: str, at: datetime, **fields: Any
    ) -> Hedge:
        t = self._t
        row = t.hedge_rows.get(hedge_id)
        if row is None:
            raise KeyError(f"hedge {hedge_id} not found")
        current = HedgeState(row["state"])
        check_transition(current, to)
        check_hedge_fields(fields)
        held = assign(row, {**_fields(fields), "state": to.value, "updated_at": at})
        t.hedge_written(row)
        t.add_transition(hedge_id, current.value, to.value, reason, at)
        return hedge_of(held, raw=frozenset(fields))

    async def update(self, hedge_id: int, *, at: datetime, **fields: Any) -> Hedge:
        t = self._t
        row = t.hedge_rows.get(hedge_id)
        if row is None:
            raise KeyError(f"hedge {hedge_id} not found")
        check_hedge_fields(fields)
        held = assign(row, {**_fields(fields), "updated_at": at})
        t.hedge_written(row)
        return hedge_of(held, raw=frozenset(fields))

    async def transitions(self, hedge_id: int) -> list[HedgeTransition]:
        return [
            HedgeTransition(r["hedge_id"], r["from_state"], r["to_state"], r["reason"], r["at"])
            for r in self._t.rows["hedge_transitions"]
            if r["hedge_id"] == hedge_id
        ]

    async def held_since(self, since: datetime) -> list[Hedge]:
        return self._t.held_since(since)


class MemoryOrders(MemoryRepository, OrderRepository):
    async def add(
        self, orders: Sequence[NewOrder], *, venue: str, at: datetime, hedge_id: int | None
    ) -> list[OrderRecord]:
        return [_add_order(self._t, o, hedge_id=hedge_id, venue=venue, at=at) for o in orders]

    async def get(self, client_order_id: str) -> OrderRecord | None:
        row = self._t.orders_by_cid.get(client_order_id)
        return self._t.order_read(row) if row is not None else None

    async def for_hedge(self, hedge_id: int) -> list[OrderRecord]:
        read = self._t.order_read
        return [read(r) for r in self._t.orders_by_hedge.get(hedge_id, ())]

    async def apply(
        self, order: Order, *, at: datetime, acked: bool = True, sent_at: datetime | None = None
    ) -> OrderRecord:
        row = self._t.orders_by_cid.get(order.client_order_id)
        if row is None:
            raise KeyError(f"order {order.client_order_id} is not in the ledger")
        values: Row = {
            "status": order.status.value,
            "exchange_order_id": order.exchange_order_id or row["exchange_order_id"],
            "filled_quantity": order.filled,
            "average_price": order.average_price,
            "updated_at": at,
        }
        if sent_at is not None and row["sent_at"] is None:
            values["sent_at"] = sent_at
        if acked and row["acked_at"] is None:
            values["acked_at"] = at
        self._t.order_changed(row)
        return order_of(assign(row, values), raw=("filled_quantity", "average_price"))

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
        row = self._t.orders_by_cid.get(client_order_id)
        if row is None:
            raise KeyError(f"order {client_order_id} is not in the ledger")
        values: Row = {
            "status": status.value,
            "error_code": code,
            "error_message": message[:2000],
            "updated_at": at,
        }
        if sent_at is not None and row["sent_at"] is None:
            values["sent_at"] = sent_at
        self._t.order_changed(row)
        return order_of(assign(row, values))


def _fields(fields: dict[str, Any]) -> Row:
    """Hedge fields as stored (metrics copied, as the ORM row keeps its own dict)."""
    return {k: dict(v) if k == "metrics" else v for k, v in fields.items()}


def _add_order(
    t: Tables, o: NewOrder, *, hedge_id: int | None, venue: str, at: datetime
) -> OrderRecord:
    if o.client_order_id in t.orders_by_cid:
        raise ValueError(f"client order id {o.client_order_id!r} exists already")
    row = t.add("orders", order_row(o, hedge_id=hedge_id, venue=venue, at=at))
    t.order_written(row)
    return order_of(row, raw=ORDER_MONEY)
