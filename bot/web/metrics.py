"""Prometheus metrics at /metrics (prometheus_client): from the ledger, plus what only the
running bot knows (its `LiveProbe`) and the scheduler's job durations.

Names start with `carrybot_` and carry their unit; labels are bounded (pair, venue, leg, job,
kind, state, channel), never an order or hedge id. A scrape reads the ledger once
(`MetricsSnapshot`) and the registry's collector turns that snapshot into metric families.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from bot import __version__
from bot.domain.ledger import TradingState
from bot.reporting import StatusReport
from bot.web.live import LiveFacts
from bot.web.readmodel import OrderTiming, ReadModel

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
LEG_GAP_BUCKETS = (0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0)
JOB_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
RECONNECT_KINDS = ("exchange.recovered",)


@dataclass
class MetricsSnapshot:
    """Everything one scrape reports, read from the ledger and the live probe."""

    mode: str = "ledger"
    trading_state: str = TradingState.ACTIVE.value
    equity: Decimal | None = None
    funding: Decimal = Decimal(0)
    fees: Decimal = Decimal(0)
    basis_pnl: Decimal = Decimal(0)
    net: Decimal = Decimal(0)
    open_hedges: int = 0
    closed_hedges: int = 0
    notional_by_pair: dict[str, Decimal] = field(default_factory=dict)
    market_data_age: float | None = None
    database_up: bool = True
    event_counts: dict[tuple[str, str], int] = field(default_factory=dict)
    timings: list[OrderTiming] = field(default_factory=list)
    live: LiveFacts | None = None


async def read_snapshot(read: ReadModel, now: datetime, live: LiveFacts | None) -> MetricsSnapshot:
    """Read one scrape's figures (the ledger's, overridden by the live bot's where fresher)."""
    report = await read.status(now)
    async with read.batch():
        return await _read_rest(read, report, live)


async def _read_rest(
    read: ReadModel, report: StatusReport, live: LiveFacts | None
) -> MetricsSnapshot:
    equity = await read.equity_series(limit=1)
    notional: dict[str, Decimal] = {}
    for line in report.open:
        notional[line.hedge.pair] = notional.get(line.hedge.pair, Decimal(0)) + (
            line.hedge.target_notional
        )
    snap = MetricsSnapshot(
        mode=(run.mode if (run := await read.latest_run()) else "ledger"),
        trading_state=report.trading_state.value,
        equity=equity[-1].value if equity else None,
        funding=report.totals.funding,
        fees=report.totals.fees,
        basis_pnl=report.totals.basis_pnl,
        net=report.totals.net,
        open_hedges=len(report.open),
        closed_hedges=len(report.closed),
        notional_by_pair=notional,
        market_data_age=report.snapshot_age_seconds,
        event_counts=await read.event_counts(),
        timings=await read.order_timings(),
        live=live,
    )
    if live is not None:
        snap.mode = live.mode
        snap.trading_state = live.trading_state
        snap.equity = live.equity if live.equity is not None else snap.equity
        snap.market_data_age = live.market_data_age_seconds
        snap.database_up = live.database_up
    return snap


class SnapshotCollector(Collector):
    """Turn the latest `MetricsSnapshot` into metric families (set before each scrape)."""

    def __init__(self) -> None:
        self.snapshot = MetricsSnapshot()

    def collect(self) -> Iterable[Metric]:
        s = self.snapshot
        yield _gauge(
            "carrybot_info", "Version and mode of the process.", 1, version=__version__, mode=s.mode
        )
        state = GaugeMetricFamily(
            "carrybot_trading_state", "1 for the current trading state.", labels=["state"]
        )
        for each in TradingState:
            state.add_metric([each.value], 1.0 if each.value == s.trading_state else 0.0)
        yield state
        if s.equity is not None:
            yield _gauge("carrybot_equity_usdt", "Account equity, USDT.", s.equity)
        yield _gauge("carrybot_funding_earned_usdt", "Funding received by hedges, USDT.", s.funding)
        yield _counter("carrybot_fees_paid_usdt", "Trading fees paid by hedges, USDT.", s.fees)
        yield _gauge("carrybot_basis_pnl_usdt", "Basis P&L of hedges, USDT.", s.basis_pnl)
        yield _gauge("carrybot_net_pnl_usdt", "Funding + basis - fees, USDT.", s.net)
        yield _gauge("carrybot_open_hedges", "Hedges open now.", s.open_hedges)
        yield _gauge(
            "carrybot_closed_hedges", "Hedges closed (or failed with fills).", s.closed_hedges
        )
        notional = GaugeMetricFamily(
            "carrybot_notional_usdt", "Notional of open hedges per pair, USDT.", labels=["pair"]
        )
        for pair, value in sorted(s.notional_by_pair.items()):
            notional.add_metric([pair], float(value))
        yield notional
        if s.market_data_age is not None:
            yield _gauge(
                "carrybot_market_data_age_seconds",
                "Age of the latest market data.",
                s.market_data_age,
            )
        yield _gauge(
            "carrybot_database_up", "1 while the ledger accepts writes.", int(s.database_up)
        )
        yield from self._events(s)
        yield from _timing_histograms(s.timings)
        if s.live is not None:
            yield from _live_families(s.live)

    @staticmethod
    def _events(s: MetricsSnapshot) -> Iterator[Metric]:
        events = CounterMetricFamily(
            "carrybot_events", "Events recorded in the ledger.", labels=["kind", "severity"]
        )
        errors = CounterMetricFamily(
            "carrybot_errors", "Error events recorded, by kind.", labels=["kind"]
        )
        reconnects = CounterMetricFamily(
            "carrybot_reconnects", "Recoveries of exchange or stream connections.", labels=["kind"]
        )
        for (kind, severity), n in sorted(s.event_counts.items()):
            events.add_metric([kind, severity], n)
            if severity == "error":
                errors.add_metric([kind], n)
            if kind in RECONNECT_KINDS or "reconnect" in kind:
                reconnects.add_metric([kind], n)
        yield events
        yield errors
        yield reconnects


