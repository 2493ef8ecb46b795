"""What a strategy asks for. Every intent carries the numbers that justified it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class OpenHedge:
    """Open a new hedge on `pair` (spot symbol, e.g. `BTC/USDT`) for `notional` USDT.

    The short leg is the pair's perpetual unless `future_symbol` names a dated future of the
    same asset (`BTC/USDT:USDT-250328`).
    """

    pair: str
    notional: Decimal
    reason: str
    metrics: Mapping[str, Decimal] = field(default_factory=dict)
    future_symbol: str | None = None


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


@dataclass(frozen=True, slots=True)
class RollHedge:
    """Move the short of the dated hedge `hedge_id` to `future_symbol`, keeping its spot.

    The hedge keeps its id and its spot leg; the short on the contract it holds is bought
    back and the same exposure sold on `future_symbol` (a later contract of the same asset
    and margin), both orders at once.
    """

    hedge_id: int
    future_symbol: str
    reason: str
    metrics: Mapping[str, Decimal] = field(default_factory=dict)


Intent = OpenHedge | CloseHedge | ResizeHedge | RollHedge
