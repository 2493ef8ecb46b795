"""Fills, funding payments and settled rates in an in-memory ledger (`bot.persistence.memory`)."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from bot.domain import Fill, FundingPayment, SettledFunding, Side
from bot.domain.account import funding_usdt
from bot.persistence.fills import FillRepository, FundingRepository, SettledFundingRepository
from bot.persistence.memory_rows import MemoryRepository, Row, maybe_money, money


class MemoryFills(MemoryRepository, FillRepository):
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
                    "venue_price": f.venue_price,
                    "usd_per_usdt": f.usd_per_usdt,
                },
            )
            t.fill_keys[key] = row
            if order is not None:
                t.fills_by_order.setdefault(order["id"], []).append(row)
            new += 1
        return new

    async def for_order(self, client_order_id: str) -> list[Fill]:
        rows = [r for r in self._t.rows["fills"] if r["client_order_id"] == client_order_id]
        return self._read(_by_time(rows, "executed_at"))

    async def for_hedge(self, hedge_id: int) -> list[Fill]:
        t = self._t
        rows = [
            f
            for o in t.orders_by_hedge.get(hedge_id, ())
            for f in t.fills_by_order.get(o["id"], ())
        ]
        return self._read(_by_time(rows, "executed_at"))

    async def all(self, venue: str | None = None) -> list[Fill]:
        rows = [r for r in self._t.rows["fills"] if venue is None or r["venue"] == venue]
        return self._read(_by_time(rows, "executed_at"))

    def _read(self, rows: list[Row]) -> list[Fill]:
        """The fills of `rows` as read back, each converted once (fills are never rewritten)."""
        kept = self._t.fills_read
        out: list[Fill] = []
        for r in rows:
            fill = kept.get(r["id"])
            if fill is None:
                fill = kept[r["id"]] = _fill(r)
            out.append(fill)
        return out


class MemoryFunding(MemoryRepository, FundingRepository):
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

    async def totals_by_hedge(self) -> dict[int, Decimal]:
        totals: dict[int, Decimal] = {}
        for r in self._t.rows["funding_payments"]:
            hedge_id = r["hedge_id"]
            if hedge_id is not None:
                value = funding_usdt(money(r["amount"]), r["asset"], maybe_money(r["mark_price"]))
                totals[hedge_id] = totals.get(hedge_id, Decimal(0)) + value
        return totals


class MemorySettledFunding(MemoryRepository, SettledFundingRepository):
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


def _by_time(rows: list[Row], column: str) -> list[Row]:
    return sorted(rows, key=lambda r: (r[column], r["id"]))


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
        venue_price=maybe_money(r["venue_price"]),
        usd_per_usdt=maybe_money(r["usd_per_usdt"]),
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
