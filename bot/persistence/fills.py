"""Fills and funding in the SQL ledger: what was traded, what was paid, what rates settled.

Writes are idempotent on natural keys: a fill recorded twice (same venue, symbol, trade id)
is stored once; a funding payment or a settled rate on (venue, symbol, funding time) too.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from sqlalchemy import select

from bot.domain import Fill, FundingPayment, SettledFunding
from bot.domain.account import funding_usdt
from bot.persistence.base import SqlRepository
from bot.persistence.mapping import fill_of, funding_of
from bot.persistence.models import FillRow, FundingPaymentRow, OrderRow, SettledFundingRow
from bot.persistence.upsert import insert_new

_FILL_KEY = ("venue", "symbol", "trade_id")
_FUNDING_KEY = ("venue", "symbol", "funding_time")


class FillRepository(SqlRepository):
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
                    "venue_price": f.venue_price,
                    "usd_per_usdt": f.usd_per_usdt,
                }
                for f in fills
            ]
            return await insert_new(await s.connection(), "fills", _FILL_KEY, values)

    async def for_order(self, client_order_id: str) -> list[Fill]:
        async with self._sessions() as s:
            rows = await s.scalars(
                select(FillRow)
                .where(FillRow.client_order_id == client_order_id)
                .order_by(FillRow.executed_at, FillRow.id)
            )
            return [fill_of(r) for r in rows]

    async def for_hedge(self, hedge_id: int) -> list[Fill]:
        async with self._sessions() as s:
            rows = await s.scalars(
                select(FillRow)
                .join(OrderRow, FillRow.order_id == OrderRow.id)
                .where(OrderRow.hedge_id == hedge_id)
                .order_by(FillRow.executed_at, FillRow.id)
            )
            return [fill_of(r) for r in rows]

    async def all(self, venue: str | None = None) -> list[Fill]:
        async with self._sessions() as s:
            q = select(FillRow).order_by(FillRow.executed_at, FillRow.id)
            if venue is not None:
                q = q.where(FillRow.venue == venue)
            return [fill_of(r) for r in await s.scalars(q)]


class FundingRepository(SqlRepository):
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
            return await insert_new(conn, "funding_payments", _FUNDING_KEY, values)

    async def payments(
        self, *, venue: str | None = None, hedge_id: int | None = None
    ) -> list[FundingPayment]:
        async with self._sessions() as s:
            q = select(FundingPaymentRow).order_by(FundingPaymentRow.funding_time)
            if venue is not None:
                q = q.where(FundingPaymentRow.venue == venue)
            if hedge_id is not None:
                q = q.where(FundingPaymentRow.hedge_id == hedge_id)
            return [funding_of(r) for r in await s.scalars(q)]

    async def totals_by_hedge(self) -> dict[int, Decimal]:
        """Funding per hedge in USDT (a COIN-M payment, in the coin, at its mark price)."""
        async with self._sessions() as s:
            rows = await s.execute(
                select(
                    FundingPaymentRow.hedge_id,
                    FundingPaymentRow.amount,
                    FundingPaymentRow.asset,
                    FundingPaymentRow.mark_price,
                ).where(FundingPaymentRow.hedge_id.is_not(None))
            )
            totals: dict[int, Decimal] = {}
            for hedge_id, amount, asset, mark in rows:
                if hedge_id is not None:
                    value = funding_usdt(amount, asset, mark)
                    totals[hedge_id] = totals.get(hedge_id, Decimal(0)) + value
            return totals


class SettledFundingRepository(SqlRepository):
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
            return await insert_new(conn, "settled_funding", _FUNDING_KEY, values)

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
