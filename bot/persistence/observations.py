"""Market observations and account snapshots in the SQL ledger.

An observation is kept per (symbol, minute): a second one for the same minute replaces it.
Balance and position snapshots are appended as taken.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

from sqlalchemy import bindparam, func, insert, select

from bot.domain.ledger import BalanceSnapshot, MarketObservation, PositionSnapshot
from bot.persistence.base import SqlRepository
from bot.persistence.mapping import observation_of, observation_values, table_of
from bot.persistence.models import BalanceSnapshotRow, MarketObservationRow, PositionSnapshotRow
from bot.persistence.upsert import insert_replacing

_OBSERVATION_KEY = ("symbol", "observed_at")
_FIRST_VALUE_SINCE = (
    select(BalanceSnapshotRow.value_usdt)
    .where(
        BalanceSnapshotRow.wallet == bindparam("wallet"),
        BalanceSnapshotRow.taken_at >= bindparam("since"),
    )
    .order_by(BalanceSnapshotRow.taken_at, BalanceSnapshotRow.id)
    .limit(1)
)


class ObservationRepository(SqlRepository):
    async def upsert(self, observations: Iterable[MarketObservation]) -> int:
        """Write observations; a second one for the same (symbol, observed_at) replaces it."""
        values = [observation_values(o) for o in observations]
        if not values:
            return 0
        async with self._engine.begin() as conn:
            await insert_replacing(conn, "market_observations", _OBSERVATION_KEY, values)
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
            return [observation_of(r) for r in reversed(rows)]


class SnapshotRepository(SqlRepository):
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
                await conn.execute(insert(table_of(BalanceSnapshotRow)), balance_rows)
            if position_rows:
                await conn.execute(insert(table_of(PositionSnapshotRow)), position_rows)

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
