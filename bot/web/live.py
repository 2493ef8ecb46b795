"""What only the running bot knows (in memory), for the dashboard and /metrics it serves.

`carrybot web` over a ledger alone has no `LiveProbe`; the pages then say so and the
metrics come from the ledger only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from bot.trading import TradingLoop


@dataclass(frozen=True, slots=True)
class ChannelHealth:
    """One alert channel as the dashboard shows it (never its token or URL)."""

    name: str
    ok: bool
    sent: int
    failed: int
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class LiveFacts:
    mode: str
    trading_state: str
    equity: Decimal | None
    market_data_age_seconds: float | None
    poll_failures: int
    database_up: bool
    request_weight: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    alert_channels: list[ChannelHealth] = field(default_factory=list)
    poll_ms: list[float] = field(default_factory=list)
    evaluate_ms: list[float] = field(default_factory=list)
    streams: list[dict[str, Any]] = field(default_factory=list)


class LiveProbe(Protocol):
    def facts(self) -> LiveFacts: ...


class LoopProbe:
    """Read the trading loop's in-memory state (cheap: no I/O, called per request)."""

    def __init__(
        self,
        loop: TradingLoop,
        mode: str,
        channels: Callable[[], list[ChannelHealth]] | None = None,
    ) -> None:
        self._loop = loop
        self._mode = mode
        self._channels = channels

    def facts(self) -> LiveFacts:
        state = self._loop.state
        age = None
        if state.latest is not None:
            age = (self._loop.clock.now() - state.latest.taken_at).total_seconds()
        return LiveFacts(
            mode=self._mode,
            trading_state=state.trading.value,
            equity=state.daily.equity,
            market_data_age_seconds=age,
            poll_failures=self._loop.circuit.failures,
            database_up=self._loop.guard.healthy,
            request_weight=request_weight(self._loop.exchange),
            alert_channels=self._channels() if self._channels else [],
            poll_ms=list(state.poll_ms),
            evaluate_ms=list(state.evaluate_ms),
            streams=stream_health(self._loop.exchange),
        )


_WRAPPED = ("live", "source", "_source", "rest")


def find_pacer(exchange: Any, depth: int = 4) -> Any:
    """The request pacer of the live adapter behind `exchange`, wherever it is wrapped.

    The live adapter has a `pacer`; paper mode wraps a live adapter for its market data, and
    streams wrap the REST source (`live`, `source`, `_source`, `rest`); a replay has none.
    """
    if exchange is None or depth < 0:
        return None
    pacer = getattr(exchange, "pacer", None)
    if pacer is not None and isinstance(getattr(pacer, "gates", None), dict):
        return pacer
    for name in _WRAPPED:
        found = find_pacer(getattr(exchange, name, None), depth - 1)
        if found is not None:
            return found
    return None


def request_weight(exchange: Any) -> dict[str, tuple[int, int]]:
    """(used, allowed) request weight per venue over the last minute, where it is paced."""
    pacer = find_pacer(exchange)
    if pacer is None:
        return {}
    return {
        str(getattr(venue, "value", venue)): (gate.weight.used(), gate.weight.rate_limit)
        for venue, gate in pacer.gates.items()
    }


def stream_health(exchange: Any) -> list[dict[str, Any]]:
    """Each WebSocket stream's state, message age and reconnects (empty when polling)."""
    from bot.streams.factory import find_streaming_source

    source = find_streaming_source(exchange)
    health = getattr(source, "health", None)
    return list(health.to_json()) if health is not None else []
