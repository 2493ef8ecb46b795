"""Load a strategy by its config name, with the dated carries beside it."""

from __future__ import annotations

from bot.domain.strategy import Strategy, StrategyParams
from strategies import strategy_class
from strategies.best_carry import BestCarry


def load_strategy(name: str) -> Strategy[StrategyParams]:
    """Return an instance of the strategy registered as `name` (KeyError lists the names)."""
    strategy: Strategy[StrategyParams] = strategy_class(name)()
    return strategy


def load_carry_strategy(name: str) -> Strategy[StrategyParams]:
    """Return the strategy registered as `name` with the dated carries beside it
    (`BestCarry`, a pass-through while none is enabled or listed).
    """
    return BestCarry(load_strategy(name))
