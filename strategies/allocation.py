"""How much room the sizing limits leave for a new hedge."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from bot.domain import Hedge
from bot.domain.params import SizingParams

ZERO = Decimal(0)


@dataclass(slots=True)
class Capacity:
    """Hedges and notional held against `sizing`'s limits; updated as intents are planned."""

    sizing: SizingParams
    count: int = 0
    total: Decimal = ZERO
    by_pair: dict[str, Decimal] = field(default_factory=dict)

    @classmethod
    def of(cls, hedges: Iterable[Hedge], sizing: SizingParams) -> Capacity:
        """Count `hedges` (any active state) against the limits, each at the notional it was
        opened for (`Hedge.sized_notional`)."""
        capacity = cls(sizing)
        for hedge in hedges:
            capacity.add(hedge.pair, hedge.sized_notional)
        return capacity

    def add(self, pair: str, notional: Decimal) -> None:
        self.count += 1
        self.total += notional
        self.by_pair[pair] = self.by_pair.get(pair, ZERO) + notional

    def remove(self, pair: str, notional: Decimal) -> None:
        self.count -= 1
        self.total -= notional
        self.by_pair[pair] = self.by_pair.get(pair, ZERO) - notional

    def size_for(self, pair: str, min_notional: Decimal) -> Decimal | None:
        """Return the notional of a new hedge on `pair`, or None when there is no room.

        size = min(notional_per_hedge, max_notional_per_symbol − held on pair,
        max_total_notional − held in total), if fewer than `max_hedges` are held and the
        size reaches `min_notional` (the larger of the two legs' exchange minimum).
        """
        sizing = self.sizing
        if self.count >= sizing.max_hedges:
            return None
        size = min(
            sizing.notional_per_hedge,
            sizing.max_notional_per_symbol - self.by_pair.get(pair, ZERO),
            sizing.max_total_notional - self.total,
        )
        if size <= 0 or size < min_notional:
            return None
        return size
