"""Market observations and account snapshots in an in-memory ledger (`bot.persistence.memory`)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

from bot.domain.ledger import BalanceSnapshot, MarketObservation, PositionSnapshot
from bot.persistence.memory_rows import (
    MemoryRepository,
    Row,
    maybe_money,
    money,
    observation_row,
)
from bot.persistence.observations import ObservationRepository, SnapshotRepository


class MemoryObservations(MemoryRepository, ObservationRepository):
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


class MemorySnapshots(MemoryRepository, SnapshotRepository):
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
