"""Prometheus metrics at /metrics (prometheus_client): from the ledger, plus what only the
running bot knows (its `LiveProbe`) and the scheduler's job durations.

Names start with `carrybot_` and carry their unit; labels are bounded (pair, venue, leg, job,
kind, state, channel), never an order or hedge id. The ledger's families are kept between
scrapes and refreshed only where the ledger changed (`bot.web.ledger_metrics`); the running
bot's figures are read from its memory (`LiveProbe`, no I/O) and the job durations are a
histogram the scheduler observes after every run.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bot import __version__
from bot.domain.ledger import TradingState
from bot.web.ledger_metrics import HedgeFigures, LedgerMetrics
from bot.web.live import LiveFacts
from bot.web.readmodel import ReadModel

JOB_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass
class ScrapeFacts:
    """What one scrape adds to the ledger's kept families: the figures that move with time
    or come from the running bot's memory."""

    mode: str = "ledger"
    trading_state: str = TradingState.ACTIVE.value
    equity: Decimal | None = None
    market_data_age: float | None = None
    database_up: bool = True
    live: LiveFacts | None = None


def scrape_facts(
    figures: HedgeFigures | None, now: datetime, live: LiveFacts | None
) -> ScrapeFacts:
    """The running bot's facts where it has them (in memory), else the ledger's."""
    facts = ScrapeFacts(live=live)
    if figures is not None:
        facts.mode = figures.mode
        facts.trading_state = figures.trading_state
        facts.equity = figures.equity
        if figures.last_snapshot_at is not None:
            facts.market_data_age = (now - figures.last_snapshot_at).total_seconds()
    if live is not None:
        facts.mode = live.mode
        facts.trading_state = live.trading_state
        facts.equity = live.equity if live.equity is not None else facts.equity
        facts.market_data_age = live.market_data_age_seconds
        facts.database_up = live.database_up
    return facts


class ScrapeCollector(Collector):
    """The families of one scrape: the ledger's kept ones, and the moving figures."""

    def __init__(self) -> None:
        self.facts = ScrapeFacts()

    def collect(self) -> Iterable[Metric]:
        s = self.facts
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
        if s.market_data_age is not None:
            yield _gauge(
                "carrybot_market_data_age_seconds",
                "Age of the latest market data.",
                s.market_data_age,
            )
        yield _gauge(
            "carrybot_database_up", "1 while the ledger accepts writes.", int(s.database_up)
        )
        if s.live is not None:
            yield from _live_families(s.live)


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


def _gauge(name: str, doc: str, value: Decimal | float | int, **labels: str) -> Metric:
    family = GaugeMetricFamily(name, doc, labels=list(labels))
    family.add_metric(list(labels.values()), float(value))
    return family


class _Families(Collector):
    def __init__(self) -> None:
        self.families: list[Metric] = []

    def collect(self) -> Iterable[Metric]:
        return self.families


class Metrics:
    """The registries of one dashboard: the ledger's kept families, and the moving figures
    with the job histogram."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.collector = ScrapeCollector()
        self.registry.register(self.collector)
        self.ledger = LedgerMetrics()
        # The ledger's families are rendered to text only when they change (the text format
        # is a concatenation of families, so the two parts are joined as they are).
        self._kept = _Families()
        self._kept_registry = CollectorRegistry(auto_describe=False)
        self._kept_registry.register(self._kept)
        self._kept_text = b""
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

    async def scrape(self, read: ReadModel, now: datetime, live: LiveFacts | None) -> bytes:
        """The text of one scrape: the ledger's kept families (refreshed where the ledger
        changed) and the moving figures (the running bot's from its memory)."""
        families = await self.ledger.families(read, now)
        if families is not self._kept.families:  # render the ledger's part once per change
            self._kept.families = families
            self._kept_text = generate_latest(self._kept_registry)
        self.collector.facts = scrape_facts(self.ledger.figures, now, live)
        return self._kept_text + generate_latest(self.registry)
