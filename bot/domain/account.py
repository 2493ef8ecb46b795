"""Balances, positions, position and margin modes, funding payments."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from bot.domain.orders import PositionSide


class PositionMode(StrEnum):
    ONE_WAY = "one_way"
    HEDGE = "hedge"


class MarginMode(StrEnum):
    CROSS = "cross"
    ISOLATED = "isolated"


@dataclass(frozen=True, slots=True)
class Balance:
    """One asset in one wallet."""

    asset: str
    free: Decimal
    locked: Decimal

    @property
    def total(self) -> Decimal:
        return self.free + self.locked


@dataclass(frozen=True, slots=True)
class FuturesAccount:
    """The USDⓈ-M wallet: balances in the margin asset (USDT)."""

    wallet_balance: Decimal
    unrealized_pnl: Decimal
    margin_balance: Decimal
    available_balance: Decimal
    maintenance_margin: Decimal
    initial_margin: Decimal
    assets: Mapping[str, Balance] = field(default_factory=dict)

    @property
    def margin_ratio(self) -> Decimal | None:
        """Maintenance margin over margin balance (Binance's account margin ratio)."""
        if self.margin_balance <= 0:
            return None
        return self.maintenance_margin / self.margin_balance


@dataclass(frozen=True, slots=True)
class Position:
    """An open perpetual position. `size` is positive; `is_short` tells the direction."""

    symbol: str
    position_side: PositionSide
    size: Decimal
    is_short: bool
    entry_price: Decimal
    mark_price: Decimal
    liquidation_price: Decimal | None
    unrealized_pnl: Decimal
    leverage: int
    margin_mode: MarginMode
    margin_ratio: Decimal | None = None
    notional: Decimal | None = None

    @property
    def signed_size(self) -> Decimal:
        return -self.size if self.is_short else self.size

    def liquidation_distance(self) -> Decimal | None:
        """Fraction the mark must move against the position to reach liquidation."""
        if self.liquidation_price is None or self.liquidation_price <= 0 or self.mark_price <= 0:
            return None
        if self.is_short:
            return (self.liquidation_price - self.mark_price) / self.mark_price
        return (self.mark_price - self.liquidation_price) / self.mark_price


@dataclass(frozen=True, slots=True)
class FundingPayment:
    """Funding received (positive) or paid (negative) on one perpetual at one funding time."""

    symbol: str
    funding_time: datetime
    amount: Decimal
    asset: str = "USDT"
    rate: Decimal | None = None
    mark_price: Decimal | None = None
    position_size: Decimal | None = None
    income_id: str | None = None

    def usdt_value(self) -> Decimal:
        """The payment in USDT: as is when paid in USDT, a coin's (COIN-M) at `mark_price`
        (0 with a warning-worthy missing mark: see `funding_usdt`)."""
        return funding_usdt(self.amount, self.asset, self.mark_price)


def funding_usdt(amount: Decimal, asset: str, mark_price: Decimal | None) -> Decimal:
    """A funding payment in USDT: USDT as is, a coin (COIN-M, paid in the coin) at the mark
    price recorded with it; 0 when a coin payment has no mark."""
    if asset == "USDT":
        return amount
    return amount * mark_price if mark_price else Decimal(0)
