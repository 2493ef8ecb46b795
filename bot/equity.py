"""Equity of a balance snapshot, and whether it is complete.

An equity figure with a held asset left unpriced is not an equity figure: a restarted bot
that values its spot BTC at nothing before its first quote would see a "daily loss" of the
whole position. So a snapshot is complete only when every held asset that has a USDT market
has a fresh price; otherwise it is deferred (not written, not used) until one arrives.
Assets without any USDT market (never quoted) are left out of equity on every snapshot
alike, so they cannot move the day's P&L either.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from bot.domain import Balance, FuturesAccount
from bot.domain.ledger import BalanceSnapshot

ZERO = Decimal(0)
QUOTE = "USDT"


@dataclass(frozen=True, slots=True)
class EquitySnapshot:
    """The rows of one balance snapshot and its equity; `missing`: held assets not priced."""

    rows: list[BalanceSnapshot]
    equity: Decimal
    missing: tuple[str, ...]

    @property
    def complete(self) -> bool:
        return not self.missing


def equity_snapshot(
    now: datetime,
    spot: Mapping[str, Balance],
    futures: FuturesAccount,
    prices: Mapping[str, Decimal],
    priceable: Set[str],
    *,
    wallets: tuple[str, str] = ("spot", "futures"),
    coinm: Mapping[str, FuturesAccount] | None = None,
) -> EquitySnapshot:
    """Value the wallets at `prices` (fresh USDT prices per asset).

    `priceable` names the assets that have a USDT market: one of those held without a
    price makes the snapshot incomplete. `coinm` holds COIN-M wallets per coin (figures in
    the coin): their margin balance (wallet + the shorts' P&L) is valued at the coin's
    price, so moving a hedge's coin between wallets leaves equity unchanged.
    """
    rows: list[BalanceSnapshot] = []
    missing: list[str] = []
    equity = futures.margin_balance
    for asset, bal in sorted(spot.items()):
        if bal.total <= 0:
            continue
        price = Decimal(1) if asset == QUOTE else prices.get(asset)
        if price is None and asset in priceable:
            missing.append(asset)
        value = bal.total * price if price is not None else None
        equity += value or ZERO
        rows.append(BalanceSnapshot(now, wallets[0], asset, bal.free, bal.locked, value))
    rows.append(
        BalanceSnapshot(
            now,
            wallets[1],
            QUOTE,
            futures.available_balance,
            futures.margin_balance - futures.available_balance,
            futures.margin_balance,
        )
    )
    for asset, acct in sorted((coinm or {}).items()):
        if acct.margin_balance == 0:
            continue
        price = prices.get(asset)
        if price is None:
            missing.append(asset)
        value = acct.margin_balance * price if price is not None else None
        equity += value or ZERO
        free = acct.available_balance
        rows.append(BalanceSnapshot(now, "coinm", asset, free, acct.margin_balance - free, value))
    rows.append(BalanceSnapshot(now, "total", QUOTE, equity, ZERO, equity))
    return EquitySnapshot(rows, equity, tuple(missing))
