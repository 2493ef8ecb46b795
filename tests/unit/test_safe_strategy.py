"""Running a strategy so that its exceptions never reach the bot."""

from __future__ import annotations

import logging
from typing import ClassVar

import pytest

from bot.domain import Intent, MarketSnapshot, Portfolio
from bot.domain.strategy import StrategyParams
from bot.safe_strategy import SafeStrategy
from bot.strategy_host import load_safe_strategy
from strategies.funding_carry import FundingCarryParams
from tests import kit
from tests.unit.strategies.scenario import Market, market_snapshot


class Exploding:
    name: ClassVar[str] = "exploding"
    params_model: ClassVar[type[StrategyParams]] = FundingCarryParams

    def evaluate(
        self, snapshot: MarketSnapshot, portfolio: Portfolio, params: StrategyParams
    ) -> list[Intent]:
        raise ZeroDivisionError("bad maths")


def test_safe_strategy_exception_is_logged_with_snapshot_time_and_gives_no_intents(
    caplog: pytest.LogCaptureFixture,
) -> None:
    safe = SafeStrategy(Exploding())
    snap = kit.snapshot()

    with caplog.at_level(logging.ERROR, logger="bot.safe_strategy"):
        intents = safe.evaluate(snap, Portfolio(hedges=()), FundingCarryParams())

    assert intents == []
    assert safe.failures == 1
    (record,) = caplog.records
    assert "exploding" in record.getMessage()
    assert snap.taken_at.isoformat() in record.getMessage()
    assert record.exc_info is not None


def test_safe_strategy_passes_intents_through() -> None:
    safe = load_safe_strategy("funding_carry")
    snap = market_snapshot(Market("BTC", rate="0.0005"))

    intents = safe.evaluate(snap, Portfolio(hedges=()), FundingCarryParams())

    assert [type(i).__name__ for i in intents] == ["OpenHedge"]
    assert safe.failures == 0
