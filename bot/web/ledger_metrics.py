"""The ledger's part of /metrics, kept between scrapes and refreshed only where it changed.

Each part follows the tables it is read from (`ReadModel.current_versions`, the versions of
the views the request reads): the hedge figures (the status report: P&L, open and closed
hedges, notional per pair) follow hedges, orders, fills, funding and market marks; event
counts follow events and read only the newest events (from `LOOKBACK_IDS` below the last
one counted, each counted once); the order round-trip and leg-gap histograms follow orders
and read only the newest orders (the same way) plus those not yet acknowledged. A scrape of
an unchanged ledger reuses the metric families built before, so it costs the version query
alone. Over a ledger another process writes (`carrybot web` beside a
running bot) the parts are also refreshed once they are `max_age_seconds` old, since an
in-place update there moves no id.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from sqlalchemy import or_, select

from bot.persistence.models import EventRow, OrderRow
from bot.reporting import StatusReport
from bot.web.readmodel import ReadModel

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
LEG_GAP_BUCKETS = (0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0)
RECONNECT_KINDS = ("exchange.recovered",)
# What each part reads. The status report reads events only for its alerts list, which
# /metrics does not show.
HEDGE_TABLES = (
    "hedges",
    "hedge_transitions",
    "orders",
    "fills",
    "funding_payments",
    "market_observations",
    "balance_snapshots",
    "trading_state",
    "bot_runs",
)
EVENT_TABLES = ("events",)
ORDER_TABLES = ("orders",)
# New rows are read from this many ids below the newest one counted: on PostgreSQL a
# transaction holding a lower id can commit after one holding a higher id.
LOOKBACK_IDS = 100


@dataclass
class HedgeFigures:
    """The status report's figures that do not move with time."""

    trading_state: str
    funding: Decimal
    fees: Decimal
    basis_pnl: Decimal
    net: Decimal
    open_hedges: int
    closed_hedges: int
    notional_by_pair: dict[str, Decimal]
    last_snapshot_at: datetime | None
    equity: Decimal | None
    mode: str


@dataclass
class _Histogram:
    bounds: Sequence[float]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    n: int = 0

    def observe(self, value: float) -> None:
        if not self.counts:
            self.counts = [0] * len(self.bounds)
        for i, bound in enumerate(self.bounds):
            if value <= bound:
                self.counts[i] += 1
        self.total += value
        self.n += 1

    def buckets(self) -> list[tuple[str, float]]:
        counts = self.counts or [0] * len(self.bounds)
        out = [(repr(float(b)), float(c)) for b, c in zip(self.bounds, counts, strict=True)]
        out.append(("+Inf", float(self.n)))
        return out


class _Part:
    """When one part was refreshed: the versions of its tables, and the clock then."""

    def __init__(self, tables: Sequence[str]) -> None:
        self.tables = tables
        self.key: tuple[Any, ...] | None = None
        self.at = 0.0

    def due(self, versions: dict[str, Any], read: ReadModel, now: float) -> bool:
        key = tuple(versions.get(t) for t in self.tables)
        stale = not read.owns_ledger and now - self.at >= read.max_age_seconds
        if key == self.key and not stale:
            return False
        self.key, self.at = key, now
        return True


