"""COIN-M (inverse) contract maths: sizing in contracts, P&L in coin and in USDT.

An inverse contract is worth `contract_size` USD (BTC: 100, others: 10) and is margined and
settled in the coin. A hedge holds spot coin bought with USDT and shorts the USD value of
that coin in whole contracts; what is left over (less than one contract) is unhedged.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class InverseSize:
    """A COIN-M short for a USD notional: whole contracts and the unhedged rest."""

    contracts: Decimal
    hedged_usd: Decimal  # contracts × contract size
    unhedged_usd: Decimal  # notional − hedged, always < one contract


def contracts_for(notional_usd: Decimal, contract_size: Decimal) -> InverseSize:
    """Return the whole contracts shorting at most `notional_usd`, and what is left over."""
    if contract_size <= 0:
        raise ValueError(f"contract_size = {contract_size}: must be positive")
    if notional_usd < 0:
        raise ValueError(f"notional_usd = {notional_usd}: must not be negative")
    contracts = (notional_usd / contract_size).to_integral_value(rounding=ROUND_FLOOR)
    hedged = contracts * contract_size
    return InverseSize(contracts, hedged, notional_usd - hedged)


def short_pnl_coin(
    contracts: Decimal, contract_size: Decimal, entry: Decimal, exit_price: Decimal
) -> Decimal:
    """Return a short's P&L in coin: contracts × size × (1 / exit − 1 / entry)."""
    if entry <= 0 or exit_price <= 0:
        raise ValueError("prices must be positive")
    return contracts * contract_size * (1 / exit_price - 1 / entry)


def hedge_value_usdt(
    spot_coin: Decimal,
    contracts: Decimal,
    contract_size: Decimal,
    entry: Decimal,
    future_price: Decimal,
    spot_price: Decimal,
) -> Decimal:
    """Return a spot + COIN-M short hedge in USDT: (coin held + the short's coin P&L) × spot.

    The short's P&L is paid in coin (marked at the future's price); the coin is worth the
    spot price in USDT.
    """
    coin = spot_coin + short_pnl_coin(contracts, contract_size, entry, future_price)
    return coin * spot_price
