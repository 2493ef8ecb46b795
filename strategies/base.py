"""The strategy interface: pure functions of a snapshot, loaded by name from config.

A strategy imports only `bot.domain` and this module. It never does I/O and never reads a
clock: the time is `snapshot.taken_at`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, ClassVar, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from bot.domain import Intent, MarketSnapshot, Portfolio

Fraction = Annotated[Decimal, Field(ge=0, le=1)]
PositiveDecimal = Annotated[Decimal, Field(gt=0)]
NonNegativeDecimal = Annotated[Decimal, Field(ge=0)]


class FrozenModel(BaseModel):
    """A frozen config model that rejects unknown keys."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)


class FeeParams(FrozenModel):
    """Binance fee rates as fractions (0.001 = 0.1%). Used by paper fills and cost estimates."""

    spot_taker: Fraction = Decimal("0.001")
    spot_maker: Fraction = Decimal("0.001")
    futures_taker: Fraction = Decimal("0.0005")
    futures_maker: Fraction = Decimal("0.0002")


class SizingParams(FrozenModel):
    """How much the strategy allocates, in quote currency (USDT)."""

    notional_per_hedge: PositiveDecimal = Decimal("1000")
    max_hedges: Annotated[int, Field(ge=1)] = 3
    max_total_notional: PositiveDecimal = Decimal("3000")
    max_notional_per_symbol: PositiveDecimal = Decimal("1000")


class UniverseParams(FrozenModel):
    """Which pairs are considered: explicit `symbols`, or every spot+perp pair passing filters."""

    symbols: tuple[str, ...] = ("BTC/USDT", "ETH/USDT")
    quote: str = "USDT"
    min_quote_volume_24h: NonNegativeDecimal = Decimal("50000000")
    min_listing_age_days: Annotated[int, Field(ge=0)] = 30
    deny: tuple[str, ...] = ()
    top_n: Annotated[int, Field(ge=1)] = 10


class StrategyParams(FrozenModel):
    """Base of every strategy's parameters; the loader fills `sizing`, `fees` and `universe`.

    Each strategy narrows `name` to a `Literal` of its registered name.
    """

    name: str
    sizing: SizingParams = SizingParams()
    fees: FeeParams = FeeParams()
    universe: UniverseParams = UniverseParams()

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