class LedgerMetrics:
    """The ledger's metric families, refreshed part by part as the ledger changes."""

    def __init__(self) -> None:
        self._parts = (_Part(HEDGE_TABLES), _Part(EVENT_TABLES), _Part(ORDER_TABLES))
        self.figures: HedgeFigures | None = None
        self._event_counts: dict[tuple[str, str], int] = {}
        self._last_event_id = 0
        self._last_order_id = 0
        self._unacked: set[int] = set()  # orders seen without an acknowledgement yet
        self._latency: dict[str, _Histogram] = {}
        self._first_sent: dict[tuple[int, str], dict[str, datetime]] = {}
        self._recent_events: set[int] = set()  # ids counted within LOOKBACK_IDS of the last
        self._recent_orders: set[int] = set()
        self._families: list[Metric] = []
        self.refreshes = 0  # parts refreshed (tests read it)

    async def families(self, read: ReadModel, now: datetime) -> list[Metric]:
        """The ledger's families for this scrape (rebuilt only when a part changed)."""
        versions = await read.current_versions()
        mono = read.monotonic()
        due = [p.due(versions, read, mono) for p in self._parts]
        if any(due):
            async with read.batch():  # one connection for the parts that changed
                if due[0]:
                    self.figures = await _hedge_figures(read, now)
                if due[1]:
                    await self._read_events(read)
                if due[2]:
                    await self._read_orders(read)
        if any(due) or not self._families:
            self.refreshes += 1
            self._families = list(self._build())
        return self._families

    async def _read_events(self, read: ReadModel) -> None:
        floor = max(0, self._last_event_id - LOOKBACK_IDS)
        async with read.session() as s:
            rows = list(
                await s.execute(
                    select(EventRow.id, EventRow.kind, EventRow.severity).where(EventRow.id > floor)
                )
            )
        for event_id, kind, severity in rows:
            if event_id in self._recent_events:
                continue
            self._recent_events.add(event_id)
            key = (kind, severity)
            self._event_counts[key] = self._event_counts.get(key, 0) + 1
            self._last_event_id = max(self._last_event_id, event_id)
        self._recent_events = _recent(self._recent_events, self._last_event_id)

    async def _read_orders(self, read: ReadModel) -> None:
        q = select(
            OrderRow.id,
            OrderRow.hedge_id,
            OrderRow.leg,
            OrderRow.purpose,
            OrderRow.sent_at,
            OrderRow.acked_at,
        ).order_by(OrderRow.id)
        newer = OrderRow.id > max(0, self._last_order_id - LOOKBACK_IDS)
        q = q.where(or_(newer, OrderRow.id.in_(sorted(self._unacked))) if self._unacked else newer)
        async with read.session() as s:
            rows = list(await s.execute(q))
        for order_id, hedge_id, leg, purpose, sent, acked in rows:
            if order_id in self._recent_orders and order_id not in self._unacked:
                continue  # counted already
            self._recent_orders.add(order_id)
            self._last_order_id = max(self._last_order_id, order_id)
            if sent is not None and hedge_id is not None:
                self._first_sent.setdefault((hedge_id, purpose), {}).setdefault(leg, sent)
            if acked is None:
                self._unacked.add(order_id)
                continue
            self._unacked.discard(order_id)
            if sent is not None:
                histogram = self._latency.setdefault(leg, _Histogram(LATENCY_BUCKETS))
                histogram.observe((acked - sent).total_seconds())
        self._recent_orders = _recent(self._recent_orders, self._last_order_id)

    def _build(self) -> Iterator[Metric]:
        f = self.figures
        if f is not None:
            yield _gauge(
                "carrybot_funding_earned_usdt", "Funding received by hedges, USDT.", f.funding
            )
            yield _counter("carrybot_fees_paid_usdt", "Trading fees paid by hedges, USDT.", f.fees)
            yield _gauge("carrybot_basis_pnl_usdt", "Basis P&L of hedges, USDT.", f.basis_pnl)
            yield _gauge("carrybot_net_pnl_usdt", "Funding + basis - fees, USDT.", f.net)
            yield _gauge("carrybot_open_hedges", "Hedges open now.", f.open_hedges)
            yield _gauge(
                "carrybot_closed_hedges", "Hedges closed (or failed with fills).", f.closed_hedges
            )
            notional = GaugeMetricFamily(
                "carrybot_notional_usdt", "Notional of open hedges per pair, USDT.", labels=["pair"]
            )
            for pair, value in sorted(f.notional_by_pair.items()):
                notional.add_metric([pair], float(value))
            yield notional
        yield from self._event_families()
        yield from self._timing_families()

    def _event_families(self) -> Iterator[Metric]:
        events = CounterMetricFamily(
            "carrybot_events", "Events recorded in the ledger.", labels=["kind", "severity"]
        )
        errors = CounterMetricFamily(
            "carrybot_errors", "Error events recorded, by kind.", labels=["kind"]
        )
        reconnects = CounterMetricFamily(
            "carrybot_reconnects", "Recoveries of exchange or stream connections.", labels=["kind"]
        )
        for (kind, severity), n in sorted(self._event_counts.items()):
            events.add_metric([kind, severity], n)
            if severity == "error":
                errors.add_metric([kind], n)
            if kind in RECONNECT_KINDS or "reconnect" in kind:
                reconnects.add_metric([kind], n)
        yield events
        yield errors
        yield reconnects

    def _timing_families(self) -> Iterator[Metric]:
        latency = HistogramMetricFamily(
            "carrybot_order_round_trip_seconds",
            "Order sent to acknowledged, per leg.",
            labels=["leg"],
        )
        for leg, h in sorted(self._latency.items()):
            latency.add_metric([leg], h.buckets(), sum_value=h.total)
        yield latency
        gaps = _Histogram(LEG_GAP_BUCKETS)
        for legs in self._first_sent.values():
            if "spot" in legs and "perp" in legs:
                gaps.observe(abs((legs["spot"] - legs["perp"]).total_seconds()))
        gap = HistogramMetricFamily(
            "carrybot_leg_gap_seconds", "Time between sending a hedge's two legs.", labels=[]
        )
        gap.add_metric([], gaps.buckets(), sum_value=gaps.total)
        yield gap


async def _hedge_figures(read: ReadModel, now: datetime) -> HedgeFigures:
    report: StatusReport = await read.status(now)
    equity = await read.equity_series(limit=1)
    run = await read.latest_run()
    notional: dict[str, Decimal] = {}
    for line in report.open:
        pair = line.hedge.pair
        notional[pair] = notional.get(pair, Decimal(0)) + line.hedge.target_notional
    return HedgeFigures(
        trading_state=report.trading_state.value,
        funding=report.totals.funding,
        fees=report.totals.fees,
        basis_pnl=report.totals.basis_pnl,
        net=report.totals.net,
        open_hedges=len(report.open),
        closed_hedges=len(report.closed),
        notional_by_pair=notional,
        last_snapshot_at=report.last_snapshot_at,
        equity=equity[-1].value if equity else None,
        mode=run.mode if run else "ledger",
    )


def _recent(ids: set[int], last: int) -> set[int]:
    return {i for i in ids if i > last - LOOKBACK_IDS}


def _gauge(name: str, doc: str, value: Decimal | float | int, **labels: str) -> Metric:
    family = GaugeMetricFamily(name, doc, labels=list(labels))
    family.add_metric(list(labels.values()), float(value))
    return family


def _counter(name: str, doc: str, value: Decimal | float | int) -> Metric:
    family = CounterMetricFamily(name, doc)
    family.add_metric([], float(value))
    return family
