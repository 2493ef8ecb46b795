"""The strategy registry as the bot sees it: the one module of `bot/` that imports `strategies/`.

Config validation asks it for the parameter model of each registered strategy, the
composition root for the strategy to run. Everything else in `bot/` sees a strategy only
through `bot.domain.strategy` and `bot.safe_strategy`.
"""

from __future__ import annotations

import strategies
from bot.domain.strategy import StrategyParams
from bot.safe_strategy import SafeStrategy
from strategies.runner import load_carry_strategy

STRATEGY_NAMES: tuple[str, ...] = tuple(strategies.REGISTRY)
"""The registered strategy names, in registration order."""


def params_model(name: str) -> type[StrategyParams]:
    """Return the parameter model of the strategy `name` (KeyError lists the names)."""
    return strategies.params_model(name)


def load_safe_strategy(name: str) -> SafeStrategy:
    """Return the strategy registered as `name`, dated carries beside it, wrapped by
    `SafeStrategy`.
    """
    return SafeStrategy(load_carry_strategy(name))
