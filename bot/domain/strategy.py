"""The strategy interface: pure functions of a snapshot, loaded by name from config.

A strategy imports only `bot.domain`. It never does I/O and never reads a clock: the time is
`snapshot.taken_at`. The bot sees a strategy through `Strategy` and its parameters through
`StrategyParams`; which strategies exist is the registry's business (`strategies/`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, ClassVar, Literal, Protocol, Self, TypeVar

from pydantic import Field, field_validator, model_validator

from bot.domain.frozen import FrozenModel, NonNegativeDecimal
from bot.domain.intents import Intent
from bot.domain.market import MarketSnapshot
from bot.domain.params import FeeParams, SizingParams, UniverseParams
from bot.domain.portfolio import Portfolio

CarryInstrument = Literal["perpetual", "quarterly", "coinm"]


class DatedParams(FrozenModel):
    """`[strategy.dated]`: the dated-future carry (spot long, quarterly short, basis to expiry).

    APRs are fractions a year, `take_profit_basis` a share of the basis sold at entry.
    """

    entry_apr: Annotated[Decimal, Field(ge=-10, le=100)] = Decimal("0.05")
    min_days_to_expiry: Annotated[Decimal, Field(ge=0)] = Decimal("7")
    take_profit_basis: Annotated[Decimal, Field(gt=0, le=1)] = Decimal("0.8")
    exit_before_delivery_hours: Annotated[Decimal, Field(ge=0)] = Decimal("24")
    hold_to_settlement: bool = False
    roll_before_delivery_hours: Annotated[Decimal, Field(ge=0)] = Decimal("72")
    roll_margin_apr: Annotated[Decimal, Field(ge=0)] = Decimal("0")
    assumed_slippage_bps: NonNegativeDecimal = Decimal("2")

    @model_validator(mode="after")
    def _check_windows(self) -> Self:
        if self.roll_before_delivery_hours < self.exit_before_delivery_hours:
            raise ValueError(
                f"roll_before_delivery_hours = {self.roll_before_delivery_hours}: must not be "
                f"below exit_before_delivery_hours ({self.exit_before_delivery_hours}), "
                "or a hedge is closed before it may roll"
            )
        return self


class StrategyParams(FrozenModel):
    """Base of every strategy's parameters; the composition root fills `sizing`, `fees` and
    `universe` from the config's top-level sections (`[risk]` gives the sizing limits).

    Each strategy narrows `name` to a `Literal` of its registered name. `instruments` names
    the carries considered per asset (`perpetual` funding, `quarterly` USDⓈ-M dated basis,
    `coinm` coin-margined dated basis); `dated` tunes the dated ones.
    """

    name: str
    sizing: SizingParams = SizingParams()
    fees: FeeParams = FeeParams()
    universe: UniverseParams = UniverseParams()
    instruments: tuple[CarryInstrument, ...] = ("perpetual", "quarterly")
    dated: DatedParams = DatedParams()

    @field_validator("instruments")
    @classmethod
    def _some_instruments(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("name at least one of 'perpetual', 'quarterly', 'coinm'")
        if len(set(value)) != len(value):
            raise ValueError(f"{list(value)} names an instrument twice")
        return value

    @property
    def trades_dated(self) -> bool:
        """Whether any dated-future carry is enabled."""
        return "quarterly" in self.instruments or "coinm" in self.instruments

    RESERVED: ClassVar[frozenset[str]] = frozenset({"sizing", "fees", "universe"})


P_contra = TypeVar("P_contra", bound=StrategyParams, contravariant=True)


class Strategy(Protocol[P_contra]):
    """A named strategy: `evaluate` turns a snapshot and the portfolio into intents."""

    name: ClassVar[str]
    params_model: ClassVar[type[StrategyParams]]

    def evaluate(
        self, snapshot: MarketSnapshot, portfolio: Portfolio, params: P_contra
    ) -> list[Intent]:
        """Return what to open, close or resize now. Must not raise for normal market data."""
        ...
