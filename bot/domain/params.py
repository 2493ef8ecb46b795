"""Settings shared by the strategy, the risk gate, the executor and the exchanges.

Fees (paper fills and cost estimates), sizing (how much a strategy allocates) and the universe
(which pairs are considered). The composition root builds them from the config's `[fees]`,
`[sizing]` + `[risk]` and `[universe]` sections; nothing here reads a file.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import Field

from bot.domain.frozen import Fraction, FrozenModel, NonNegativeDecimal, PositiveDecimal


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
