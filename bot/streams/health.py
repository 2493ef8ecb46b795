"""Per-stream health: state, age of the last message, reconnects; shown by status/heartbeat."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from bot.clock import Clock


class StreamState(enum.StrEnum):
    CONNECTING = "connecting"
    LIVE = "live"
    DOWN = "down"
    STOPPED = "stopped"


@dataclass
class StreamHealth:
    """What one supervised stream is doing. Times are the injected clock's monotonic."""

    name: str
    endpoint: str = ""
    state: StreamState = StreamState.CONNECTING
    last_message_at: float | None = None
    live_since: float | None = None
    down_since: float | None = None
    reconnects: int = 0
    messages: int = 0
    bad_messages: int = 0
    last_error: str = ""

    def age(self, now: float) -> float | None:
        """Seconds since the last message (None before the first)."""
        return None if self.last_message_at is None else max(0.0, now - self.last_message_at)

    def to_json(self, now: float) -> dict[str, Any]:
        age = self.age(now)
        return {
            "name": self.name,
            "state": self.state.value,
            "endpoint": self.endpoint,
            "age_seconds": None if age is None else round(age, 3),
            "reconnects": self.reconnects,
            "messages": self.messages,
            "bad_messages": self.bad_messages,
            "last_error": self.last_error,
        }


class HealthBoard:
    """Every stream's health, in start order."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._streams: dict[str, StreamHealth] = {}

    def add(self, name: str) -> StreamHealth:
        health = self._streams.get(name)
        if health is None:
            health = self._streams[name] = StreamHealth(name)
        return health

    def remove(self, name: str) -> None:
        """Forget a stream that was stopped for good (its pairs left the universe)."""
        self._streams.pop(name, None)

    def all(self) -> list[StreamHealth]:
        return list(self._streams.values())

    def get(self, name: str) -> StreamHealth | None:
        return self._streams.get(name)

    def to_json(self) -> list[dict[str, Any]]:
        now = self._clock.monotonic()
        return [h.to_json(now) for h in self._streams.values()]

    def summary(self) -> str:
        """One heartbeat fragment, e.g. `streams 6/7 live (spot-2 down 4.1s), 3 reconnects`."""
        now = self._clock.monotonic()
        streams = self.all()
        if not streams:
            return "streams off"
        live = [h for h in streams if h.state is StreamState.LIVE]
        line = f"streams {len(live)}/{len(streams)} live"
        others = [h for h in streams if h.state is not StreamState.LIVE]
        if others:
            parts = []
            for h in others[:3]:
                since = h.down_since
                parts.append(
                    f"{h.name} {h.state.value}"
                    + (f" {now - since:.1f}s" if since is not None else "")
                )
            line += f" ({', '.join(parts)}{', …' if len(others) > 3 else ''})"
        oldest = max((h.age(now) or 0.0 for h in live), default=0.0)
        line += f", oldest message {oldest:.1f}s, {sum(h.reconnects for h in streams)} reconnects"
        return line