def _timing_histograms(timings: Sequence[OrderTiming]) -> Iterator[Metric]:
    by_leg: dict[str, list[float]] = {}
    sent_by_hedge: dict[tuple[int, str], dict[str, datetime]] = {}
    for t in timings:
        if t.acked_at is not None:
            by_leg.setdefault(t.leg, []).append((t.acked_at - t.sent_at).total_seconds())
        if t.hedge_id is not None:
            legs = sent_by_hedge.setdefault((t.hedge_id, t.purpose), {})
            legs.setdefault(t.leg, t.sent_at)
    latency = HistogramMetricFamily(
        "carrybot_order_round_trip_seconds",
        "Order sent to acknowledged, per leg.",
        labels=["leg"],
    )
    for leg, values in sorted(by_leg.items()):
        latency.add_metric([leg], _buckets(values, LATENCY_BUCKETS), sum_value=sum(values))
    yield latency
    gaps = [
        abs((legs["spot"] - legs["perp"]).total_seconds())
        for legs in sent_by_hedge.values()
        if "spot" in legs and "perp" in legs
    ]
    gap = HistogramMetricFamily(
        "carrybot_leg_gap_seconds", "Time between sending a hedge's two legs.", labels=[]
    )
    gap.add_metric([], _buckets(gaps, LEG_GAP_BUCKETS), sum_value=sum(gaps))
    yield gap


def _live_families(live: LiveFacts) -> Iterator[Metric]:
    used = GaugeMetricFamily(
        "carrybot_request_weight_used",
        "Request weight used over the last minute, per venue.",
        labels=["venue"],
    )
    limit = GaugeMetricFamily(
        "carrybot_request_weight_limit",
        "Request weight carrybot allows itself per minute, per venue.",
        labels=["venue"],
    )
    for venue, (u, cap) in sorted(live.request_weight.items()):
        used.add_metric([venue], u)
        limit.add_metric([venue], cap)
    yield used
    yield limit
    yield _gauge(
        "carrybot_poll_failures", "Consecutive failed market-data polls.", live.poll_failures
    )
    up = GaugeMetricFamily(
        "carrybot_alert_channel_up",
        "1 when the alert channel's last send worked.",
        labels=["channel"],
    )
    sent = CounterMetricFamily(
        "carrybot_alerts", "Alert messages per channel and outcome.", labels=["channel", "outcome"]
    )
    for ch in live.alert_channels:
        up.add_metric([ch.name], int(ch.ok))
        sent.add_metric([ch.name, "sent"], ch.sent)
        sent.add_metric([ch.name, "failed"], ch.failed)
    yield up
    yield sent
    stream_up = GaugeMetricFamily(
        "carrybot_stream_up", "1 while the WebSocket stream is live.", labels=["stream"]
    )
    stream_reconnects = CounterMetricFamily(
        "carrybot_stream_reconnects", "Reconnects of each WebSocket stream.", labels=["stream"]
    )
    for h in live.streams:
        name = str(h.get("name"))
        stream_up.add_metric([name], int(h.get("state") == "live"))
        stream_reconnects.add_metric([name], float(h.get("reconnects") or 0))
    yield stream_up
    yield stream_reconnects


def _buckets(values: Sequence[float], bounds: Sequence[float]) -> list[tuple[str, float]]:
    out = [(repr(float(b)), float(sum(1 for v in values if v <= b))) for b in bounds]
    out.append(("+Inf", float(len(values))))
    return out


def _gauge(name: str, doc: str, value: Decimal | float | int, **labels: str) -> Metric:
    family = GaugeMetricFamily(name, doc, labels=list(labels))
    family.add_metric(list(labels.values()), float(value))
    return family


def _counter(name: str, doc: str, value: Decimal | float | int) -> Metric:
    family = CounterMetricFamily(name, doc)
    family.add_metric([], float(value))
    return family


class Metrics:
    """The registry of one dashboard: the ledger snapshot collector and the job histogram."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.collector = SnapshotCollector()
        self.registry.register(self.collector)
        self.job_duration = Histogram(
            "carrybot_job_duration_seconds",
            "Duration of the scheduler's jobs.",
            ["job"],
            buckets=JOB_BUCKETS,
            registry=self.registry,
        )

    def observe_job(self, name: str, seconds: float) -> None:
        """Record one run of a scheduler job (the scheduler calls this after every run)."""
        self.job_duration.labels(job=name).observe(seconds)

    def render(self, snapshot: MetricsSnapshot) -> bytes:
        self.collector.snapshot = snapshot
        return generate_latest(self.registry)
