"""Liquidation of the simulated COIN-M account, by Binance's inverse maintenance rules.

Everything is in the coin. A position of s contracts (signed: short < 0) of `contract_size`
CS USD entered at E has, at mark M, unrealised P&L s × CS × (1/E − 1/M) and maintenance
margin |s| × CS / M × MMR − cum. It is liquidated when its collateral plus that P&L falls to
the maintenance margin; solving for M gives Binance's COIN-M liquidation price:

    LP = Σ (|s| × MMR + s) / ((collateral + Σ cum) / CS + Σ s / E)

over the symbol's positions (one-way: BOTH; hedge mode: LONG and SHORT share it in cross).
`collateral` is the isolated wallet of an isolated position; in cross mode the coin's cross
wallet less the other contracts' maintenance margin plus their unrealised P&L (Binance's
WB − TMM1 + UPNL1). A price ≤ 0, or no solution, means it is never liquidated: a short
whose collateral is at least its own notional in the coin (the bot's cross-margined COIN-M
hedge) cannot be, whatever the price does.

First maintenance tier only, as the USDⓈ-M side (`maintenance_rate`, cum = 0; Binance's
BTCUSD tier 1 is 0.4 % up to 50 BTC). When the margin balance reaches the maintenance
margin the positions are closed at the mark by `autoclose-…` orders (no fee), their P&L is
booked to the coin wallet and what margin is left goes to the insurance fund (which also
covers a deficit); open orders on them are cancelled. No partial liquidation or ADL.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING

from bot.domain import OrderRequest, OrderStatus, OrderType, PositionSide, Side
from bot.exchange.sim_state import OrderState, PositionState

if TYPE_CHECKING:
    from bot.exchange.sim_coinm import SimCoinmAccount
    from bot.exchange.sim_futures import PositionKey

logger = logging.getLogger(__name__)

_ZERO = Decimal(0)


def inverse_liquidation_price(
    legs: Sequence[tuple[Decimal, Decimal]],
    *,
    contract_size: Decimal,
    collateral: Decimal,
    rate: Decimal,
    cum: Decimal = _ZERO,
) -> Decimal | None:
    """The mark at which the signed `legs` (contracts, entry) of one COIN-M symbol are
    liquidated, backed by `collateral` coin; None when no positive price does it."""
    numerator = sum((abs(s) * rate + s for s, _ in legs), _ZERO)
    denominator = (collateral + cum) / contract_size + sum((s / e for s, e in legs), _ZERO)
    if denominator == 0 or numerator == 0:
        return None
    price = numerator / denominator
    return price if price > 0 else None


def collateral_of(acct: SimCoinmAccount, symbol: str, key: PositionKey | None = None) -> Decimal:
    """The coin backing `symbol`'s positions (isolated: `key`'s own margin)."""
    if key is not None and acct.is_isolated(symbol):
        return acct.positions[key].margin
    asset = acct._margin_asset(symbol)
    collateral = acct.wallet.get(asset, _ZERO)
    for (other, _), pos in acct.positions.items():
        if other == symbol or acct._margin_asset(other) != asset:
            continue
        if acct.is_isolated(other):
            collateral -= pos.margin  # held apart from the cross wallet
            continue
        mark = acct.market.mark(other, pos.entry)
        collateral += acct.unrealized(other, pos, mark) - maintenance_coin(acct, other, pos)
    return collateral


def maintenance_coin(acct: SimCoinmAccount, symbol: str, pos: PositionState) -> Decimal:
    """Maintenance margin of a position of `symbol` at its mark, in the coin."""
    mark = acct.market.mark(symbol, pos.entry)
    return abs(pos.size) * acct._size(symbol) / mark * acct.mmr


def liquidation_price_of(acct: SimCoinmAccount, key: PositionKey) -> Decimal | None:
    """The liquidation price of one position (cross: shared by the symbol's positions)."""
    symbol = key[0]
    isolated = acct.is_isolated(symbol)
    keys = [key] if isolated else [k for k in acct.positions if k[0] == symbol]
    legs = [(acct.positions[k].size, acct.positions[k].entry) for k in keys]
    return inverse_liquidation_price(
        legs,
        contract_size=acct._size(symbol),
        collateral=collateral_of(acct, symbol, key),
        rate=acct.mmr,
    )


def check_coinm_liquidations(acct: SimCoinmAccount) -> None:
    """Liquidate every isolated position, then each coin's cross positions, whose margin
    balance has fallen to the maintenance margin at the mark."""
    for key, pos in list(acct.positions.items()):
        symbol = key[0]
        if not acct.is_isolated(symbol):
            continue
        mark = acct.market.mark(symbol, pos.entry)
        equity = pos.margin + acct.unrealized(symbol, pos, mark)
        if equity <= maintenance_coin(acct, symbol, pos):
            _liquidate(acct, [key], equity, isolated=True)
    for asset in sorted({acct._margin_asset(s) for s, _ in acct.positions}):
        cross = [
            k
            for k in acct.positions
            if acct._margin_asset(k[0]) == asset and not acct.is_isolated(k[0])
        ]
        if not cross:
            continue
        equity = acct.wallet.get(asset, _ZERO)
        maint = _ZERO
        for k, pos in acct.positions.items():
            if acct._margin_asset(k[0]) != asset:
                continue
            if acct.is_isolated(k[0]):
                equity -= pos.margin
                continue
            mark = acct.market.mark(k[0], pos.entry)
            equity += acct.unrealized(k[0], pos, mark)
            maint += maintenance_coin(acct, k[0], pos)
        if equity <= maint:
            _liquidate(acct, cross, equity, isolated=False)


def _liquidate(
    acct: SimCoinmAccount, keys: Sequence[PositionKey], equity: Decimal, *, isolated: bool
) -> None:
    """Close `keys` at the mark (their P&L to the coin wallet); the margin balance left goes
    to the insurance fund (the last fill's fee), which also covers a deficit."""
    symbols = sorted({symbol for symbol, _ in keys})
    ledger, market = acct.ledger, acct.market
    for state in ledger.open_states():
        if state.request.symbol in symbols:
            ledger.finish(state, OrderStatus.CANCELED)
    asset = acct._margin_asset(keys[0][0])
    margin = acct.positions[keys[0]].margin if isolated else _ZERO
    closed: list[tuple[OrderState, str, Decimal, Decimal, Decimal]] = []
    for symbol, side_key in keys:
        pos = acct.positions[(symbol, side_key)]
        mark = market.mark(symbol, pos.entry)
        inst = acct.derivative(symbol)
        order_id = ledger.next_order_id()
        request = OrderRequest(
            symbol=symbol,
            side=Side.SELL if pos.size > 0 else Side.BUY,
            type=OrderType.MARKET,
            quantity=abs(pos.size),
            client_order_id=f"autoclose-{inst.exchange_symbol}-{order_id}",
            reduce_only=side_key is PositionSide.BOTH,
            position_side=side_key,
        )
        now = acct.now()
        state = OrderState(request, order_id, side_key, OrderStatus.FILLED, now, now)
        ledger.add(state)
        size = pos.size
        realized = acct.apply_to_position(symbol, side_key, -size, mark)
        acct.add_coin(asset, realized)
        closed.append((state, symbol, mark, abs(size), realized))
        logger.warning(
            "simulated COIN-M liquidation of %s %s %s at mark %s (realised %s %s)",
            symbol,
            side_key.value,
            size,
            mark,
            realized,
            asset,
        )
    if isolated:
        left = margin + closed[0][4]  # the isolated margin balance after its P&L
    else:  # the cross wallet of the coin, now that its cross positions are closed
        left = acct.wallet.get(asset, _ZERO) - sum(
            (p.margin for k, p in acct.positions.items() if acct._margin_asset(k[0]) == asset),
            _ZERO,
        )
    clearance = max(left, _ZERO)
    acct.add_coin(asset, -left)  # all of it is gone; a deficit is the insurance fund's
    for i, (state, symbol, mark, qty, realized) in enumerate(closed):
        fee = clearance if i == len(closed) - 1 else _ZERO
        ledger.record_fill(state, symbol, mark, qty, fee, asset, maker=False, realized=realized)
    for symbol in symbols:
        acct.record_exposure(symbol)
    acct.touch()
