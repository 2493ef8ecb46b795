"""The entry gate of the streams: when no new hedge may be opened (closes always may).

A pair may not be entered (or a hedge enlarged) while
- an announced maintenance window (`[streams] maintenance`) is running, or starts within
  `maintenance_lead_minutes`;
- with streams on: a market the decision needs (spot book, perpetual book, mark price) has
  no fresh stream data (its stream is down or silent, REST fallback only), or one of those
  streams went live less than `settle_seconds` ago (books right after a reconnect are not
  trusted yet), or either leg's spread is wider than `max_spread_bps`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Protocol

from bot.clock import Clock
from bot.domain import Pair, Quote
from bot.streams.config import MaintenanceWindow, StreamsConfig
from bot.streams.health import HealthBoard
from bot.streams.source import StreamingSource


class StreamView(Protocol):
    """What the gate, the heartbeat and the dashboard read of the streams: a
    `StreamingSource`, or `CrossVenueStreams` over Bitstamp's and Binance's."""

    health: HealthBoard
    on_user_resync: Callable[[], None] | None

    @property
    def pairs_by_key(self) -> Mapping[str, Pair]: ...
    def quote_problem(self, symbol: str) -> str | None: ...
    def mark_problem(self, symbol: str) -> str | None: ...
    def live_since(self, symbols: Sequence[str]) -> float | None: ...
    def stream_quote(self, symbol: str) -> Quote | None: ...


def _conforms(source: StreamingSource) -> StreamView:
    return source


BPS = Decimal(10000)


def maintenance_block(config: StreamsConfig, now: datetime) -> tuple[MaintenanceWindow, str] | None:
    """The window that blocks entries at `now` and why, or None."""
    lead = timedelta(minutes=config.maintenance_lead_minutes)
    for window in sorted(config.maintenance, key=lambda w: w.start):
        if window.start - lead <= now < window.end:
            span = f"{window.start:%Y-%m-%d %H:%M}–{window.end:%H:%M} UTC"
            if now < window.start:
                why = f"exchange maintenance {span} starts in {_minutes(window.start - now)}"
            else:
                why = f"exchange maintenance {span} is running"
            return window, f"{why}: no new hedges until {window.end:%H:%M} UTC"
    return None


def _minutes(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 60:.0f} min"


class EntryGate:
    """`gate(pair_key)` → the reason no new exposure may be taken on the pair, or None."""

    def __init__(
        self,
        config: StreamsConfig,
        clock: Clock,
        source: StreamView | None,
        pairs: Mapping[str, Pair],
    ) -> None:
        self.config = config
        self._clock = clock
        self.source = source
        self._pairs = pairs

    def __call__(self, pair_key: str) -> str | None:
        blocked = maintenance_block(self.config, self._clock.now())
        if blocked is not None:
            return blocked[1]
        source = self.source
        if source is None:
            return None
        pair = source.pairs_by_key.get(pair_key) or self._pairs.get(pair_key)
        if pair is None:
            return f"{pair_key} has no streams"
        spot, perp = pair.spot.symbol, pair.perp.symbol
        for problem in (
            source.quote_problem(spot),
            source.quote_problem(perp),
            source.mark_problem(perp),
        ):
            if problem is not None:
                return f"{problem}: REST data only, no new hedges"
        live_since = source.live_since([spot, perp])
        settle = self.config.settle_seconds
        if live_since is not None:
            since = self._clock.monotonic() - live_since
            if since < settle:
                return f"streams reconnected {since:.1f}s ago; settling for {settle:g}s"
        for symbol in (spot, perp):
            quote = source.stream_quote(symbol)
            assert quote is not None  # quote_problem returned None
            spread = _spread_bps(quote)
            if spread > self.config.max_spread_bps:
                return (
                    f"spread of {quote.symbol} is {spread:.1f} bps > max_spread_bps "
                    f"{self.config.max_spread_bps}"
                )
        return None


def _spread_bps(quote: Quote) -> Decimal:
    mid = quote.mid
    return (quote.ask - quote.bid) / mid * BPS if mid > 0 else Decimal("Infinity")
