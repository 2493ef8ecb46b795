"""What a strategy asks for. Every intent carries the numbers that justified it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class OpenHedge:
    """Open a new hedge on `pair` (spot symbol, e.g. `BTC/USDT`) for `notional` USDT."""

    pair: str
    notional: Decimal
    reason: str
    metrics: Mapping[str, Decimal] = field(default_factory=dict)


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
