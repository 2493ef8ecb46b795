"""Events: risk decisions, alerts, errors, halts. Recorded in the ledger."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    ALERT = "alert"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Event:
    """Something the operator may want to know later. `data` must be JSON-serialisable."""

    kind: str
    message: str
    at: datetime
    severity: Severity = Severity.INFO
    data: Mapping[str, Any] = field(default_factory=dict)
    hedge_id: int | None = None


class EventSink(Protocol):
    """Where components report events (the ledger in the bot, a list in tests)."""

    async def emit(self, event: Event) -> None: ...


class ListEventSink:
    """Collect events in memory (tests, backtests, and the buffer while the DB is down)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    async def emit(self, event: Event) -> None:
        self.events.append(event)

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]
