"""Alert delivery against a fake Telegram server: once per condition, retried, rate-limited,
and never in the way of the trading loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.alerts import AlertingEventSink, build_alerts
from bot.alerts.channels import TelegramChannel, WebhookChannel
from bot.alerts.config import AlertsConfig
from bot.alerts.dispatcher import AlertDispatcher
from bot.clock import SimulatedClock
from bot.domain import Event, Severity
from bot.persistence import migrate
from bot.persistence.db import create_engine, session_factory
from bot.persistence.outage import OutageGuard
from bot.persistence.repositories import CycleReads, Ledger
from bot.settings import Settings
from tests.fakes.telegram_server import CHAT_ID, TOKEN, FakeTelegram
from tests.kit import T0


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    fake = FakeTelegram()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


def dispatcher(
    fake: FakeTelegram, clock: SimulatedClock, *, webhook: bool = False, **config: object
) -> AlertDispatcher:
    channels = [TelegramChannel(fake.url, TOKEN, CHAT_ID)]
    if webhook:
        channels.append(WebhookChannel(f"{fake.url}/hook"))  # type: ignore[arg-type]
    d = AlertDispatcher(AlertsConfig(**config), channels, clock)  # type: ignore[arg-type]
    d.start()
    return d


def ev(kind: str, hedge_id: int | None = None, message: str = "") -> Event:
    return Event(kind, message or kind, T0, Severity.ALERT, {}, hedge_id)


async def test_each_condition_is_sent_once_and_its_recovery_once(telegram: FakeTelegram) -> None:
    d = dispatcher(telegram, SimulatedClock(T0), webhook=True)
    for _ in range(3):
        d.observe_event(ev("reconcile.drift", message="BTC spot 0.01 more than the ledger"))
    d.observe_trading_state("halted", "operator, by web")
    d.observe_trading_state("halted", "operator, by web")
    d.observe_event(ev("reconcile.ok"))
    d.observe_trading_state("active", "operator, by cli")
    await d.stop(flush_seconds=10)
    assert telegram.texts() == [
        "carrybot: Reconciliation drift: BTC spot 0.01 more than the ledger",
        "carrybot: Trading HALTED: operator, by web",
        "carrybot: Recovered: reconciliation agrees again",
        "carrybot: Recovered: trading ACTIVE (operator, by cli)",
    ]
    assert [h["kind"] for h in telegram.hooks] == ["fired", "fired", "cleared", "cleared"]
    assert telegram.hooks[0]["key"] == "reconcile.drift"
    assert [c.sent for c in d.health()] == [4, 4]


async def test_a_closed_hedge_carries_its_net(telegram: FakeTelegram) -> None:
    async def describe(hedge_id: int) -> str:
        return f"net 1.23 USDT (hedge {hedge_id})"

    d = AlertDispatcher(
        AlertsConfig(),
        [TelegramChannel(telegram.url, TOKEN, CHAT_ID)],
        SimulatedClock(T0),
        describe_hedge=describe,
    )
    d.start()
    d.observe_event(ev("hedge.closed", 5, "hedge 5 CLOSED: exit"))
    await d.stop(flush_seconds=10)
    assert telegram.texts() == ["carrybot: hedge 5 CLOSED: exit (net 1.23 USDT (hedge 5))"]


async def test_a_down_channel_is_retried_with_backoff_then_reported_and_recovers(
    telegram: FakeTelegram, caplog: pytest.LogCaptureFixture
) -> None:
    clock = SimulatedClock(T0)
    d = dispatcher(telegram, clock, retry_attempts=3, retry_backoff_seconds=2)
    telegram.mode = "down"
    with caplog.at_level(logging.WARNING):
        d.observe_event(ev("hedge.opened", 1))
        await d.stop(flush_seconds=10)
    assert telegram.attempts == 3
    assert clock.monotonic() == pytest.approx(2 + 4)  # backoff 2 s, then 4 s
    (health,) = d.health()
    assert (health.ok, health.failed, health.last_error) == (False, 1, "HTTP 502")
    assert "Alert channel telegram failed 3 times (HTTP 502)" in caplog.text
    assert TOKEN not in caplog.text

    telegram.mode = "ok"
    d.start()
    d.observe_event(ev("hedge.opened", 2))
    await d.stop(flush_seconds=10)
    (health,) = d.health()
    assert (health.ok, health.sent) == (True, 1)


async def test_telegrams_retry_after_is_obeyed(telegram: FakeTelegram) -> None:
    clock = SimulatedClock(T0)
    d = dispatcher(telegram, clock, retry_backoff_seconds=0.5)
    telegram.flood_left = 1
    d.observe_event(ev("hedge.opened", 1))
    await d.stop(flush_seconds=10)
    assert telegram.attempts == 2 and len(telegram.messages) == 1
    assert clock.monotonic() == pytest.approx(3)


async def test_messages_beyond_max_per_minute_wait_for_the_window(
    telegram: FakeTelegram,
) -> None:
    clock = SimulatedClock(T0)
    d = dispatcher(telegram, clock, max_per_minute=3)
    for i in range(5):
        d.observe_event(ev("hedge.opened", i))
    await d.stop(flush_seconds=10)
    assert len(telegram.messages) == 5
    assert clock.monotonic() == pytest.approx(60)  # the 4th and 5th waited one window


async def test_a_hanging_telegram_server_never_delays_emitting_events(
    telegram: FakeTelegram, tmp_path: Path
) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'l.db'}")
    await migrate.upgrade(engine)
    clock = SimulatedClock(T0)
    ledger = Ledger(session_factory(engine), CycleReads())
    telegram.mode = "hang"
    d = dispatcher(telegram, clock, timeout_seconds=600, queue_size=10)
    sink = AlertingEventSink(ledger.events, OutageGuard(engine, clock), d)
    try:
        for i in range(50):
            await asyncio.wait_for(sink.emit(ev("hedge.opened", message=f"h{i}")), timeout=2)
        assert len(await ledger.events.recent(limit=100)) == 50
        assert telegram.attempts == 1 and telegram.messages == []  # stuck on the first
        assert d.dropped > 0  # the bounded queue kept the newest
    finally:
        telegram.release.set()
        await d.stop(flush_seconds=0.1)
        await engine.dispose()


def test_alerts_are_off_without_channel_secrets_and_on_with_them() -> None:
    assert build_alerts(AlertsConfig(), Settings(), SimulatedClock(T0), describe_hedge=None) is None
    settings = Settings.model_validate({"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_CHAT_ID": CHAT_ID})
    d = build_alerts(AlertsConfig(), settings, SimulatedClock(T0), describe_hedge=None)
    assert d is not None and [c.name for c in d.health()] == ["telegram"]
    assert TOKEN in settings.secret_values()
    off = build_alerts(
        AlertsConfig(enabled=False), settings, SimulatedClock(T0), describe_hedge=None
    )
    assert off is None


class _Probe:
    """The loop's in-memory facts, set by the test."""

    def __init__(self) -> None:
        from bot.web.live import LiveFacts

        self.facts_now = LiveFacts(
            mode="paper",
            trading_state="active",
            equity=None,
            market_data_age_seconds=1.0,
            poll_failures=0,
            database_up=True,
        )

    def facts(self):  # type: ignore[no-untyped-def]
        return self.facts_now

    def set(self, **changes: object) -> None:
        from dataclasses import replace

        self.facts_now = replace(self.facts_now, **changes)  # type: ignore[arg-type]


