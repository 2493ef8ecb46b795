"""Binance's published fee schedule: VIP tiers and the BNB discount, as fractions.

Regular users, 2025 (binance.com/en/fee/schedule, /en/fee/futureFee). The account's own
rates (ccxt `fetch_trading_fees`, `/fapi/v1/commissionRate`) replace these when live.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

D = Decimal

# tier: (spot maker, spot taker, USDⓈ-M maker, USDⓈ-M taker)
VIP_RATES: dict[int, tuple[Decimal, Decimal, Decimal, Decimal]] = {
    0: (D("0.001"), D("0.001"), D("0.0002"), D("0.0005")),
    1: (D("0.0009"), D("0.001"), D("0.00016"), D("0.0004")),
    2: (D("0.0008"), D("0.001"), D("0.00014"), D("0.00035")),
    3: (D("0.00042"), D("0.0006"), D("0.00012"), D("0.00032")),
    4: (D("0.00042"), D("0.00054"), D("0.0001"), D("0.0003")),
    5: (D("0.00036"), D("0.00048"), D("0.00008"), D("0.00027")),
    6: (D("0.0003"), D("0.00042"), D("0.00006"), D("0.00025")),
    7: (D("0.00024"), D("0.00036"), D("0.00004"), D("0.00022")),
    8: (D("0.00018"), D("0.0003"), D("0.00002"), D("0.0002")),
    9: (D("0.00012"), D("0.00024"), D("0"), D("0.00017")),
}
SPOT_BNB_DISCOUNT = D("0.25")
"""Spot fees paid in BNB are 25% lower."""
FUTURES_BNB_DISCOUNT = D("0.10")
"""USDⓈ-M fees paid in BNB (held in the futures wallet) are 10% lower."""


@dataclass(frozen=True, slots=True)
class AccountFees:
    """The fee rates an account pays before any BNB discount, and whether BNB pays them."""

    spot_maker: Decimal
    spot_taker: Decimal
    futures_maker: Decimal
    futures_taker: Decimal
    vip_tier: int | None = None
    spot_bnb: bool = False
    futures_bnb: bool = False


def paid_rate(rate: Decimal, *, bnb: bool, discount: Decimal) -> Decimal:
    """Return the fee rate paid: `rate`, less `discount` of it when BNB pays the fee."""
    return rate * (1 - discount) if bnb else rate
