"""The strategy registry as the bot sees it: the one module of `bot/` that imports `strategies/`.

Config validation asks it for the parameter model of each registered strategy, the
composition root for the strategy to run and the parameters it runs with. Everything else
in `bot/` sees a strategy only through `bot.domain.strategy` and `bot.safe_strategy`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import strategies
from bot.domain.params import SizingParams
from bot.domain.strategy import StrategyParams
from bot.safe_strategy import SafeStrategy
from strategies.runner import load_carry_strategy

if TYPE_CHECKING:
    from bot.config import Config

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


def strategy_params(config: Config) -> StrategyParams:
    """Return the parameters the strategy runs with: its `[strategy]` section, and the
    `[fees]` and `[universe]` the rest of the bot uses, `[sizing]` with the `[risk]` limits
    the risk gate enforces (so the strategy sizes within them).
    """
    sizing = SizingParams(
        notional_per_hedge=config.sizing.notional_per_hedge,
        max_hedges=config.risk.max_open_hedges,
        max_total_notional=config.risk.max_total_notional,
        max_notional_per_symbol=config.risk.max_notional_per_symbol,
    )
    return config.strategy.model_copy(
        update={"sizing": sizing, "fees": config.fees, "universe": config.universe}
    )
