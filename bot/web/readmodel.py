"""What the dashboard shows, read from the ledger only (a running bot's, a stopped one's, or a
backtest's `ledger.db`): the status report, hedges with their funding payments, the equity and
cumulative-funding series, the latest market scan and recent events.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from contextvars import ContextVar
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from bot.clock import Clock, SystemClock
from bot.domain import Event, Severity
from bot.domain.ledger import BotRun, CloseRequest
from bot.persistence.models import (
    BalanceSnapshotRow,
    BotRunRow,
    EventRow,
    FundingPaymentRow,
    MarketObservationRow,
    OrderRow,
)
from bot.persistence.repositories import Ledger
from bot.reporting import (
    StatusInputs,
    StatusReport,
    compose_status,
    gather_status,
    refresh_marks,
)
from bot.web.freshness import FAST_TABLES, ledger_marks, write_counter

SERIES_POINTS = 500
_BATCH: ContextVar[AsyncSession | None] = ContextVar("carrybot_web_batch", default=None)
# Inside a request: the views of the ledger version it read (a one-item list, set once).
_REQUEST_VIEWS: ContextVar[list[dict[Hashable, Any] | None] | None] = ContextVar(
    "carrybot_web_request_views", default=None
)
_T = TypeVar("_T")


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
    """Queries of the dashboard over one ledger, kept until the ledger changes.

    Every view a request reads is kept with the ledger's version (`bot.web.freshness`: this
    process's writes, plus one query of maximum ids for other processes' rows), checked once
    per request: a Prometheus scrape of an idle bot then costs one small query instead of
    the status report's queries per hedge. New market observations or balance snapshots
    alone (a running bot adds them every few seconds) refresh the views once they are
    `max_age_seconds` old, any other change at once. The status report is also rebuilt once
    it is `max_age_seconds` old (holding hours and APRs move with time).
    """

    def __init__(
        self,
        ledger: Ledger,
        *,
        leverage: int = 1,
        max_age_seconds: float = 30.0,
        clock: Clock | None = None,
        owns_ledger: bool = False,
    ) -> None:
        self.ledger = ledger
        self.leverage = leverage
        self.max_age_seconds = max_age_seconds
        # True in the running bot: it is the ledger's only writer but for the CLI's control
        # rows (new rows, which the marks see), so this process's counter sees every
        # in-place update and nothing needs a refresh by age for it.
        self.owns_ledger = owns_ledger
        self._clock = clock or SystemClock()
        engine = ledger.sessions.kw.get("bind")
        self._engine = engine if isinstance(engine, AsyncEngine) else None
        self._writes = write_counter(engine) if isinstance(engine, AsyncEngine) else None
        self._version: tuple[Any, ...] | None = None
        self._fast_version: tuple[Any, ...] | None = None
        self._kept_since = 0.0  # clock.monotonic() when the kept views' version was read
        self._kept: dict[Hashable, Any] = {}
        # Per table the kept views read, (this process's writes, newest mark) when they were
        # kept: what changed between two sets of views (/metrics refreshes only those parts).
        self.kept_versions: dict[str, tuple[int | None, Any]] = {}
        self.rebuilds = 0  # status reports built (tests and the bench read it)
        self._inputs: StatusInputs | None = None  # what the last report was computed from
        self._inputs_version: tuple[Any, ...] | None = None
        self._inputs_fast: tuple[Any, ...] | None = None
        self._inputs_at = 0.0

    async def status(self, now: datetime) -> StatusReport:
        """The same report as `carrybot status`, at `now` (the kept one while the ledger is
        unchanged and it is younger than `max_age_seconds`).

        A report is recomputed from kept inputs where it can be: at a later time alone (the
        holding hours and APRs move) without a query, after new market observations or
        balance snapshots alone with only those read again. Over a ledger another process
        writes, the inputs are read afresh once they are `max_age_seconds` old.
        """
        kept = await self._views()
        report: StatusReport | None = kept.get("status")
        if report is not None and 0 <= (now - report.now).total_seconds() < self.max_age_seconds:
            return replace(report, now=now) if report.now != now else report
        version, fast = self._version, self._fast_version
        inputs = self._inputs
        aged = self._clock.monotonic() - self._inputs_at >= self.max_age_seconds
        if inputs is None or version != self._inputs_version or (aged and not self.owns_ledger):
            inputs = await gather_status(self.ledger)
            self._inputs_at = self._clock.monotonic()
        elif fast != self._inputs_fast:
            inputs = await refresh_marks(self.ledger, inputs)
        self._inputs, self._inputs_version, self._inputs_fast = inputs, version, fast
        report = compose_status(inputs, now=now, leverage=self.leverage)
        self.rebuilds += 1
        kept["status"] = report
        return report

    def invalidate(self) -> None:
        """Forget every kept view (after this process wrote to the ledger)."""
        self._kept = {}
        self._version = None
        self.kept_versions = {}
        self._inputs = None

    @contextlib.asynccontextmanager
    async def request(self) -> AsyncIterator[None]:
        """Scope of one HTTP request: the ledger's version is read once inside it."""
        token = _REQUEST_VIEWS.set([None])
        try:
            yield
        finally:
            _REQUEST_VIEWS.reset(token)

    async def _views(self) -> dict[Hashable, Any]:
        """The views kept for the ledger's current version (read once per request).

        A new version gets a new dict, so a request that read an older version stores what
        it computed there, never beside the newer version's views.
        """
        scope = _REQUEST_VIEWS.get()
        if scope is not None and scope[0] is not None:
            return scope[0]
        if self._engine is not None and _BATCH.get() is None:
            async with self._engine.connect() as conn:  # no ORM session: the cheapest query
                marks = await ledger_marks(conn)
        else:
            async with self.session() as s:
                marks = await ledger_marks(s)
        writes = self._writes
        version = (writes.writes if writes else None, *_marks_of(marks, fast=False))
        fast = (writes.fast_writes if writes else None, *_marks_of(marks, fast=True))
        now = self._clock.monotonic()
        if version != self._version or (
            fast != self._fast_version and now - self._kept_since >= self.max_age_seconds
        ):
            self._kept = {}
            self._version, self._fast_version, self._kept_since = version, fast, now
            by_table = writes.by_table if writes else {}
            self.kept_versions = {t: (by_table.get(t), mark) for t, mark in marks.items()}
        if scope is not None:
            scope[0] = self._kept
        return self._kept

    async def current_versions(self) -> dict[str, tuple[int | None, Any]]:
        """`kept_versions` of the views this request reads."""
        await self._views()
        return self.kept_versions

    def monotonic(self) -> float:
        """The injected clock's monotonic reading (what the age bounds are measured in)."""
        return self._clock.monotonic()

    async def _memo(self, key: Hashable, compute: Callable[[], Awaitable[_T]]) -> _T:
        kept = await self._views()
        if key in kept:
            value: _T = kept[key]
            return value
        value = await compute()
        kept[key] = value
        return value

    @contextlib.asynccontextmanager
    async def batch(self) -> AsyncIterator[None]:
        """Run this task's queries inside in one session (one connection checkout)."""
        if _BATCH.get() is not None:
            yield
            return
        async with self.ledger.sessions() as s:
            token = _BATCH.set(s)
            try:
                yield
            finally:
                _BATCH.reset(token)

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """The batch's session inside `batch()`, else a new one."""
        current = _BATCH.get()
        if current is not None:
            yield current
            return
        async with self.ledger.sessions() as s:
            yield s

    async def latest_run(self) -> BotRun | None:
        """The newest bot run (None in an empty ledger)."""
        return await self._memo("run", self._latest_run)

    async def _latest_run(self) -> BotRun | None:
        async with self.session() as s:
            row = await s.scalar(select(BotRunRow).order_by(BotRunRow.id.desc()).limit(1))
            if row is None:
                return None
            return BotRun(
                row.id,
                row.mode,
                row.exchange_environment,
                row.config_hash,
                row.version,
                row.started_at,
                row.stopped_at,
                row.stop_reason,
            )

    async def close_requests(self) -> dict[int, CloseRequest]:
        """The close requests the bot has not carried out yet, by hedge id."""
        return await self._memo("close_requests", self._close_requests)

    async def _close_requests(self) -> dict[int, CloseRequest]:
        return {r.hedge_id: r for r in await self.ledger.close_requests.pending()}

    async def funding_by_hedge(self) -> dict[int, list[dict[str, Any]]]:
        """Every funding payment attributed to a hedge, oldest first, as JSON-ready dicts."""
        return await self._memo("funding_by_hedge", self._funding_by_hedge)

    async def _funding_by_hedge(self) -> dict[int, list[dict[str, Any]]]:
        """Every funding payment attributed to a hedge, oldest first, as JSON-ready dicts."""
        async with self.session() as s:
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
        return await self._memo(("equity", limit), lambda: self._equity_series(limit))

    async def _equity_series(self, limit: int = SERIES_POINTS) -> list[Point]:
        """Total equity (USDT) per balance snapshot, the newest `limit`, oldest first."""
        async with self.session() as s:
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
        return await self._memo("cumulative_funding", self._cumulative_funding)

    async def _cumulative_funding(self) -> list[Point]:
        """Funding received by the bot's hedges, summed over time (one point per payment)."""
        async with self.session() as s:
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
        return await self._memo("scan", self._scan)

    async def _scan(self) -> list[ScanRow]:
        """The latest observation of each perpetual, best funding APR first."""
        async with self.session() as s:
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
        return await self._memo(
            ("events", limit, severity, kind), lambda: self._events(limit, severity, kind)
        )

    async def _events(
        self, limit: int, severity: Severity | None, kind: str | None
    ) -> list[tuple[int, Event]]:
        """The newest events with their ids, newest first, optionally of one severity/kind."""
        async with self.session() as s:
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
        return await self._memo("event_counts", self._event_counts)

    async def _event_counts(self) -> dict[tuple[str, str], int]:
        """How many events of each (kind, severity) the ledger holds."""
        async with self.session() as s:
            rows = await s.execute(
                select(EventRow.kind, EventRow.severity, func.count()).group_by(
                    EventRow.kind, EventRow.severity
                )
            )
            return {(kind, severity): int(n) for kind, severity, n in rows}

    async def order_timings(self) -> list[OrderTiming]:
        """Send and acknowledgement times of every order that was sent."""
        return await self._memo("order_timings", self._order_timings)

    async def _order_timings(self) -> list[OrderTiming]:
        """Send and acknowledgement times of every order that was sent."""
        async with self.session() as s:
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


def _marks_of(marks: dict[str, Any], *, fast: bool) -> tuple[Any, ...]:
    return tuple(mark for table, mark in marks.items() if (table in FAST_TABLES) == fast)


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
