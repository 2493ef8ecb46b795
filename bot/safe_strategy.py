"""Run a strategy so that its exceptions never reach the bot."""

from __future__ import annotations

import logging

from bot.domain import Intent, MarketSnapshot, Portfolio
from bot.domain.strategy import Strategy, StrategyParams

log = logging.getLogger(__name__)


class SafeStrategy:
    """Wrap a strategy: an exception in `evaluate` is logged and gives no intents."""

    def __init__(self, strategy: Strategy[StrategyParams]) -> None:
        self.strategy = strategy
        self.failures = 0

    @property
    def name(self) -> str:
        return self.strategy.name

    def evaluate(
        self, snapshot: MarketSnapshot, portfolio: Portfolio, params: StrategyParams
    ) -> list[Intent]:
        """Return the strategy's intents, or none if it raised (logged with the snapshot time)."""
        try:
            intents = self.strategy.evaluate(snapshot, portfolio, params)
        except Exception:
            self.failures += 1
            log.exception(
                "Strategy %s failed on the snapshot taken at %s; no intents this cycle",
                self.strategy.name,
                snapshot.taken_at.isoformat(),
            )
            return []
        return list(intents)
