"""Loading strategies by config name."""

from __future__ import annotations

import pytest

from strategies.funding_carry import FundingCarry
from strategies.runner import load_strategy


def test_load_strategy_by_config_name_returns_an_instance() -> None:
    assert isinstance(load_strategy("funding_carry"), FundingCarry)


def test_load_strategy_unknown_name_lists_the_registered_ones() -> None:
    with pytest.raises(KeyError, match="available: expected_carry, funding_carry"):
        load_strategy("martingale")
