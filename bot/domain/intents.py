"""What a strategy asks for. Every intent carries the numbers that justified it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class OpenHedge:
    """Open a new hedge on `pair` (spot symbol, e.g. `BTC/USDT`) for `notional` USDT.

    The short leg is the pair's perpetual unless `future_symbol` names a dated future of the
    same asset (`BTC/USDT:USDT-250328`). `after_close` (a roll): open only once the hedge
    with that id is CLOSED, so the asset is never held twice or left half-hedged.
    """

    pair: str
    notional: Decimal
    reason: str
    metrics: Mapping[str, Decimal] = field(default_factory=dict)
    future_symbol: str | None = None
    after_close: int | None = None


@dataclass(frozen=True, slots=True)
class CloseHedge:
    """Close the hedge `hedge_id` completely."""

    hedge_id: int
    reason: str
    metrics: Mapping[str, Decimal] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ResizeHedge:
    """Bring the hedge `hedge_id` to `notional` USDT (both legs)."""

    hedge_id: int
    notional: Decimal
    reason: str
    metrics: Mapping[str, Decimal] = field(default_factory=dict)


Intent = OpenHedge | CloseHedge | ResizeHedge
