"""Which events and states are worth a message, de-duplicated per condition.

A *condition* (reconciliation drift, a state change to REDUCING/HALTED, the daily loss
limit, naked exposure of one hedge, a hedge's roll not done until it rolls or
closes, an exchange or database outage longer than
`outage_seconds`) fires one message when it starts and one when it clears; while it holds,
nothing more is sent for it. *Notices* (a hedge opened, closed, failed) are sent once each.
Pure logic: no I/O, times passed in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from bot.domain import Event


class AlertKind(StrEnum):
    FIRED = "fired"
    CLEARED = "cleared"
    NOTICE = "notice"


@dataclass(frozen=True, slots=True)
class Alert:
    key: str
    kind: AlertKind
    text: str
    hedge_id: int | None = None


NOTICES = {
    "hedge.opened": "Hedge opened",
    "hedge.closed": "Hedge closed",
    "hedge.failed": "Hedge failed (a leg failed; the other was unwound)",
}
NAKED_KINDS = {"hedge.unwind_incomplete", "hedge.imbalanced", "hedge.close_incomplete"}
NAKED_CLEARED_BY = {"hedge.closed", "hedge.failed", "hedge.resized", "hedge.opened"}
ROLL_KINDS = {"hedge.roll_denied", "hedge.roll_failed", "hedge.roll_incomplete"}
ROLL_CLEARED_BY = {"hedge.rolled", "hedge.closed"}


@dataclass
class AlertRules:
    """The conditions that hold now, and the alerts each new fact produces."""

    outage_seconds: float = 60.0
    active: dict[str, str] = field(default_factory=dict)
    _outage_since: dict[str, float] = field(default_factory=dict)

    def on_event(self, event: Event) -> list[Alert]:
        """Alerts for one event emitted by the bot."""
        kind = event.kind
        if kind in NOTICES:
            out = [
                Alert(f"{kind}:{event.hedge_id}", AlertKind.NOTICE, event.message, event.hedge_id)
            ]
            if kind in NAKED_CLEARED_BY and event.hedge_id is not None:
                out += self._clear(
                    f"naked:{event.hedge_id}", f"hedge {event.hedge_id} is flat or hedged again"
                )
            if kind in ROLL_CLEARED_BY and event.hedge_id is not None:
                out += self._clear(f"roll:{event.hedge_id}", f"hedge {event.hedge_id} closed")
            return out
        if kind in ROLL_KINDS and event.hedge_id is not None:
            return self._fire(f"roll:{event.hedge_id}", f"Roll not done: {event.message}")
        if kind in ROLL_CLEARED_BY and event.hedge_id is not None:
            return self._clear(f"roll:{event.hedge_id}", f"hedge {event.hedge_id} rolled")
        if kind in NAKED_KINDS and event.hedge_id is not None:
            return self._fire(f"naked:{event.hedge_id}", f"Naked exposure: {event.message}")
        if kind == "risk.protect" and event.data.get("action") == "Rebalance":
            return self._fire(
                f"naked:{event.hedge_id}", f"Net delta over the limit: {event.message}"
            )
        if kind == "reconcile.drift":
            return self._fire("reconcile.drift", f"Reconciliation drift: {event.message}")
        if kind == "reconcile.ok":
            out = self._clear("reconcile.drift", "reconciliation agrees again")
            for key in [k for k in self.active if k.startswith("naked:")]:
                out += self._clear(key, "reconciliation found no naked leg")
            return out
        if kind == "trading.state" and "daily loss" in str(event.data.get("reason", "")).lower():
            return self._fire("daily_loss", f"Daily loss limit: {event.message}")
        return []

    def on_trading_state(self, state: str, reason: str) -> list[Alert]:
        """Alerts for the trading state now (whoever changed it: risk, reconciliation, CLI, web)."""
        out: list[Alert] = []
        for watched in ("reducing", "halted"):
            key = f"trading:{watched}"
            if watched == state:
                out += self._fire(key, f"Trading {watched.upper()}: {reason}")
            else:
                out += self._clear(key, f"trading {state.upper()} ({reason})")
        if state == "active":
            out += self._clear("daily_loss", "trading ACTIVE again")
        return out

    def on_health(self, name: str, healthy: bool, now: float) -> list[Alert]:
        """Alerts for an exchange or database that is down (fires after `outage_seconds`)."""
        key = f"outage:{name}"
        if healthy:
            self._outage_since.pop(key, None)
            return self._clear(key, f"{name} recovered")
        since = self._outage_since.setdefault(key, now)
        if now - since >= self.outage_seconds:
            return self._fire(key, f"{name} unavailable for {now - since:.0f}s")
        return []

    def _fire(self, key: str, text: str) -> list[Alert]:
        if key in self.active:
            return []
        self.active[key] = text
        return [Alert(key, AlertKind.FIRED, text)]

    def _clear(self, key: str, text: str) -> list[Alert]:
        if key not in self.active:
            return []
        del self.active[key]
        return [Alert(key, AlertKind.CLEARED, f"Recovered: {text}")]
