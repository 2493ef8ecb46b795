"""Repositories: the only code that touches ORM rows. They take and return domain objects.

Writes on natural keys are idempotent: a fill recorded twice (same venue, symbol, trade id)
is stored once; funding on (venue, symbol, funding time) likewise; market observations on
(symbol, minute) keep the latest values.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import cache
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from bot.domain import (
    Event,
    Fill,
    FundingPayment,
    Hedge,
    HedgeState,
    Leg,
    Order,
    OrderPurpose,
    OrderStatus,
    OrderType,
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
from bot.persistence.models import (
    BalanceSnapshotRow,
    BotRunRow,
    EventRow,
    FillRow,
    FundingPaymentRow,
    HedgeRow,
    HedgeTransitionRow,
    MarketObservationRow,
    OrderRow,
    PaperStateRow,
    PositionSnapshotRow,
    SettledFundingRow,
    TradingStateRow,
)

Sessions = async_sessionmaker[AsyncSession]


def _insert(session: AsyncSession, table: Any) -> Any:
    """Return a dialect-specific INSERT that supports ON CONFLICT."""
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"unsupported database dialect {name}")


class _Repository:
    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions

    @property
    def _engine(self) -> AsyncEngine:
        """The engine, for hot paths that run core statements without an ORM session."""
        return _engine_of(self._sessions)


def _engine_of(sessions: Sessions) -> AsyncEngine:
    bind = sessions.kw.get("bind")
    if not isinstance(bind, AsyncEngine):
        raise TypeError("the session factory must be bound to an AsyncEngine")
    return bind


async def _insert_new(
    conn: AsyncConnection, model: type[Any], keys: tuple[str, ...], values: list[dict[str, Any]]
) -> int:
    """INSERT rows, skipping those whose `keys` exist; return how many were new.

    The statement is built once per dialect and executed once per row, in the caller's
    transaction, so the count stays exact on every backend (an executemany's rowcount is
    not) and the compiled statement is reused (a multi-row VALUES is compiled every time).
    """
    stmt = _insert_ignoring(conn.dialect.name, model.__tablename__, keys)
    new = 0
    for row in values:
        result = await conn.execute(stmt, row)
        new += int(result.rowcount or 0)
    return new


class RunRepository(_Repository):
    async def start(
        self, *, mode: str, environment: str, config_hash: str, version: str, at: datetime
    ) -> BotRun:
        """Record the start of a bot run and return it."""
        async with self._sessions.begin() as s:
            row = BotRunRow(
                mode=mode,
                exchange_environment=environment,
                config_hash=config_hash,
                version=version,
                started_at=at,
            )
            s.add(row)
            await s.flush()
            return _run(row)

    async def stop(self, run_id: int, *, at: datetime, reason: str) -> None:
        """Record the end of a bot run."""
        async with self._sessions.begin() as s:
            await s.execute(
                update(BotRunRow)
                .where(BotRunRow.id == run_id)
                .values(stopped_at=at, stop_reason=reason)
            )

    async def latest(self, limit: int = 10) -> list[BotRun]:
        async with self._sessions() as s:
            rows = await s.scalars(select(BotRunRow).order_by(BotRunRow.id.desc()).limit(limit))
            return [_run(r) for r in rows]


class ObservationRepository(_Repository):
    async def upsert(self, observations: Iterable[MarketObservation]) -> int:
        """Write observations; a second one for the same (symbol, observed_at) replaces it."""
        values = [_obs_values(o) for o in observations]
        if not values:
            return 0
        async with self._engine.begin() as conn:
            # One statement, built once per dialect, executed for every row.
            await conn.execute(_observation_upsert(conn.dialect.name), values)
        return len(values)

    async def latest_time(self) -> datetime | None:
        """Return the time of the newest observation (the last snapshot the bot stored)."""
        async with self._sessions() as s:
            value: datetime | None = await s.scalar(
                select(func.max(MarketObservationRow.observed_at))
            )
            return value

    async def for_symbol(
        self, symbol: str, since: datetime | None = None, limit: int = 1000
    ) -> list[MarketObservation]:
        async with self._sessions() as s:
            q = select(MarketObservationRow).where(MarketObservationRow.symbol == symbol)
            if since is not None:
                q = q.where(MarketObservationRow.observed_at >= since)
            q = q.order_by(MarketObservationRow.observed_at.desc()).limit(limit)
            rows = list(await s.scalars(q))
            return [_obs(r) for r in reversed(rows)]

    async def count(self) -> int:
        async with self._sessions() as s:
            return int(await s.scalar(select(func.count()).select_from(MarketObservationRow)) or 0)


class SettledFundingRepository(_Repository):
    async def upsert(self, venue: str, rows: Iterable[SettledFunding]) -> int:
        """Store settled funding rates; existing (venue, symbol, time) rows are kept."""
        values = [
            {
                "venue": venue,
                "symbol": r.symbol,
                "funding_time": r.funding_time,
                "rate": r.rate,
                "mark_price": r.mark_price,
            }
            for r in rows
        ]
        if not values:
            return 0
        async with self._engine.begin() as conn:
            return await _insert_new(conn, SettledFundingRow, _FUNDING_KEY, values)

    async def history(self, venue: str, symbol: str, limit: int = 100) -> list[SettledFunding]:
        """Return the `limit` most recent settlements of `symbol`, oldest first."""
        async with self._sessions() as s:
            rows = list(
                await s.scalars(
                    select(SettledFundingRow)
                    .where(SettledFundingRow.venue == venue, SettledFundingRow.symbol == symbol)
                    .order_by(SettledFundingRow.funding_time.desc())
                    .limit(limit)
                )
            )
        return [
            SettledFunding(r.symbol, r.funding_time, r.rate, r.mark_price) for r in reversed(rows)
        ]


class _CycleReads:
    """What each cycle reads, kept as read until the next write that changes it.

    Kept: the active hedges, the last close per pair, the hedges held since a time (funding
    capture) and, for a private ledger, the trading state. Hedges are written only by the
    bot's own process, through `HedgeRepository`; the trading state also by `carrybot
    halt`/`resume` from another process, so it is kept only for a ledger marked private
    (`keep_trading_state`: a backtest's throwaway file). Each write through this engine bumps
    `generation` when it begins and again when it ends, committed or not; a read keeps what
    it read only if no write began or ended meanwhile, so a copy is never older than a write
    made through the same engine.
    """

    __slots__ = (
        "active",
        "generation",
        "held",
        "held_read_at",
        "held_since",
        "last_closed",
        "private",
        "read_at",
        "status",
        "status_read_at",
    )

    def __init__(self) -> None:
        self.generation = 0
        self.read_at = -1  # the generation `active` and `last_closed` were read at
        self.active: tuple[Hedge, ...] = ()
        self.last_closed: dict[str, datetime] = {}
        self.private = False
        self.status_read_at = -1  # the generation `status` was read at
        self.status: TradingStatus | None = None
        self.held_read_at = -1  # the generation `held` was read at
        self.held_since: datetime | None = None
        self.held: tuple[Hedge, ...] = ()

    def invalidate(self) -> None:
        self.generation += 1

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[None]:
        """Mark the kept reads stale before a write and again once it is over."""
        self.invalidate()
        try:
            yield
        finally:
            self.invalidate()

    def current(self) -> tuple[list[Hedge], dict[str, datetime]] | None:
        """Return copies of the kept hedge reads, or None when a hedge was written since."""
        if self.read_at != self.generation:
            return None
        return list(self.active), dict(self.last_closed)

    async def read(self, conn: AsyncConnection) -> tuple[list[Hedge], dict[str, datetime]]:
        """Return the kept reads, else read both on `conn` (and keep them if still current)."""
        kept = self.current()
        if kept is not None:
            return kept
        generation = self.generation
        active = [_hedge(cast(HedgeRow, r)) for r in await conn.execute(_ACTIVE_HEDGES)]
        closed = {pair: at for pair, at in await conn.execute(_LAST_CLOSED) if at is not None}
        if generation == self.generation:
            self.active, self.last_closed, self.read_at = tuple(active), dict(closed), generation
        return active, closed

    def kept_held(self, since: datetime) -> list[Hedge] | None:
        """Hedges held at or after `since`, from a read kept for an earlier `since`, or None.

        A hedge held at or after `since` was also held after any earlier time, so a current
        read from an earlier `since` holds every answer; the filter drops those closed before.
        """
        kept_since = self.held_since
        if self.held_read_at != self.generation or kept_since is None or kept_since > since:
            return None
        return [h for h in self.held if h.closed_at is None or h.closed_at >= since]

    async def read_held(self, conn: AsyncConnection, since: datetime) -> list[Hedge]:
        """Read the hedges held at or after `since` on `conn` (kept while still current)."""
        generation = self.generation
        rows = await conn.execute(_HELD_SINCE, {"since": since})
        held = [_hedge(cast(HedgeRow, r)) for r in rows]
        if generation == self.generation:
            self.held, self.held_since, self.held_read_at = tuple(held), since, generation
        return held

    def kept_status(self) -> tuple[bool, TradingStatus | None]:
        """Return (True, status) when a private ledger's trading state is kept and current."""
        if self.private and self.status_read_at == self.generation:
            return True, self.status
        return False, None

    async def read_status(self, conn: AsyncConnection) -> TradingStatus | None:
        """Read the trading state on `conn` (kept when the ledger is private)."""
        generation = self.generation
        status = _trading_status((await conn.execute(_TRADING_STATE)).first())
        if self.private and generation == self.generation:
            self.status, self.status_read_at = status, generation
        return status


_CYCLE_READS: weakref.WeakKeyDictionary[Any, _CycleReads] = weakref.WeakKeyDictionary()


def _cycle_reads(sessions: Sessions | AsyncEngine) -> _CycleReads:
    """Return the reads kept for the engine behind `sessions` (one per engine)."""
    engine = (sessions if isinstance(sessions, AsyncEngine) else _engine_of(sessions)).sync_engine
    reads = _CYCLE_READS.get(engine)
    if reads is None:
        reads = _CYCLE_READS[engine] = _CycleReads()
    return reads


def keep_trading_state(engine: AsyncEngine) -> None:
    """Keep the trading state between cycles: only for a ledger no other process writes."""
    _cycle_reads(engine).private = True


def _trading_status(row: Any) -> TradingStatus | None:
    if row is None:
        return None
    return TradingStatus(TradingState(row.state), row.reason, row.changed_by, row.changed_at)


@dataclass(frozen=True, slots=True)
class CycleView:
    """What one evaluation cycle reads from the ledger (see `Ledger.cycle_view`)."""

    trading: TradingStatus | None
    active: list[Hedge]
    last_closed_at: dict[str, datetime]


class HedgeRepository(_Repository):
    def _writing(self) -> AbstractAsyncContextManager[None]:
        return _cycle_reads(self._sessions).writing()

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
            order_rows = [_new_order_row(o, hedge_id=row.id, venue=venue, at=at) for o in orders]
            s.add_all(order_rows)
            await s.flush()
            return _hedge(row), [_order(o) for o in order_rows]

    async def get(self, hedge_id: int) -> Hedge | None:
        async with self._sessions() as s:
            row = await s.get(HedgeRow, hedge_id)
            return _hedge(row) if row else None

    async def by_uid(self, uid: str) -> Hedge | None:
        async with self._sessions() as s:
            row = await s.scalar(select(HedgeRow).where(HedgeRow.uid == uid))
            return _hedge(row) if row else None

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
            return _hedge(row)

    async def update(self, hedge_id: int, *, at: datetime, **fields: Any) -> Hedge:
        """Update quantities, prices or metrics without changing state."""
        async with self._writing(), self._sessions.begin() as s:
            row = await s.get(HedgeRow, hedge_id, with_for_update=True)
            if row is None:
                raise KeyError(f"hedge {hedge_id} not found")
            _apply_hedge_fields(row, fields)
            row.updated_at = at
            await s.flush()
            return _hedge(row)

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
        reads = _cycle_reads(self._sessions)
        kept = reads.kept_held(since)
        if kept is not None:
            return kept
        async with self._engine.connect() as conn:
            return await reads.read_held(conn, since)

    async def last_closed_at(self) -> dict[str, datetime]:
        """Return, per pair, when its most recent hedge was closed (for cooldowns)."""
        return (await self._cycle_hedges())[1]

    async def _cycle_hedges(self) -> tuple[list[Hedge], dict[str, datetime]]:
        """The active hedges and last close per pair: kept copies, else read on a connection."""
        reads = _cycle_reads(self._sessions)
        kept = reads.current()
        if kept is not None:
            return kept
        async with self._engine.connect() as conn:
            return await reads.read(conn)


def _table(model: type[Any]) -> Table:
    return cast(Table, model.__table__)


# Statements read every evaluation cycle, built once: rows, not ORM objects, are enough.
_ALL_HEDGES = select(_table(HedgeRow)).order_by(HedgeRow.id)
_ACTIVE_HEDGES = _ALL_HEDGES.where(
    HedgeRow.state.in_([st.value for st in HedgeState if st.is_active])
)
_LAST_CLOSED = (
    select(HedgeRow.pair, func.max(HedgeRow.closed_at))
    .where(HedgeRow.closed_at.is_not(None))
    .group_by(HedgeRow.pair)
)
_TRADING_STATE = select(_table(TradingStateRow)).where(TradingStateRow.id == 1)
_HELD_SINCE = _ALL_HEDGES.where(
    HedgeRow.opened_at.is_not(None),
    HedgeRow.closed_at.is_(None) | (HedgeRow.closed_at >= bindparam("since")),
)
_FIRST_VALUE_SINCE = (
    select(BalanceSnapshotRow.value_usdt)
    .where(
        BalanceSnapshotRow.wallet == bindparam("wallet"),
        BalanceSnapshotRow.taken_at >= bindparam("since"),
    )
    .order_by(BalanceSnapshotRow.taken_at, BalanceSnapshotRow.id)
    .limit(1)
)


async def _hedges_in_states(s: AsyncSession, states: Iterable[HedgeState] | None) -> list[Hedge]:
    q = _ALL_HEDGES
    if states is not None:
        q = q.where(HedgeRow.state.in_([st.value for st in states]))
    return [_hedge(cast(HedgeRow, r)) for r in await s.execute(q)]


_FUNDING_KEY = ("venue", "symbol", "funding_time")


_HEDGE_FIELDS = {
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


def _apply_hedge_fields(row: HedgeRow, fields: dict[str, Any]) -> None:
    unknown = set(fields) - _HEDGE_FIELDS
    if unknown:
        raise TypeError(f"unknown hedge fields: {', '.join(sorted(unknown))}")
    for key, value in fields.items():
        setattr(row, key, dict(value) if key == "metrics" else value)


class OrderRepository(_Repository):
    async def add(
        self, orders: Sequence[NewOrder], *, venue: str, at: datetime, hedge_id: int | None
    ) -> list[OrderRecord]:
        """Write orders (status PENDING) before they are sent."""
        async with self._sessions.begin() as s:
            rows = [_new_order_row(o, hedge_id=hedge_id, venue=venue, at=at) for o in orders]
            s.add_all(rows)
            await s.flush()
            return [_order(r) for r in rows]

    async def get(self, client_order_id: str) -> OrderRecord | None:
        async with self._sessions() as s:
            row = await s.scalar(
                select(OrderRow).where(OrderRow.client_order_id == client_order_id)
            )
            return _order(row) if row else None

    async def for_hedge(self, hedge_id: int) -> list[OrderRecord]:
        async with self._sessions() as s:
            rows = await s.scalars(
                select(OrderRow).where(OrderRow.hedge_id == hedge_id).order_by(OrderRow.id)
            )
            return [_order(r) for r in rows]

    async def unresolved(self) -> list[OrderRecord]:
        """Return orders whose final state the ledger does not know yet."""
        final = [st.value for st in OrderStatus if st.is_final]
        async with self._sessions() as s:
            rows = await s.scalars(
                select(OrderRow).where(OrderRow.status.not_in(final)).order_by(OrderRow.id)
            )
            return [_order(r) for r in rows]

    async def mark_sent(self, client_order_id: str, *, at: datetime) -> None:
        async with self._sessions.begin() as s:
            await s.execute(
                update(OrderRow)
                .where(OrderRow.client_order_id == client_order_id)
                .values(sent_at=at, updated_at=at)
            )

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
            return _order(row)

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
            return _order(row)


class FillRepository(_Repository):
    async def record(
        self, venue: str, fills: Iterable[Fill], *, fee_usdt: dict[str, Decimal] | None = None
    ) -> int:
        """Store fills; a fill already stored (same venue, symbol, trade id) is skipped.

        Returns how many were new. `fee_usdt` maps trade id to the fee converted to USDT.
        """
        fills = list(fills)
        if not fills:
            return 0
        async with self._sessions.begin() as s:
            cids = {f.client_order_id for f in fills if f.client_order_id}
            order_ids: dict[str, int] = {}
            if cids:
                rows = await s.execute(
                    select(OrderRow.client_order_id, OrderRow.id).where(
                        OrderRow.client_order_id.in_(cids)
                    )
                )
                order_ids = {cid: oid for cid, oid in rows}
            values = [
                {
                    "venue": venue,
                    "trade_id": f.trade_id,
                    "order_id": order_ids.get(f.client_order_id or ""),
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
                }
                for f in fills
            ]
            stmt = (
                _insert(s, FillRow)
                .values(values)
                .on_conflict_do_nothing(index_elements=["venue", "symbol", "trade_id"])
            )
            result = await s.execute(stmt)
            return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def for_order(self, client_order_id: str) -> list[Fill]:
        async with self._sessions() as s:
            rows = await s.scalars(
                select(FillRow)
                .where(FillRow.client_order_id == client_order_id)
                .order_by(FillRow.executed_at, FillRow.id)
            )
            return [_fill(r) for r in rows]

    async def for_hedge(self, hedge_id: int) -> list[Fill]:
        async with self._sessions() as s:
            rows = await s.scalars(
                select(FillRow)
                .join(OrderRow, FillRow.order_id == OrderRow.id)
                .where(OrderRow.hedge_id == hedge_id)
                .order_by(FillRow.executed_at, FillRow.id)
            )
            return [_fill(r) for r in rows]

    async def all(self, venue: str | None = None) -> list[Fill]:
        async with self._sessions() as s:
            q = select(FillRow).order_by(FillRow.executed_at, FillRow.id)
            if venue is not None:
                q = q.where(FillRow.venue == venue)
            return [_fill(r) for r in await s.scalars(q)]

    async def fees_usdt_by_hedge(self) -> dict[int, Decimal]:
        """Return the sum of converted fees per hedge (fills without a conversion count 0)."""
        async with self._sessions() as s:
            rows = await s.execute(
                select(OrderRow.hedge_id, FillRow.fee_usdt)
                .join(OrderRow, FillRow.order_id == OrderRow.id)
                .where(OrderRow.hedge_id.is_not(None))
            )
            totals: dict[int, Decimal] = {}
            for hedge_id, fee in rows:
                if hedge_id is not None:
                    totals[hedge_id] = totals.get(hedge_id, Decimal(0)) + (fee or Decimal(0))
            return totals


class FundingRepository(_Repository):
    async def record(
        self,
        venue: str,
        payments: Iterable[FundingPayment],
        *,
        hedge_ids: dict[str, int] | None = None,
    ) -> int:
        """Store funding payments once per (venue, symbol, funding time); return how many were new.

        `hedge_ids` maps a perpetual symbol to the hedge that held it.
        """
        ids = hedge_ids or {}
        return await self.record_owned(venue, [(p, ids.get(p.symbol)) for p in payments])

    async def record_owned(
        self, venue: str, owned: Iterable[tuple[FundingPayment, int | None]]
    ) -> int:
        """Like `record`, each payment with the hedge that held it (or None), in one transaction."""
        values = [
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
            }
            for p, hedge_id in owned
        ]
        if not values:
            return 0
        async with self._engine.begin() as conn:
            return await _insert_new(conn, FundingPaymentRow, _FUNDING_KEY, values)

    async def payments(
        self, *, venue: str | None = None, hedge_id: int | None = None
    ) -> list[FundingPayment]:
        async with self._sessions() as s:
            q = select(FundingPaymentRow).order_by(FundingPaymentRow.funding_time)
            if venue is not None:
                q = q.where(FundingPaymentRow.venue == venue)
            if hedge_id is not None:
                q = q.where(FundingPaymentRow.hedge_id == hedge_id)
            return [_funding(r) for r in await s.scalars(q)]

    async def latest_time(self, venue: str) -> datetime | None:
        async with self._sessions() as s:
            value: datetime | None = await s.scalar(
                select(func.max(FundingPaymentRow.funding_time)).where(
                    FundingPaymentRow.venue == venue
                )
            )
            return value

    async def totals_by_hedge(self) -> dict[int, Decimal]:
        async with self._sessions() as s:
            rows = await s.execute(
                select(FundingPaymentRow.hedge_id, FundingPaymentRow.amount).where(
                    FundingPaymentRow.hedge_id.is_not(None)
                )
            )
            totals: dict[int, Decimal] = {}
            for hedge_id, amount in rows:
                if hedge_id is not None:
                    totals[hedge_id] = totals.get(hedge_id, Decimal(0)) + amount
            return totals


class SnapshotRepository(_Repository):
    async def record_balances(self, snapshots: Iterable[BalanceSnapshot]) -> None:
        await self.record(snapshots, ())

    async def record_positions(self, snapshots: Iterable[PositionSnapshot]) -> None:
        await self.record((), snapshots)

    async def record(
        self, balances: Iterable[BalanceSnapshot], positions: Iterable[PositionSnapshot]
    ) -> None:
        """Write balance and position snapshots in one transaction."""
        balance_rows = [
            {
                "taken_at": b.taken_at,
                "wallet": b.wallet,
                "asset": b.asset,
                "free": b.free,
                "locked": b.locked,
                "total": b.total,
                "value_usdt": b.value_usdt,
            }
            for b in balances
        ]
        position_rows = [
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
            }
            for p in positions
        ]
        if not balance_rows and not position_rows:
            return
        async with self._engine.begin() as conn:
            if balance_rows:
                await conn.execute(insert(_table(BalanceSnapshotRow)), balance_rows)
            if position_rows:
                await conn.execute(insert(_table(PositionSnapshotRow)), position_rows)

    async def latest_balances(self) -> list[BalanceSnapshot]:
        """Return the most recent balance snapshot of each wallet."""
        async with self._sessions() as s:
            latest = (
                select(BalanceSnapshotRow.wallet, func.max(BalanceSnapshotRow.taken_at).label("t"))
                .group_by(BalanceSnapshotRow.wallet)
                .subquery()
            )
            rows = await s.scalars(
                select(BalanceSnapshotRow)
                .join(
                    latest,
                    (BalanceSnapshotRow.wallet == latest.c.wallet)
                    & (BalanceSnapshotRow.taken_at == latest.c.t),
                )
                .order_by(BalanceSnapshotRow.wallet, BalanceSnapshotRow.asset)
            )
            return [
                BalanceSnapshot(r.taken_at, r.wallet, r.asset, r.free, r.locked, r.value_usdt)
                for r in rows
            ]

    async def first_value_since(self, wallet: str, since: datetime) -> Decimal | None:
        """Return the value_usdt of the first `wallet` snapshot at or after `since`."""
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(_FIRST_VALUE_SINCE, {"wallet": wallet, "since": since})
            ).first()
            value: Decimal | None = row.value_usdt if row is not None else None
            return value

    async def latest_positions(self) -> list[PositionSnapshot]:
        async with self._sessions() as s:
            t = await s.scalar(select(func.max(PositionSnapshotRow.taken_at)))
            if t is None:
                return []
            rows = await s.scalars(
                select(PositionSnapshotRow)
                .where(PositionSnapshotRow.taken_at == t)
                .order_by(PositionSnapshotRow.symbol)
            )
            return [
                PositionSnapshot(
                    r.taken_at,
                    r.symbol,
                    PositionSide(r.position_side),
                    r.size,
                    r.is_short,
                    r.entry_price,
                    r.mark_price,
                    r.liquidation_price,
                    r.unrealized_pnl,
                    r.margin_ratio,
                    r.leverage,
                )
                for r in rows
            ]


class EventRepository(_Repository):
    """Events in the ledger; also an `EventSink` for components that emit them."""

    def __init__(self, sessions: Sessions, run_id: int | None = None) -> None:
        super().__init__(sessions)
        self.run_id = run_id

    async def emit(self, event: Event) -> None:
        async with self._sessions.begin() as s:
            s.add(
                EventRow(
                    at=event.at,
                    kind=event.kind,
                    severity=event.severity.value,
                    message=event.message,
                    data=dict(event.data),
                    hedge_id=event.hedge_id,
                    run_id=self.run_id,
                )
            )

    async def recent(self, kind: str | None = None, limit: int = 100) -> list[Event]:
        """Return the newest events (optionally of one kind), newest first."""
        async with self._sessions() as s:
            q = select(EventRow).order_by(EventRow.id.desc()).limit(limit)
            if kind is not None:
                q = q.where(EventRow.kind == kind)
            return [
                Event(r.kind, r.message, r.at, Severity(r.severity), r.data or {}, r.hedge_id)
                for r in await s.scalars(q)
            ]


class TradingStateRepository(_Repository):
    _ROW_ID = 1

    async def get(self) -> TradingStatus | None:
        """Return the kill-switch state, or None when it was never set (treated as ACTIVE)."""
        async with self._sessions() as s:
            return await self.read(s)

    @staticmethod
    async def read(s: AsyncSession) -> TradingStatus | None:
        """Return the kill-switch state within session `s` (None when never set)."""
        return _trading_status((await s.execute(_TRADING_STATE)).first())

    async def set(
        self, state: TradingState, *, reason: str, changed_by: str, at: datetime
    ) -> TradingStatus:
        async with _cycle_reads(self._sessions).writing(), self._sessions.begin() as s:
            stmt = _insert(s, TradingStateRow).values(
                id=self._ROW_ID,
                state=state.value,
                reason=reason,
                changed_by=changed_by,
                changed_at=at,
            )
            await s.execute(
                stmt.on_conflict_do_update(
                    index_elements=["id"],
                    set_={
                        "state": state.value,
                        "reason": reason,
                        "changed_by": changed_by,
                        "changed_at": stmt.excluded.changed_at,
                    },
                )
            )
        return TradingStatus(state, reason, changed_by, at)


class PaperStateRepository(_Repository):
    async def load(self, key: str) -> dict[str, Any] | None:
        async with self._sessions() as s:
            row = await s.get(PaperStateRow, key)
            return dict(row.state) if row else None

    async def save(self, key: str, state: dict[str, Any], *, at: datetime) -> None:
        async with self._sessions.begin() as s:
            stmt = _insert(s, PaperStateRow).values(key=key, state=state, updated_at=at)
            await s.execute(
                stmt.on_conflict_do_update(
                    index_elements=["key"],
                    set_={"state": stmt.excluded.state, "updated_at": stmt.excluded.updated_at},
                )
            )


class Ledger:
    """All repositories over one session factory."""

    def __init__(self, sessions: Sessions, run_id: int | None = None) -> None:
        self.sessions = sessions
        self.runs = RunRepository(sessions)
        self.observations = ObservationRepository(sessions)
        self.settled_funding = SettledFundingRepository(sessions)
        self.hedges = HedgeRepository(sessions)
        self.orders = OrderRepository(sessions)
        self.fills = FillRepository(sessions)
        self.funding = FundingRepository(sessions)
        self.snapshots = SnapshotRepository(sessions)
        self.events = EventRepository(sessions, run_id)
        self.trading_state = TradingStateRepository(sessions)
        self.paper_state = PaperStateRepository(sessions)

    def for_run(self, run_id: int) -> Ledger:
        """Return a ledger whose events are tagged with `run_id`."""
        return Ledger(self.sessions, run_id)

    async def cycle_view(self) -> CycleView:
        """Return the trading state, the active hedges and the last closes in one round trip.

        The trading state is read every time (`carrybot halt` writes it from another
        process) unless the ledger is private (`keep_trading_state`); the hedges are read
        again only after this process wrote one.
        """
        reads = _cycle_reads(self.sessions)
        kept, status = reads.kept_status()
        hedges = reads.current()
        if kept and hedges is not None:
            return CycleView(status, *hedges)
        async with _engine_of(self.sessions).connect() as conn:
            if not kept:
                status = await reads.read_status(conn)
            active, last_closed = await reads.read(conn)
            return CycleView(status, active, last_closed)


# --- row -> domain -----------------------------------------------------------------------


def _run(r: BotRunRow) -> BotRun:
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


@cache
def _insert_ignoring(dialect: str, table_name: str, keys: tuple[str, ...]) -> Any:
    """Return INSERT … ON CONFLICT (keys) DO NOTHING into the table `table_name`."""
    if dialect not in {"postgresql", "sqlite"}:
        raise NotImplementedError(f"unsupported database dialect {dialect}")
    table = HedgeRow.metadata.tables[table_name]
    stmt = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
    return stmt.on_conflict_do_nothing(index_elements=list(keys))


@cache
def _observation_upsert(dialect: str) -> Any:
    """Return the INSERT … ON CONFLICT (symbol, observed_at) DO UPDATE of observations."""
    if dialect not in {"postgresql", "sqlite"}:
        raise NotImplementedError(f"unsupported database dialect {dialect}")
    table = _table(MarketObservationRow)
    stmt = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
    keys = [c.name for c in table.columns if c.name not in {"id", "symbol", "observed_at"}]
    return stmt.on_conflict_do_update(
        index_elements=["symbol", "observed_at"], set_={k: stmt.excluded[k] for k in keys}
    )


def _obs_values(o: MarketObservation) -> dict[str, Any]:
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


def _obs(r: MarketObservationRow) -> MarketObservation:
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


def _hedge(r: HedgeRow) -> Hedge:
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


def _new_order_row(o: NewOrder, *, hedge_id: int | None, venue: str, at: datetime) -> OrderRow:
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
        params=_order_params(o),
        status=OrderStatus.PENDING.value,
        filled_quantity=Decimal(0),
        created_at=at,
        updated_at=at,
    )


def _order_params(o: NewOrder) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if o.reduce_only:
        params["reduceOnly"] = True
    if o.position_side is not None:
        params["positionSide"] = o.position_side.value
    return params


def _order(r: OrderRow) -> OrderRecord:
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


def _fill(r: FillRow) -> Fill:
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
    )


def _funding(r: FundingPaymentRow) -> FundingPayment:
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