async def _until(condition, clock: SimulatedClock) -> None:  # type: ignore[no-untyped-def]
    """Let the watch run (each of its sleeps moves the simulated clock) until `condition`."""
    deadline = time.monotonic() + 20  # real seconds: deliveries go over real HTTP
    while not condition():
        assert time.monotonic() < deadline, "condition never met"
        await asyncio.sleep(0)


async def test_the_watch_alerts_outages_after_n_seconds_state_changes_and_recoveries(
    telegram: FakeTelegram,
) -> None:
    clock = SimulatedClock(T0)
    d = dispatcher(telegram, clock, outage_seconds=60)
    probe = _Probe()

    async def reason() -> str:
        return "operator, by cli"

    d.watch(probe, reason)
    probe.set(poll_failures=4)
    started = clock.monotonic()
    await _until(lambda: len(telegram.messages) == 1, clock)
    assert clock.monotonic() - started >= 60
    assert telegram.texts()[0].startswith("carrybot: exchange unavailable for 6")
    probe.set(poll_failures=0, database_up=False, trading_state="halted")
    await _until(lambda: len(telegram.messages) == 3, clock)
    assert telegram.texts()[1:] == [
        "carrybot: Trading HALTED: operator, by cli",
        "carrybot: Recovered: exchange recovered",
    ] or telegram.texts()[1:] == [
        "carrybot: Recovered: exchange recovered",
        "carrybot: Trading HALTED: operator, by cli",
    ]
    await _until(lambda: len(telegram.messages) == 4, clock)
    assert telegram.texts()[3].startswith("carrybot: database unavailable for")
    probe.set(database_up=True, trading_state="active")
    await _until(lambda: len(telegram.messages) == 6, clock)
    assert set(telegram.texts()[4:]) == {
        "carrybot: Recovered: database recovered",
        "carrybot: Recovered: trading ACTIVE (operator, by cli)",
    }
    moment = clock.monotonic()
    await _until(lambda: clock.monotonic() - moment > 300, clock)
    assert len(telegram.messages) == 6  # nothing more while all is well
    await d.stop(flush_seconds=1)
