"""What the dashboard shows, read from the ledger only (a running bot's, a stopped one's, or a
backtest's `ledger.db`): the status report, hedges with their funding payments, the equity and
cumulative-funding series, the latest market scan and recent events.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from bot.domain import Event, Severity
from bot.domain.ledger import BotRun
from bot.persistence.models import (
    BalanceSnapshotRow,
    EventRow,
    FundingPaymentRow,
    MarketObservationRow,
    OrderRow,
)
from bot.persistence.repositories import Ledger
from bot.reporting import StatusReport, build_status

SERIES_POINTS = 500


@dataclass(frozen=True, slots=True)
class Point:
    at: datetime
    value: Decimal


@dataclass(frozen=True, slots=True)
class ScanRow:
    """The latest observation of one perpetual, with its funding APR and basis."""

    symbol: str
    observed_at: datetime
    funding_rate: Decimal | None
    funding_apr: Decimal | None
    basis: Decimal | None
    mark_price: Decimal | None
    next_funding_time: datetime | None


@dataclass(frozen=True, slots=True)
class OrderTiming:
    """When one order was sent and acknowledged (the latency and leg-gap metrics use it)."""

    hedge_id: int | None
    leg: str
    purpose: str
    sent_at: datetime
    acked_at: datetime | None


class ReadModel:
    """Queries of the dashboard over one ledger."""

    def __init__(self, ledger: Ledger, *, leverage: int = 1, reuse_seconds: float = 1.0) -> None:
        self.ledger = ledger
        self.leverage = leverage
        self.reuse_seconds = reuse_seconds
        self._report: StatusReport | None = None

    async def status(self, now: datetime) -> StatusReport:
        """The same report as `carrybot status` (one report serves the requests of a second:
        a Prometheus scrape and open pages arriving together read the ledger once)."""
        kept = self._report
        if kept is not None and 0 <= (now - kept.now).total_seconds() < self.reuse_seconds:
            return kept
        self._report = await build_status(self.ledger, now=now, leverage=self.leverage)
        return self._report

    def invalidate(self) -> None:
        """Forget the kept report (after this process wrote to the ledger)."""
        self._report = None

    async def latest_run(self) -> BotRun | None:
        runs = await self.ledger.runs.latest(limit=1)
        return runs[0] if runs else None

    async def funding_by_hedge(self) -> dict[int, list[dict[str, Any]]]:
        """Every funding payment attributed to a hedge, oldest first, as JSON-ready dicts."""
        async with self.ledger.sessions() as s:
            rows = await s.scalars(
                select(FundingPaymentRow)
                .where(FundingPaymentRow.hedge_id.is_not(None))
                .order_by(FundingPaymentRow.funding_time, FundingPaymentRow.id)
            )
            out: dict[int, list[dict[str, Any]]] = {}
            for r in rows:
                assert r.hedge_id is not None
                out.setdefault(r.hedge_id, []).append(
                    {
                        "funding_time": r.funding_time.isoformat(),
                        "symbol": r.symbol,
                        "amount": str(r.amount),
                        "asset": r.asset,
                        "rate": None if r.rate is None else str(r.rate),
                        "position_size": None if r.position_size is None else str(r.position_size),
                    }
                )
            return out

    async def equity_series(self, limit: int = SERIES_POINTS) -> list[Point]:
        """Total equity (USDT) per balance snapshot, the newest `limit`, oldest first."""
        async with self.ledger.sessions() as s:
            rows = await s.execute(
                select(BalanceSnapshotRow.taken_at, BalanceSnapshotRow.value_usdt)
                .where(BalanceSnapshotRow.wallet == "total")
                .where(BalanceSnapshotRow.value_usdt.is_not(None))
                .order_by(BalanceSnapshotRow.taken_at.desc())
                .limit(limit)
            )
            points = [Point(at, value) for at, value in rows if value is not None]
        points.reverse()
        return points

    async def cumulative_funding(self) -> list[Point]:
        """Funding received by the bot's hedges, summed over time (one point per payment)."""
        async with self.ledger.sessions() as s:
            rows = await s.execute(
                select(FundingPaymentRow.funding_time, func.sum(FundingPaymentRow.amount))
                .where(FundingPaymentRow.hedge_id.is_not(None))
                .group_by(FundingPaymentRow.funding_time)
                .order_by(FundingPaymentRow.funding_time)
            )
            total = Decimal(0)
            points = []
            for at, amount in rows:
                total += Decimal(amount)
                points.append(Point(at, total))
        return _thin(points, SERIES_POINTS)

    async def scan(self) -> list[ScanRow]:
        """The latest observation of each perpetual, best funding APR first."""
        async with self.ledger.sessions() as s:
            latest = (
                select(
                    MarketObservationRow.symbol,
                    func.max(MarketObservationRow.observed_at).label("t"),
                )
                .group_by(MarketObservationRow.symbol)
                .subquery()
            )
            rows = await s.scalars(
                select(MarketObservationRow).join(
                    latest,
                    (MarketObservationRow.symbol == latest.c.symbol)
                    & (MarketObservationRow.observed_at == latest.c.t),
                )
            )
            out = [_scan_row(r) for r in rows]
        out.sort(key=lambda r: (r.funding_apr is None, -(r.funding_apr or Decimal(0)), r.symbol))
        return out

    async def events(
        self, *, limit: int = 100, severity: Severity | None = None, kind: str | None = None
    ) -> list[tuple[int, Event]]:
        """The newest events with their ids, newest first, optionally of one severity/kind."""
        async with self.ledger.sessions() as s:
            q = select(EventRow).order_by(EventRow.id.desc()).limit(limit)
            if severity is not None:
                q = q.where(EventRow.severity == severity.value)
            if kind is not None:
                q = q.where(EventRow.kind == kind)
            return [
                (
                    r.id,
                    Event(r.kind, r.message, r.at, Severity(r.severity), r.data or {}, r.hedge_id),
                )
                for r in await s.scalars(q)
            ]

    async def event_counts(self) -> dict[tuple[str, str], int]:
        """How many events of each (kind, severity) the ledger holds."""
        async with self.ledger.sessions() as s:
            rows = await s.execute(
                select(EventRow.kind, EventRow.severity, func.count()).group_by(
                    EventRow.kind, EventRow.severity
                )
            )
            return {(kind, severity): int(n) for kind, severity, n in rows}

    async def order_timings(self) -> list[OrderTiming]:
        """Send and acknowledgement times of every order that was sent."""
        async with self.ledger.sessions() as s:
            rows = await s.execute(
                select(
                    OrderRow.hedge_id,
                    OrderRow.leg,
                    OrderRow.purpose,
                    OrderRow.sent_at,
                    OrderRow.acked_at,
                )
                .where(OrderRow.sent_at.is_not(None))
                .order_by(OrderRow.id)
            )
            return [
                OrderTiming(h, leg, p, sent, acked)
                for h, leg, p, sent, acked in rows
                if sent is not None
            ]


def _scan_row(r: MarketObservationRow) -> ScanRow:
    apr = None
    if r.funding_rate is not None and r.interval_hours:
        apr = r.funding_rate * 24 / r.interval_hours * 365
    basis = None
    if None not in (r.spot_bid, r.spot_ask, r.perp_bid, r.perp_ask):
        assert r.spot_bid is not None and r.spot_ask is not None
        assert r.perp_bid is not None and r.perp_ask is not None
        spot_mid = (r.spot_bid + r.spot_ask) / 2
        if spot_mid > 0:
            basis = (r.perp_bid + r.perp_ask) / 2 / spot_mid - 1
    return ScanRow(
        r.symbol, r.observed_at, r.funding_rate, apr, basis, r.mark_price, r.next_funding_time
    )


def _thin(points: list[Point], limit: int) -> list[Point]:
    """Keep at most `limit` points, evenly spaced, always the last one."""
    if len(points) <= limit:
        return points
    step = len(points) / limit
    kept = [points[int(i * step)] for i in range(limit - 1)]
    kept.append(points[-1])
    return kept
