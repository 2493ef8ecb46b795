"""The strategy interface: pure functions of a snapshot, loaded by name from config.

A strategy imports only `bot.domain` and this module. It never does I/O and never reads a
clock: the time is `snapshot.taken_at`.
"""

from __future__ import annotations

from decimal import Decimal
from types import UnionType
from typing import (
    Annotated,
    Any,
    ClassVar,
    Literal,
    Protocol,
    Self,
    TypeVar,
    Union,
    get_args,
    get_origin,
)

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from bot.domain import Intent, MarketSnapshot, Portfolio
from bot.domain.fee_schedule import (
    FUTURES_BNB_DISCOUNT,
    SPOT_BNB_DISCOUNT,
    VIP_RATES,
    AccountFees,
    paid_rate,
)

Fraction = Annotated[Decimal, Field(ge=0, le=1)]
PositiveDecimal = Annotated[Decimal, Field(gt=0)]
NonNegativeDecimal = Annotated[Decimal, Field(ge=0)]


def _numeric_kinds(annotation: Any) -> set[type]:
    """The number types an annotation accepts, through Optional/Union/Annotated."""
    if annotation in (int, float, Decimal):
        return {annotation}
    kinds: set[type] = set()
    if get_origin(annotation) in (Union, UnionType, Annotated):
        for arg in get_args(annotation):
            kinds |= _numeric_kinds(arg)
    return kinds


def _refuse_loose_number(value: Any, kinds: set[type], where: str = "") -> None:
    if isinstance(value, bool):
        raise PydanticCustomError(
            "bool_is_not_a_number",
            f"{where}must be a number, not a boolean (write e.g. 2, not true)",
        )
    if isinstance(value, str) and kinds & {int, float}:
        raise PydanticCustomError(
            "str_is_not_a_number", f'{where}must be a number, not a string (write 2, not "2")'
        )


class FrozenModel(BaseModel):
    """A frozen config model that rejects unknown keys, and loose numbers.

    Pydantic's lax mode would read `leverage = true` as 1 and `"2"` as 2: an int or float key
    takes only a TOML number (a Decimal key also takes an exact decimal string, never a bool).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)

    @field_validator("*", mode="before")
    @classmethod
    def _strict_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        if field is None:
            return value
        annotation = field.annotation
        if annotation is bool:
            return value
        kinds = _numeric_kinds(annotation)
        if kinds:
            _refuse_loose_number(value, kinds)
        elif get_origin(annotation) is dict and isinstance(value, dict):
            inner = _numeric_kinds(get_args(annotation)[-1])
            for key, item in value.items() if inner else ():
                _refuse_loose_number(item, inner, f"the value of {key} ")
        return value


class FeeParams(FrozenModel):
    """Binance fee rates as fractions (0.001 = 0.1%). Used by paper fills and cost estimates.

    `vip_tier` takes the four rates from Binance's published schedule (rates set
    explicitly win); `bnb_discount` pays fees in BNB: spot 25% and USDⓈ-M 10% lower.
    `effective()` is what is charged and costed: the rates after both.
    """

    spot_taker: Fraction = Decimal("0.001")
    spot_maker: Fraction = Decimal("0.001")
    futures_taker: Fraction = Decimal("0.0005")
    futures_maker: Fraction = Decimal("0.0002")
    vip_tier: Annotated[int, Field(ge=0, le=9)] | None = None
    bnb_discount: bool = False

    @model_validator(mode="before")
    @classmethod
    def _tier_rates(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("vip_tier") is None:
            return data
        tier = data["vip_tier"]
        if isinstance(tier, bool) or not isinstance(tier, int) or tier not in VIP_RATES:
            return data  # the field's own validation names the problem
        spot_maker, spot_taker, futures_maker, futures_taker = VIP_RATES[tier]
        return {
            "spot_maker": spot_maker,
            "spot_taker": spot_taker,
            "futures_maker": futures_maker,
            "futures_taker": futures_taker,
            **data,
        }

    def effective(self) -> FeeParams:
        """Return the rates paid, BNB discount applied (and no further discount to apply)."""
        if not self.bnb_discount:
            return self
        return FeeParams.of_account(
            AccountFees(
                self.spot_maker,
                self.spot_taker,
                self.futures_maker,
                self.futures_taker,
                self.vip_tier,
                spot_bnb=True,
                futures_bnb=True,
            )
        )

    @classmethod
    def of_account(cls, account: AccountFees) -> FeeParams:
        """Return the rates an account pays, its BNB discounts applied."""
        return cls(
            spot_taker=paid_rate(
                account.spot_taker, bnb=account.spot_bnb, discount=SPOT_BNB_DISCOUNT
            ),
            spot_maker=paid_rate(
                account.spot_maker, bnb=account.spot_bnb, discount=SPOT_BNB_DISCOUNT
            ),
            futures_taker=paid_rate(
                account.futures_taker, bnb=account.futures_bnb, discount=FUTURES_BNB_DISCOUNT
            ),
            futures_maker=paid_rate(
                account.futures_maker, bnb=account.futures_bnb, discount=FUTURES_BNB_DISCOUNT
            ),
            vip_tier=account.vip_tier,
        )


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
    slippage_bps: NonNegativeDecimal = Decimal("2")

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
    """Base of every strategy's parameters; the loader fills `sizing`, `fees` and `universe`.

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
