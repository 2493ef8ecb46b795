"""Strategies, loaded by name from `[strategy] name` in the config."""

from __future__ import annotations

from typing import Any

from bot.domain.strategy import StrategyParams
from strategies.expected_carry import ExpectedCarry
from strategies.funding_carry import FundingCarry

REGISTRY: dict[str, type[Any]] = {
    FundingCarry.name: FundingCarry,
    ExpectedCarry.name: ExpectedCarry,
}


def strategy_class(name: str) -> type[Any]:
    """Return the strategy class registered as `name`, or raise KeyError listing the names."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(
            f"unknown strategy {name!r}; available: {', '.join(sorted(REGISTRY))}"
        ) from None


def params_model(name: str) -> type[StrategyParams]:
    """Return the parameter model of the strategy `name`."""
    model: type[StrategyParams] = strategy_class(name).params_model
    return model
