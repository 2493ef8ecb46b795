"""Settings shared by the strategy, the risk gate, the executor and the exchanges.

Fees (paper fills and cost estimates), sizing (how much a strategy allocates) and the universe
(which pairs are considered). The composition root builds them from the config's `[fees]`,
`[sizing]` + `[risk]` and `[universe]` sections; nothing here reads a file.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import Field, model_validator

from bot.domain.fee_schedule import (
    FUTURES_BNB_DISCOUNT,
    SPOT_BNB_DISCOUNT,
    VIP_RATES,
    AccountFees,
    paid_rate,
)
from bot.domain.frozen import Fraction, FrozenModel, NonNegativeDecimal, PositiveDecimal


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
    """How much the strategy allocates, in quote currency (USDT).

    Built from `[sizing] notional_per_hedge` and the `[risk]` limits the risk gate enforces
    (`max_hedges` is `risk.max_open_hedges`): the strategy sizes within the gate's limits.
    """

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
