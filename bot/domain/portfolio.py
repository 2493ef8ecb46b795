"""What a strategy knows about the bot's own positions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from bot.domain.hedge import Hedge


@dataclass(frozen=True, slots=True)
class Portfolio:
    """Open hedges, recent closes (for cooldowns) and capital, as of the snapshot."""

    hedges: Sequence[Hedge]
    last_closed_at: Mapping[str, datetime] = field(default_factory=dict)
    equity: Decimal = Decimal(0)
    available_quote: Decimal = Decimal(0)

    def open_hedges(self) -> list[Hedge]:
        return [h for h in self.hedges if h.state.is_active]

    def notional_by_pair(self) -> dict[str, Decimal]:
        totals: dict[str, Decimal] = {}
        for h in self.open_hedges():
            totals[h.pair] = totals.get(h.pair, Decimal(0)) + h.sized_notional
        return totals
