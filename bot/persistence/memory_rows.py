"""The rows of an in-memory ledger (`bot.persistence.memory`) and the reads kept beside them.

A row is a dict of column name → value as written, so `memory_write` inserts it unchanged.
Reads turn rows into domain objects, normalising money as the `Money` column type does when
it reads a stored value back (`_strip_zeros`), so both ledgers answer alike.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

from bot.domain import (
    Fill,
    Hedge,
    HedgeState,
    Leg,
    OrderPurpose,
    OrderStatus,
    OrderType,
    PositionSide,
    Side,
)
from bot.domain.ledger import (
    CloseRequest,
    MarketObservation,
    NewOrder,
    OrderRecord,
    TradingStatus,
)
from bot.persistence.mapping import observation_values, order_params
from bot.persistence.types import _strip_zeros

Row = dict[str, Any]

TABLES = (
    "bot_runs",
    "market_observations",
    "settled_funding",
    "hedges",
    "hedge_transitions",
    "transfers",
    "orders",
    "fills",
    "funding_payments",
    "balance_snapshots",
    "position_snapshots",
    "events",
)
"""Every table with an integer id, parents before children (the order rows are written in)."""

HEDGE_MONEY = frozenset(
    {
        "target_quantity",
        "spot_quantity",
        "perp_quantity",
        "target_notional",
        "entry_spot_price",
        "entry_perp_price",
        "exit_spot_price",
        "exit_perp_price",
    }
)
ORDER_MONEY = frozenset({"quantity", "price", "filled_quantity", "average_price"})
_ACTIVE_STATES = frozenset(st.value for st in HedgeState if st.is_active)


def money(value: Decimal) -> Decimal:
    """Return `value` as the SQL ledger reads it back (see `Money.process_result_value`)."""
    return _strip_zeros(value)


def maybe_money(value: Decimal | None) -> Decimal | None:
    """`money` of a nullable column."""
    return None if value is None else _strip_zeros(value)


def _money(row: Row, key: str, raw: frozenset[str]) -> Any:
    value = row[key]
    return value if key in raw or value is None else _strip_zeros(value)


def assign(row: Row, values: Row) -> Row:
    """Set `values` on `row` as an ORM flush would; return the row as its ORM object holds it.

    SQLAlchemy writes only the columns whose new value differs (by ==) from the loaded one,
    so an equal value (999.99 for a stored 999.99000) leaves the stored text as it was,
    while the object the write returns carries the new value.
    """
    held = dict(row)
    for key, value in values.items():
        held[key] = value
        if row[key] != value:
            row[key] = value
    return held


def hedge_of(row: Row, raw: frozenset[str] = frozenset()) -> Hedge:
    """Return the hedge of `row`; money columns in `raw` as written, the others as read back."""
    return Hedge(
        id=row["id"],
        uid=row["uid"],
        pair=row["pair"],
        spot_symbol=row["spot_symbol"],
        perp_symbol=row["perp_symbol"],
        state=HedgeState(row["state"]),
        target_quantity=_money(row, "target_quantity", raw),
        spot_quantity=_money(row, "spot_quantity", raw),
        perp_quantity=_money(row, "perp_quantity", raw),
        target_notional=_money(row, "target_notional", raw),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        opened_at=row["opened_at"],
        closed_at=row["closed_at"],
        entry_spot_price=_money(row, "entry_spot_price", raw),
        entry_perp_price=_money(row, "entry_perp_price", raw),
        exit_spot_price=_money(row, "exit_spot_price", raw),
        exit_perp_price=_money(row, "exit_perp_price", raw),
        open_reason=row["open_reason"],
        close_reason=row["close_reason"],
        metrics=dict(row["metrics"] or {}),
        run_id=row["run_id"],
    )


def order_row(o: NewOrder, *, hedge_id: int | None, venue: str, at: datetime) -> Row:
    """Return the row of an order written (PENDING) before it is sent."""
    return {
        "client_order_id": o.client_order_id,
        "hedge_id": hedge_id,
        "leg": o.leg.value,
        "purpose": o.purpose.value,
        "venue": venue,
        "symbol": o.symbol,
        "side": o.side.value,
        "order_type": o.type.value,
        "quantity": o.quantity,
        "price": o.price,
        "reduce_only": o.reduce_only,
        "position_side": o.position_side.value if o.position_side else None,
        "params": order_params(o),
        "status": OrderStatus.PENDING.value,
        "exchange_order_id": None,
        "filled_quantity": Decimal(0),
        "average_price": None,
        "error_code": None,
        "error_message": None,
        "created_at": at,
        "sent_at": None,
        "acked_at": None,
        "updated_at": at,
    }


def order_of(row: Row, raw: Iterable[str] = ()) -> OrderRecord:
    """Return the order of `row` (money columns in `raw` as written, the others as read)."""
    kept = frozenset(raw)
    side = row["position_side"]
    return OrderRecord(
        id=row["id"],
        client_order_id=row["client_order_id"],
        hedge_id=row["hedge_id"],
        leg=Leg(row["leg"]),
        purpose=OrderPurpose(row["purpose"]),
        venue=row["venue"],
        symbol=row["symbol"],
        side=Side(row["side"]),
        type=OrderType(row["order_type"]),
        quantity=_money(row, "quantity", kept),
        status=OrderStatus(row["status"]),
        filled=_money(row, "filled_quantity", kept),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        price=_money(row, "price", kept),
        reduce_only=row["reduce_only"],
        position_side=PositionSide(side) if side else None,
        exchange_order_id=row["exchange_order_id"],
        average_price=_money(row, "average_price", kept),
        error_code=row["error_code"],
        error_message=row["error_message"],
        sent_at=row["sent_at"],
        acked_at=row["acked_at"],
    )


def observation_row(o: MarketObservation) -> Row:
    """Return the row of an observation (the columns the SQL ledger writes)."""
    return observation_values(o)


class Tables:
    """The rows of every table, the natural-key indexes and what each cycle reads, kept."""

    def __init__(self) -> None:
        self.rows: dict[str, list[Row]] = {name: [] for name in TABLES}
        self.trading: TradingStatus | None = None
        self.paper: dict[str, tuple[dict[str, Any], datetime]] = {}  # key -> (state, updated_at)
        self.close_requests: dict[int, CloseRequest] = {}  # pending, by id (never written)
        self.close_request_ids = 0
        # natural keys (idempotent writes)
        self.observation_keys: dict[tuple[str, datetime], Row] = {}
        self.settled_keys: dict[tuple[str, str, datetime], Row] = {}
        self.fill_keys: dict[tuple[str, str, str], Row] = {}
        self.funding_keys: dict[tuple[str, str, datetime], Row] = {}
        # lookups
        self.hedge_rows: dict[int, Row] = {}
        self.hedge_uids: dict[str, Row] = {}
        self.order_rows: dict[int, Row] = {}
        self.orders_by_cid: dict[str, Row] = {}
        self.orders_by_hedge: dict[int, list[Row]] = {}
        self.fills_by_order: dict[int, list[Row]] = {}
        self.fills_read: dict[int, Fill] = {}  # fill id -> its Fill (a fill is never rewritten)
        self._balances: dict[str, list[tuple[datetime, Row]]] = {}  # wallet -> in write order
        self._balances_sorted: dict[str, bool] = {}
        # reads kept until the next hedge write
        self.active: dict[int, Hedge] = {}  # by id, ascending
        self.last_closed: dict[str, datetime] = {}
        self._read: dict[int, Hedge] = {}
        self._orders_read: dict[int, OrderRecord] = {}  # by order id, until its next write
        self._generation = 0
        self._held: tuple[int, datetime, list[Hedge]] | None = None

    def add(self, table: str, values: Row) -> Row:
        """Append a row with the next id of `table`; return it."""
        rows = self.rows[table]
        values["id"] = rows[-1]["id"] + 1 if rows else 1
        rows.append(values)
        return values

    # --- hedges ----------------------------------------------------------------------------
    def hedge_by_uid(self, uid: str) -> Row | None:
        return self.hedge_uids.get(uid)

    def hedge_read(self, row: Row) -> Hedge:
        """Return the hedge of `row` as read back from a database (kept until its next write)."""
        hedge = self._read.get(row["id"])
        if hedge is None:
            hedge = self._read[row["id"]] = hedge_of(row)
        return hedge

    def hedge_written(self, row: Row) -> None:
        """Bring the kept reads up to date after a write of hedge `row`."""
        hedge_id = row["id"]
        self._generation += 1
        self.hedge_rows[hedge_id] = row
        self.hedge_uids[row["uid"]] = row
        self._read.pop(hedge_id, None)
        if row["state"] in _ACTIVE_STATES:
            out_of_order = bool(self.active) and hedge_id < next(reversed(self.active))
            self.active[hedge_id] = self.hedge_read(row)
            if out_of_order:
                self.active = dict(sorted(self.active.items()))
        else:
            self.active.pop(hedge_id, None)
        if row["closed_at"] is not None:
            pair = row["pair"]
            closes = [
                h["closed_at"]
                for h in self.rows["hedges"]
                if h["pair"] == pair and h["closed_at"] is not None
            ]
            self.last_closed[pair] = max(closes)

    def add_transition(
        self, hedge_id: int, from_state: str | None, to_state: str, reason: str, at: datetime
    ) -> None:
        self.add(
            "hedge_transitions",
            {
                "hedge_id": hedge_id,
                "from_state": from_state,
                "to_state": to_state,
                "reason": reason,
                "at": at,
            },
        )

    def held_since(self, since: datetime) -> list[Hedge]:
        """Hedges holding a position at or after `since`, oldest first (see `_CycleReads`)."""
        kept = self._held
        if kept is not None and kept[0] == self._generation and kept[1] <= since:
            return [h for h in kept[2] if h.closed_at is None or h.closed_at >= since]
        held = [
            self.hedge_read(r)
            for r in self.rows["hedges"]
            if r["opened_at"] is not None and (r["closed_at"] is None or r["closed_at"] >= since)
        ]
        self._held = (self._generation, since, held)
        return list(held)

    # --- orders and snapshots ----------------------------------------------------------------
    def order_read(self, row: Row) -> OrderRecord:
        """Return the order of `row` as read back from a database (kept until its next write)."""
        order = self._orders_read.get(row["id"])
        if order is None:
            order = self._orders_read[row["id"]] = order_of(row)
        return order

    def order_changed(self, row: Row) -> None:
        """Forget the kept read of order `row` (its columns were just written)."""
        self._orders_read.pop(row["id"], None)

    def order_written(self, row: Row) -> None:
        self.order_rows[row["id"]] = row
        self.orders_by_cid[row["client_order_id"]] = row
        if row["hedge_id"] is not None:
            self.orders_by_hedge.setdefault(row["hedge_id"], []).append(row)

    def balance_written(self, row: Row) -> None:
        wallet = row["wallet"]
        rows = self._balances.setdefault(wallet, [])
        if rows and row["taken_at"] < rows[-1][0]:
            self._balances_sorted[wallet] = False
        rows.append((row["taken_at"], row))

    def first_value_since(self, wallet: str, since: datetime) -> Decimal | None:
        """value_usdt of the first `wallet` snapshot at or after `since` (by time, then id)."""
        rows = self._balances.get(wallet, [])
        if not self._balances_sorted.get(wallet, True):
            candidates = [(t, r["id"], r) for t, r in rows if t >= since]
            return (
                money(min(candidates, key=lambda c: c[:2])[2]["value_usdt"]) if candidates else None
            )
        lo, hi = 0, len(rows)
        while lo < hi:  # first snapshot taken at or after `since`
            mid = (lo + hi) // 2
            if rows[mid][0] < since:
                lo = mid + 1
            else:
                hi = mid
        return maybe_money(rows[lo][1]["value_usdt"]) if lo < len(rows) else None


class MemoryRepository:
    """Base of the in-memory repositories: they share one `Tables`."""

    def __init__(self, tables: Tables) -> None:  # no session factory: nothing to connect to
        self._t = tables
