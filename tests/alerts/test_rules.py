"""Each alert condition fires once while it holds and clears once."""

from __future__ import annotations

from bot.alerts.rules import AlertKind, AlertRules
from bot.domain import Event, Severity
from tests.kit import T0


def ev(kind: str, hedge_id: int | None = None, **data: object) -> Event:
    return Event(kind, f"{kind} message", T0, Severity.ALERT, data, hedge_id)


def kinds(alerts: list) -> list[tuple[str, AlertKind]]:  # type: ignore[type-arg]
    return [(a.key, a.kind) for a in alerts]


def test_notices_for_opened_closed_and_failed_hedges() -> None:
    rules = AlertRules()
    assert kinds(rules.on_event(ev("hedge.opened", 1))) == [("hedge.opened:1", AlertKind.NOTICE)]
    assert kinds(rules.on_event(ev("hedge.failed", 2))) == [("hedge.failed:2", AlertKind.NOTICE)]
    assert kinds(rules.on_event(ev("hedge.closed", 1))) == [("hedge.closed:1", AlertKind.NOTICE)]
    assert rules.on_event(ev("hedge.sizing_denied")) == []


def test_drift_fires_once_and_clears_once() -> None:
    rules = AlertRules()
    assert kinds(rules.on_event(ev("reconcile.drift"))) == [("reconcile.drift", AlertKind.FIRED)]
    assert rules.on_event(ev("reconcile.drift")) == []
    assert kinds(rules.on_event(ev("reconcile.ok"))) == [("reconcile.drift", AlertKind.CLEARED)]
    assert rules.on_event(ev("reconcile.ok")) == []


def test_naked_exposure_per_hedge_fires_once_and_clears_when_the_hedge_resolves() -> None:
    rules = AlertRules()
    assert kinds(rules.on_event(ev("hedge.unwind_incomplete", 7))) == [("naked:7", AlertKind.FIRED)]
    assert rules.on_event(ev("hedge.imbalanced", 7)) == []
    assert kinds(rules.on_event(ev("risk.protect", 8, action="Rebalance"))) == [
        ("naked:8", AlertKind.FIRED)
    ]
    assert rules.on_event(ev("risk.protect", 9, action="ResizeHedge")) == []
    assert ("naked:7", AlertKind.CLEARED) in kinds(rules.on_event(ev("hedge.failed", 7)))
    assert kinds(rules.on_event(ev("reconcile.ok"))) == [("naked:8", AlertKind.CLEARED)]


def test_trading_state_reducing_and_halted_each_fire_once_and_clear_on_active() -> None:
    rules = AlertRules()
    assert kinds(rules.on_trading_state("reducing", "drift")) == [
        ("trading:reducing", AlertKind.FIRED)
    ]
    assert rules.on_trading_state("reducing", "drift") == []
    assert kinds(rules.on_trading_state("halted", "operator")) == [
        ("trading:reducing", AlertKind.CLEARED),
        ("trading:halted", AlertKind.FIRED),
    ]
    assert kinds(rules.on_trading_state("active", "operator")) == [
        ("trading:halted", AlertKind.CLEARED)
    ]
    assert rules.on_trading_state("active", "operator") == []


def test_daily_loss_limit_fires_once_and_clears_when_trading_resumes() -> None:
    rules = AlertRules()
    event = ev("trading.state", state="reducing", reason="daily loss limit reached: -120 USDT")
    assert kinds(rules.on_event(event)) == [("daily_loss", AlertKind.FIRED)]
    assert rules.on_event(event) == []
    assert ("daily_loss", AlertKind.CLEARED) in kinds(rules.on_trading_state("active", "x"))


def test_an_outage_alerts_only_after_outage_seconds_and_recovery_once() -> None:
    rules = AlertRules(outage_seconds=60)
    assert rules.on_health("exchange", False, now=0.0) == []
    assert rules.on_health("exchange", False, now=59.0) == []
    assert kinds(rules.on_health("exchange", False, now=60.0)) == [
        ("outage:exchange", AlertKind.FIRED)
    ]
    assert rules.on_health("exchange", False, now=300.0) == []
    assert kinds(rules.on_health("exchange", True, now=301.0)) == [
        ("outage:exchange", AlertKind.CLEARED)
    ]
    assert rules.on_health("exchange", True, now=302.0) == []
    # a short blip never alerts, not even its recovery
    assert rules.on_health("database", False, now=400.0) == []
    assert rules.on_health("database", True, now=410.0) == []


def test_a_roll_not_done_fires_once_per_hedge_and_clears_when_it_rolls_or_closes() -> None:
    rules = AlertRules()
    assert kinds(rules.on_event(ev("hedge.roll_denied", 3))) == [("roll:3", AlertKind.FIRED)]
    assert rules.on_event(ev("hedge.roll_failed", 3)) == []
    assert kinds(rules.on_event(ev("hedge.rolled", 3))) == [("roll:3", AlertKind.CLEARED)]
    assert rules.on_event(ev("hedge.rolled", 3)) == []
    assert kinds(rules.on_event(ev("hedge.roll_failed", 4))) == [("roll:4", AlertKind.FIRED)]
    assert ("roll:4", AlertKind.CLEARED) in kinds(rules.on_event(ev("hedge.closed", 4)))
