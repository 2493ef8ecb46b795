"""Load a strategy by its config name and run it so that its exceptions never reach the bot."""

from __future__ import annotations

import logging

from bot.domain import Intent, MarketSnapshot, Portfolio
from strategies import strategy_class
from strategies.base import Strategy, StrategyParams
from strategies.best_carry import BestCarry

log = logging.getLogger(__name__)


def load_strategy(name: str) -> Strategy[StrategyParams]:
    """Return an instance of the strategy registered as `name` (KeyError lists the names)."""
    strategy: Strategy[StrategyParams] = strategy_class(name)()
    return strategy


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


def load_safe_strategy(name: str) -> SafeStrategy:
    """Return the strategy registered as `name` with the dated carries beside it
    (`BestCarry`, a pass-through while none is enabled or listed), wrapped by `SafeStrategy`.
    """
    return SafeStrategy(BestCarry(load_strategy(name)))
