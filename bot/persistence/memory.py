"""A ledger held in memory: the repositories' interface over Python lists, for backtests.

`MemoryLedger` answers every call of `Ledger` (the trading loop, executor, reconciler and
risk gate cannot tell them apart) without a database round trip: a replayed hour costs
microseconds instead of the ~1 ms of an async SQLAlchemy transaction. Rows are kept as the
database would store them (column name → value, ids from 1, natural keys idempotent) and
`bot.persistence.memory_write.write_ledger` puts them into a migrated database in one
transaction at the end, so the file reads like any bot's ledger (`carrybot status`).

What a read returns is what the SQL ledger returns: money read back is normalised as
`Money` normalises a stored value (trailing zeros stripped), while the object a write
returns keeps the values just written, as the ORM row of that write does. The results of a
backtest are therefore the same to the last digit with either ledger.

Nothing here may be shared between processes: `carrybot halt` cannot reach a backtest.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from bot.domain import (
    Event,
    Fill,
    FundingPayment,
    Hedge,
    HedgeState,
    Order,
    OrderStatus,
    PositionSide,
    SettledFunding,
    Severity,
    Side,
    check_transition,
)
from bot.domain.ledger import (
    BalanceSnapshot,
    BotRun,
    HedgeTransition,
    MarketObservation,
    NewOrder,
    OrderRecord,
    PositionSnapshot,
    TradingState,
    TradingStatus,
)
from bot.persistence.memory_rows import (
    HEDGE_MONEY,
    ORDER_MONEY,
    Row,
    Tables,
    assign,
    hedge_of,
    maybe_money,
    money,
    observation_row,
    order_of,
    order_row,
)
from bot.persistence.repositories import (
    _HEDGE_FIELDS,
    CycleView,
    EventRepository,
    FillRepository,
    FundingRepository,
    HedgeRepository,
    Ledger,
    ObservationRepository,
    OrderRepository,
    PaperStateRepository,
    RunRepository,
    SettledFundingRepository,
    SnapshotRepository,
    TradingStateRepository,
)

_FINAL = frozenset(st.value for st in OrderStatus if st.is_final)


class _Memory:
    """Base of the in-memory repositories: they share one `Tables`."""

    def __init__(self, tables: Tables) -> None:  # no session factory: nothing to connect to
        self._t = tables


class MemoryRuns(_Memory, RunRepository):
    async def start(
        self, *, mode: str, environment: str, config_hash: str, version: str, at: datetime
    ) -> BotRun:
        row = self._t.add(
            "bot_runs",
            {
                "mode": mode,
                "exchange_environment": environment,
                "config_hash": config_hash,
                "version": version,
                "started_at": at,
                "stopped_at": None,
                "stop_reason": None,
            },
        )
        return _run(row)

    async def stop(self, run_id: int, *, at: datetime, reason: str) -> None:
        for row in self._t.rows["bot_runs"]:
            if row["id"] == run_id:
                row.update(stopped_at=at, stop_reason=reason)

    async def latest(self, limit: int = 10) -> list[BotRun]:
        return [_run(r) for r in reversed(self._t.rows["bot_runs"][-limit:])]


class MemoryObservations(_Memory, ObservationRepository):
    async def upsert(self, observations: Iterable[MarketObservation]) -> int:
        t = self._t
        n = 0
        for o in observations:
            values = observation_row(o)
            key = (o.symbol, o.observed_at)
            kept = t.observation_keys.get(key)
            if kept is None:
                t.observation_keys[key] = t.add("market_observations", values)
            else:
                kept.update(values)
            n += 1
        return n

    async def latest_time(self) -> datetime | None:
        rows = self._t.rows["market_observations"]
        return max((r["observed_at"] for r in rows), default=None)

    async def for_symbol(
        self, symbol: str, since: datetime | None = None, limit: int = 1000
    ) -> list[MarketObservation]:
        rows = [
            r
            for r in self._t.rows["market_observations"]
            if r["symbol"] == symbol and (since is None or r["observed_at"] >= since)
        ]
        rows.sort(key=lambda r: r["observed_at"])
        return [_observation(r) for r in rows[-limit:]] if limit > 0 else []

    async def count(self) -> int:
        return len(self._t.rows["market_observations"])


class MemorySettledFunding(_Memory, SettledFundingRepository):
    async def upsert(self, venue: str, rows: Iterable[SettledFunding]) -> int:
        t = self._t
        new = 0
        for r in rows:
            key = (venue, r.symbol, r.funding_time)
            if key in t.settled_keys:
                continue
            t.settled_keys[key] = t.add(
                "settled_funding",
                {
                    "venue": venue,
                    "symbol": r.symbol,
                    "funding_time": r.funding_time,
                    "rate": r.rate,
                    "mark_price": r.mark_price,
                },
            )
            new += 1
        return new

    async def history(self, venue: str, symbol: str, limit: int = 100) -> list[SettledFunding]:
        rows = [
            r
            for r in self._t.rows["settled_funding"]
            if r["venue"] == venue and r["symbol"] == symbol
        ]
        rows.sort(key=lambda r: r["funding_time"])
        return [
            SettledFunding(
                r["symbol"], r["funding_time"], money(r["rate"]), maybe_money(r["mark_price"])
            )
            for r in (rows[-limit:] if limit > 0 else [])
        ]


class MemoryHedges(_Memory, HedgeRepository):
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

    async def by_uid(self, uid: str) -> Hedge | None:
        row = self._t.hedge_by_uid(uid)
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
        _check_fields(fields)
        held = assign(row, {**_fields(fields), "state": to.value, "updated_at": at})
        t.hedge_written(row)
        t.add_transition(hedge_id, current.value, to.value, reason, at)
        return hedge_of(held, raw=frozenset(fields))

    async def update(self, hedge_id: int, *, at: datetime, **fields: Any) -> Hedge:
        t = self._t
        row = t.hedge_rows.get(hedge_id)
        if row is None:
            raise KeyError(f"hedge {hedge_id} not found")
        _check_fields(fields)
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

    async def last_closed_at(self) -> dict[str, datetime]:
        return dict(self._t.last_closed)


class MemoryOrders(_Memory, OrderRepository):
    async def add(
        self, orders: Sequence[NewOrder], *, venue: str, at: datetime, hedge_id: int | None
    ) -> list[OrderRecord]:
        return [_add_order(self._t, o, hedge_id=hedge_id, venue=venue, at=at) for o in orders]

    async def get(self, client_order_id: str) -> OrderRecord | None:
        row = self._t.orders_by_cid.get(client_order_id)
        return order_of(row) if row is not None else None

    async def for_hedge(self, hedge_id: int) -> list[OrderRecord]:
        return [order_of(r) for r in self._t.orders_by_hedge.get(hedge_id, ())]

    async def unresolved(self) -> list[OrderRecord]:
        return [order_of(r) for r in self._t.rows["orders"] if r["status"] not in _FINAL]

    async def mark_sent(self, client_order_id: str, *, at: datetime) -> None:
        row = self._t.orders_by_cid.get(client_order_id)
        if row is not None:
            row.update(sent_at=at, updated_at=at)

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
        return order_of(assign(row, values))


class MemoryFills(_Memory, FillRepository):
    async def record(
        self, venue: str, fills: Iterable[Fill], *, fee_usdt: dict[str, Decimal] | None = None
    ) -> int:
        t = self._t
        new = 0
        for f in fills:
            key = (venue, f.symbol, f.trade_id)
            if key in t.fill_keys:
                continue
            order = t.orders_by_cid.get(f.client_order_id or "")
            row = t.add(
                "fills",
                {
                    "venue": venue,
                    "trade_id": f.trade_id,
                    "order_id": order["id"] if order is not None else None,
                    "client_order_id": f.client_order_id,
                    "exchange_order_id": f.exchange_order_id,
                    "symbol": f.symbol,
                    "side": f.side.value,
                    "price": f.price,
                    "quantity": f.quantity,
                    "fee": f.fee,
                    "fee_asset": f.fee_asset,
                    "fee_usdt": (fee_usdt or {}).get(f.trade_id),
                    "realized_pnl": f.realized_pnl,
                    "is_maker": f.is_maker,
                    "executed_at": f.timestamp,
                },
            )
            t.fill_keys[key] = row
            if order is not None:
                t.fills_by_order.setdefault(order["id"], []).append(row)
            new += 1
        return new

    async def for_order(self, client_order_id: str) -> list[Fill]:
        rows = [r for r in self._t.rows["fills"] if r["client_order_id"] == client_order_id]
        return [_fill(r) for r in _by_time(rows, "executed_at")]

    async def for_hedge(self, hedge_id: int) -> list[Fill]:
        t = self._t
        rows = [
            f
            for o in t.orders_by_hedge.get(hedge_id, ())
            for f in t.fills_by_order.get(o["id"], ())
        ]
        return [_fill(r) for r in _by_time(rows, "executed_at")]

    async def all(self, venue: str | None = None) -> list[Fill]:
        rows = [r for r in self._t.rows["fills"] if venue is None or r["venue"] == venue]
        return [_fill(r) for r in _by_time(rows, "executed_at")]

    async def fees_usdt_by_hedge(self) -> dict[int, Decimal]:
        t = self._t
        totals: dict[int, Decimal] = {}
        for row in t.rows["fills"]:
            order = t.order_rows.get(row["order_id"])
            hedge_id = order["hedge_id"] if order is not None else None
            if hedge_id is not None:
                fee = maybe_money(row["fee_usdt"]) or Decimal(0)
                totals[hedge_id] = totals.get(hedge_id, Decimal(0)) + fee
        return totals


class MemoryFunding(_Memory, FundingRepository):
    async def record(
        self,
        venue: str,
        payments: Iterable[FundingPayment],
        *,
        hedge_ids: dict[str, int] | None = None,
    ) -> int:
        ids = hedge_ids or {}
        return await self.record_owned(venue, [(p, ids.get(p.symbol)) for p in payments])

    async def record_owned(
        self, venue: str, owned: Iterable[tuple[FundingPayment, int | None]]
    ) -> int:
        t = self._t
        new = 0
        for p, hedge_id in owned:
            key = (venue, p.symbol, p.funding_time)
            if key in t.funding_keys:
                continue
            t.funding_keys[key] = t.add(
                "funding_payments",
                {
                    "venue": venue,
                    "symbol": p.symbol,
                    "funding_time": p.funding_time,
                    "amount": p.amount,
                    "asset": p.asset,
                    "rate": p.rate,
                    "mark_price": p.mark_price,
                    "position_size": p.position_size,
                    "hedge_id": hedge_id,
                    "income_id": p.income_id,
                },
            )
            new += 1
        return new

    async def payments(
        self, *, venue: str | None = None, hedge_id: int | None = None
    ) -> list[FundingPayment]:
        rows = [
            r
            for r in self._t.rows["funding_payments"]
            if (venue is None or r["venue"] == venue)
            and (hedge_id is None or r["hedge_id"] == hedge_id)
        ]
        return [_payment(r) for r in sorted(rows, key=lambda r: r["funding_time"])]

    async def latest_time(self, venue: str) -> datetime | None:
        rows = self._t.rows["funding_payments"]
        return max((r["funding_time"] for r in rows if r["venue"] == venue), default=None)

    async def totals_by_hedge(self) -> dict[int, Decimal]:
        totals: dict[int, Decimal] = {}
        for r in self._t.rows["funding_payments"]:
            hedge_id = r["hedge_id"]
            if hedge_id is not None:
                totals[hedge_id] = totals.get(hedge_id, Decimal(0)) + money(r["amount"])
        return totals


class MemorySnapshots(_Memory, SnapshotRepository):
    async def record_balances(self, snapshots: Iterable[BalanceSnapshot]) -> None:
        await self.record(snapshots, ())

    async def record_positions(self, snapshots: Iterable[PositionSnapshot]) -> None:
        await self.record((), snapshots)

    async def record(
        self, balances: Iterable[BalanceSnapshot], positions: Iterable[PositionSnapshot]
    ) -> None:
        t = self._t
        for b in balances:
            row = t.add(
                "balance_snapshots",
                {
                    "taken_at": b.taken_at,
                    "wallet": b.wallet,
                    "asset": b.asset,
                    "free": b.free,
                    "locked": b.locked,
                    "total": b.total,
                    "value_usdt": b.value_usdt,
                },
            )
            t.balance_written(row)
        for p in positions:
            t.add(
                "position_snapshots",
                {
                    "taken_at": p.taken_at,
                    "symbol": p.symbol,
                    "position_side": p.position_side.value,
                    "size": p.size,
                    "is_short": p.is_short,
                    "entry_price": p.entry_price,
                    "mark_price": p.mark_price,
                    "liquidation_price": p.liquidation_price,
                    "unrealized_pnl": p.unrealized_pnl,
                    "margin_ratio": p.margin_ratio,
                    "leverage": p.leverage,
                },
            )

    async def latest_balances(self) -> list[BalanceSnapshot]:
        latest: dict[str, datetime] = {}
        for r in self._t.rows["balance_snapshots"]:
            if r["wallet"] not in latest or r["taken_at"] > latest[r["wallet"]]:
                latest[r["wallet"]] = r["taken_at"]
        rows = [
            r for r in self._t.rows["balance_snapshots"] if r["taken_at"] == latest[r["wallet"]]
        ]
        rows.sort(key=lambda r: (r["wallet"], r["asset"]))
        return [
            BalanceSnapshot(
                r["taken_at"],
                r["wallet"],
                r["asset"],
                money(r["free"]),
                money(r["locked"]),
                maybe_money(r["value_usdt"]),
            )
            for r in rows
        ]

    async def first_value_since(self, wallet: str, since: datetime) -> Decimal | None:
        return self._t.first_value_since(wallet, since)

    async def latest_positions(self) -> list[PositionSnapshot]:
        rows = self._t.rows["position_snapshots"]
        if not rows:
            return []
        latest = max(r["taken_at"] for r in rows)
        chosen = sorted((r for r in rows if r["taken_at"] == latest), key=lambda r: r["symbol"])
        return [
            PositionSnapshot(
                r["taken_at"],
                r["symbol"],
                PositionSide(r["position_side"]),
                money(r["size"]),
                r["is_short"],
                money(r["entry_price"]),
                money(r["mark_price"]),
                maybe_money(r["liquidation_price"]),
                money(r["unrealized_pnl"]),
                maybe_money(r["margin_ratio"]),
                r["leverage"],
            )
            for r in chosen
        ]


class MemoryEvents(_Memory, EventRepository):
    def __init__(self, tables: Tables, run_id: int | None = None) -> None:
        super().__init__(tables)
        self.run_id = run_id

    async def emit(self, event: Event) -> None:
        self._t.add(
            "events",
            {
                "at": event.at,
                "kind": event.kind,
                "severity": event.severity.value,
                "message": event.message,
                "data": dict(event.data),
                "hedge_id": event.hedge_id,
                "run_id": self.run_id,
            },
        )

    async def recent(self, kind: str | None = None, limit: int = 100) -> list[Event]:
        rows = [r for r in self._t.rows["events"] if kind is None or r["kind"] == kind]
        return [
            Event(
                r["kind"],
                r["message"],
                r["at"],
                Severity(r["severity"]),
                json.loads(json.dumps(r["data"])) if r["data"] else {},
                r["hedge_id"],
            )
            for r in reversed(rows[-limit:] if limit > 0 else [])
        ]


class MemoryTradingState(_Memory, TradingStateRepository):
    async def get(self) -> TradingStatus | None:
        return self._t.trading

    async def set(
        self, state: TradingState, *, reason: str, changed_by: str, at: datetime
    ) -> TradingStatus:
        self._t.trading = TradingStatus(state, reason, changed_by, at)
        return self._t.trading


class MemoryPaperState(_Memory, PaperStateRepository):
    async def load(self, key: str) -> dict[str, Any] | None:
        saved = self._t.paper.get(key)
        return json.loads(json.dumps(saved[0])) if saved is not None else None  # a JSON copy

    async def save(self, key: str, state: dict[str, Any], *, at: datetime) -> None:
        self._t.paper[key] = (state, at)  # the caller's fresh dict (`to_state()`), kept as is


class MemoryLedger(Ledger):
    """`Ledger` in memory; `write_ledger` stores it in a database at the end of a run."""

    def __init__(self, tables: Tables | None = None, run_id: int | None = None) -> None:
        # The SQL ledger's repositories are replaced one by one; no session factory exists.
        self.tables = tables or Tables()
        t = self.tables
        self.runs = MemoryRuns(t)
        self.observations = MemoryObservations(t)
        self.settled_funding = MemorySettledFunding(t)
        self.hedges = MemoryHedges(t)
        self.orders = MemoryOrders(t)
        self.fills = MemoryFills(t)
        self.funding = MemoryFunding(t)
        self.snapshots = MemorySnapshots(t)
        self.events = MemoryEvents(t, run_id)
        self.trading_state = MemoryTradingState(t)
        self.paper_state = MemoryPaperState(t)

    def for_run(self, run_id: int) -> MemoryLedger:
        """Return a ledger over the same rows whose events are tagged with `run_id`."""
        return MemoryLedger(self.tables, run_id)

    async def cycle_view(self) -> CycleView:
        t = self.tables
        return CycleView(t.trading, list(t.active.values()), dict(t.last_closed))


# --- rows -> domain ----------------------------------------------------------------------


def _check_fields(fields: dict[str, Any]) -> None:
    unknown = set(fields) - _HEDGE_FIELDS
    if unknown:
        raise TypeError(f"unknown hedge fields: {', '.join(sorted(unknown))}")


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


def _by_time(rows: list[Row], column: str) -> list[Row]:
    return sorted(rows, key=lambda r: (r[column], r["id"]))


def _run(r: Row) -> BotRun:
    return BotRun(
        r["id"],
        r["mode"],
        r["exchange_environment"],
        r["config_hash"],
        r["version"],
        r["started_at"],
        r["stopped_at"],
        r["stop_reason"],
    )


def _observation(r: Row) -> MarketObservation:
    return MarketObservation(
        r["symbol"],
        r["observed_at"],
        maybe_money(r["funding_rate"]),
        r["next_funding_time"],
        r["interval_hours"],
        maybe_money(r["mark_price"]),
        maybe_money(r["index_price"]),
        maybe_money(r["interest_rate"]),
        maybe_money(r["premium"]),
        maybe_money(r["spot_bid"]),
        maybe_money(r["spot_ask"]),
        maybe_money(r["perp_bid"]),
        maybe_money(r["perp_ask"]),
    )


def _fill(r: Row) -> Fill:
    return Fill(
        trade_id=r["trade_id"],
        symbol=r["symbol"],
        exchange_order_id=r["exchange_order_id"],
        side=Side(r["side"]),
        price=money(r["price"]),
        quantity=money(r["quantity"]),
        fee=money(r["fee"]),
        fee_asset=r["fee_asset"],
        timestamp=r["executed_at"],
        is_maker=r["is_maker"],
        client_order_id=r["client_order_id"],
        realized_pnl=maybe_money(r["realized_pnl"]),
        fee_usdt=maybe_money(r["fee_usdt"]),
    )


def _payment(r: Row) -> FundingPayment:
    return FundingPayment(
        symbol=r["symbol"],
        funding_time=r["funding_time"],
        amount=money(r["amount"]),
        asset=r["asset"],
        rate=maybe_money(r["rate"]),
        mark_price=maybe_money(r["mark_price"]),
        position_size=maybe_money(r["position_size"]),
        income_id=r["income_id"],
    )
