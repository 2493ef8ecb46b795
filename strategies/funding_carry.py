"""`funding_carry`: hold long spot / short perp where smoothed funding beats costs."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, ClassVar, Literal, Self

from pydantic import Field, model_validator

from bot.domain import Intent, MarketSnapshot, Portfolio
from strategies.base import Fraction, NonNegativeDecimal, PositiveDecimal, StrategyParams

Apr = Annotated[Decimal, Field(ge=-10, le=100)]


class FundingCarryParams(StrategyParams):
    """Tuning of `funding_carry`. APRs and bases are fractions (0.10 = 10% a year)."""

    name: Literal["funding_carry"] = "funding_carry"
    entry_apr: Apr = Decimal("0.10")
    exit_apr: Apr = Decimal("0.03")
    horizon_hours: Annotated[int, Field(ge=1, le=24 * 365)] = 720
    max_entry_basis: NonNegativeDecimal = Decimal("0.0015")
    max_breakeven_hours: PositiveDecimal = Decimal("240")
    negative_periods_to_exit: Annotated[int, Field(ge=1)] = 3
    take_profit_basis: PositiveDecimal = Decimal("0.005")
    max_holding_hours: PositiveDecimal = Decimal("2160")
    rotation_margin_apr: NonNegativeDecimal = Decimal("0.05")
    min_hold_hours: NonNegativeDecimal = Decimal("24")
    cooldown_hours: NonNegativeDecimal = Decimal("24")
    predicted_weight: Fraction = Decimal("0.5")
    ewma_halflife_periods: PositiveDecimal = Decimal("9")
    history_periods: Annotated[int, Field(ge=1, le=1000)] = 21
    slippage_bps: NonNegativeDecimal = Decimal("2")

    @model_validator(mode="after")
    def _check_hysteresis(self) -> Self:
        if self.exit_apr >= self.entry_apr:
            raise ValueError(
                f"exit_apr = {self.exit_apr}: must be below entry_apr ({self.entry_apr}) "
                "so positions are not opened and closed on the same signal"
            )
        if self.min_hold_hours > self.max_holding_hours:
            raise ValueError(
                f"min_hold_hours = {self.min_hold_hours}: must not exceed "
                f"max_holding_hours ({self.max_holding_hours})"
            )
        return self


class FundingCarry:
    """The default strategy. See README, section "Strategy: funding_carry"."""

    name: ClassVar[str] = "funding_carry"
    params_model: ClassVar[type[StrategyParams]] = FundingCarryParams

    def evaluate(
        self, snapshot: MarketSnapshot, portfolio: Portfolio, params: FundingCarryParams
    ) -> list[Intent]:
        """Return the intents for this snapshot (implemented in the strategy issue)."""
        raise NotImplementedError("funding_carry.evaluate lands with the strategy engine")
