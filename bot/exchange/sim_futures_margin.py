"""Margin of the simulated futures account: what it shows, what is available, liquidation.

First maintenance tier only: cross or isolated margin with leverage per symbol; position
initial margin |size| x mark / leverage, an isolated position holds entry notional /
leverage; maintenance at `maintenance_rate` of notional at the mark; available balance =
cross wallet + cross unrealised PnL - cross initial margin - open-order margin. Unrealised
PnL and liquidation price are at the mark. When the margin balance (cross: cross wallet +
cross PnL; isolated: its margin + PnL) falls to the maintenance margin the positions are
closed at the mark by `autoclose-…` orders and the remaining margin is lost (the insurance
fund covers a deficit); open orders on them are cancelled. No partial liquidation or ADL.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING

from bot.domain import (
    Balance,
    FuturesAccount,
    MarginMode,
    OrderRequest,
    OrderStatus,
    OrderType,
    Position,
    PositionSide,
    Side,
)
from bot.exchange.sim_margin import (
    initial_margin,
    liquidation_price,
    maintenance_margin,
    unrealized_pnl,
)
from bot.exchange.sim_matching import limit_price
from bot.exchange.sim_state import OrderState, PositionState

if TYPE_CHECKING:
    from bot.exchange.sim_futures import PositionKey, SimFuturesAccount

logger = logging.getLogger(__name__)

MARGIN_ASSET = "USDT"
_ZERO = Decimal(0)


def account_view(acct: SimFuturesAccount) -> FuturesAccount:
    """Return the USDⓈ-M wallet in USDT: balance, PnL, margins, available."""
    wallet = acct.wallet.get(MARGIN_ASSET, _ZERO)
    pnl = maint = iso = cross_pnl = cross_im = _ZERO
    for (symbol, _), pos in acct.positions.items():
        mark = acct.market.mark(symbol, pos.entry)
        upnl = unrealized_pnl(pos.size, pos.entry, mark)
        pnl += upnl
        maint += maintenance_margin(pos.size, mark, acct.mmr)
        if acct.is_isolated(symbol):
            iso += pos.margin
        else:
            cross_pnl += upnl
            cross_im += initial_margin(pos.size, mark, acct.leverage(symbol))
    orders_im = open_order_margin(acct)
    available = wallet - iso + cross_pnl - cross_im - orders_im
    assets = {
        a: Balance(a, amount, _ZERO) for a, amount in acct.wallet.items() if a != MARGIN_ASSET
    }
    free = max(_ZERO, min(available, wallet))
    assets[MARGIN_ASSET] = Balance(MARGIN_ASSET, free, wallet - free)
    return FuturesAccount(
        wallet_balance=wallet,
        unrealized_pnl=pnl,
        margin_balance=wallet + pnl,
        available_balance=available,
        maintenance_margin=maint,
        initial_margin=cross_im + iso + orders_im,
        assets=dict(sorted(assets.items())),
    )


def open_order_margin(acct: SimFuturesAccount) -> Decimal:
    """Return the initial margin the open futures orders that add exposure hold."""
    total = _ZERO
    for state in acct.ledger.open_states():
        req = state.request
        limit = limit_price(req)
        if not acct.market.is_derivative(req.symbol) or req.reduce_only or limit is None:
            continue
        side = state.position_side
        if side is not PositionSide.BOTH and (side is PositionSide.LONG) == (req.side is Side.SELL):
            continue  # a hedge-mode closing order needs no margin
        total += initial_margin(state.remaining, limit, acct.leverage(req.symbol))
    return total


def position_views(acct: SimFuturesAccount) -> list[Position]:
    """Return the non-zero positions with their mark, PnL, liquidation price and ratio."""
    if not acct.positions:
        return []
    parts = _cross_parts(acct)  # once for all the views, not once per position
    return [
        _position_view(acct, symbol, side, pos, parts)
        for (symbol, side), pos in sorted(acct.positions.items())
    ]


def _position_view(
    acct: SimFuturesAccount,
    symbol: str,
    side: PositionSide,
    pos: PositionState,
    parts: list[_Part],
) -> Position:
    mark = acct.market.mark(symbol, pos.entry)
    upnl = unrealized_pnl(pos.size, pos.entry, mark)
    mode = acct.margin_mode(symbol)
    if mode is MarginMode.ISOLATED:
        maint = maintenance_margin(pos.size, mark, acct.mmr)
        liq = liquidation_price([(pos.size, pos.entry)], collateral=pos.margin, rate=acct.mmr)
        equity = pos.margin + upnl
    else:  # the ratio is the cross account's: its maintenance over its margin balance
        collateral, equity, maint = _cross_collateral(acct, symbol, parts)
        legs = [(p.size, p.entry) for (s, _), p in acct.positions.items() if s == symbol]
        liq = liquidation_price(legs, collateral=collateral, rate=acct.mmr)
    size = abs(pos.size)
    return Position(
        symbol=symbol,
        position_side=side,
        size=size,
        is_short=pos.size < 0,
        entry_price=pos.entry,
        mark_price=mark,
        liquidation_price=liq,
        unrealized_pnl=upnl,
        leverage=acct.leverage(symbol),
        margin_mode=mode,
        margin_ratio=maint / equity if equity > 0 else None,
        notional=size * mark,
    )


_Part = tuple[str, Decimal | None, Decimal, Decimal]
"""One position's share of the cross totals: (symbol, isolated margin or None, PnL, maint)."""


def _cross_parts(acct: SimFuturesAccount) -> list[_Part]:
    """Return every position's `_Part`, in the order the positions are held."""
    out: list[_Part] = []
    for (s, _), pos in acct.positions.items():
        if acct.is_isolated(s):
            out.append((s, pos.margin, _ZERO, _ZERO))
            continue
        mark = acct.market.mark(s, pos.entry)
        upnl = unrealized_pnl(pos.size, pos.entry, mark)
        out.append((s, None, upnl, maintenance_margin(pos.size, mark, acct.mmr)))
    return out


def _cross_collateral(
    acct: SimFuturesAccount, symbol: str, parts: list[_Part] | None = None
) -> tuple[Decimal, Decimal, Decimal]:
    """Return (collateral backing `symbol`, cross margin balance, cross maintenance)."""
    wallet = acct.wallet.get(MARGIN_ASSET, _ZERO)
    others = equity_pnl = maint = _ZERO
    for s, isolated_margin, upnl, mm in _cross_parts(acct) if parts is None else parts:
        if isolated_margin is not None:
            wallet -= isolated_margin
            continue
        equity_pnl += upnl
        maint += mm
        if s != symbol:
            others += upnl - mm
    return wallet + others, wallet + equity_pnl, maint


def check_liquidations(acct: SimFuturesAccount) -> None:
    """Liquidate every isolated position, then the cross positions, the mark has sunk."""
    for key, pos in list(acct.positions.items()):
        if not acct.is_isolated(key[0]):
            continue
        mark = acct.market.mark(key[0], pos.entry)
        equity = pos.margin + unrealized_pnl(pos.size, pos.entry, mark)
        if equity <= maintenance_margin(pos.size, mark, acct.mmr):
            _liquidate(acct, [key], equity)
    cross = [k for k in acct.positions if not acct.is_isolated(k[0])]
    if cross:
        _, equity, maint = _cross_collateral(acct, cross[0][0])
        if equity <= maint:
            _liquidate(acct, cross, equity)


def _liquidate(acct: SimFuturesAccount, keys: Sequence[PositionKey], equity: Decimal) -> None:
    """Close `keys` at the mark; the remaining `equity` (>= 0) goes to the insurance fund."""
    symbols = sorted({symbol for symbol, _ in keys})
    ledger, market = acct.ledger, acct.market
    for state in ledger.open_states():
        if state.request.symbol in symbols and market.is_derivative(state.request.symbol):
            ledger.finish(state, OrderStatus.CANCELED)
    for i, key in enumerate(keys):
        symbol, side_key = key
        pos = acct.positions.pop(key)
        mark = market.mark(symbol, pos.entry)
        inst = market.instruments.get(symbol)
        exchange_symbol = inst.exchange_symbol if inst else symbol.replace("/", "")
        order_id = ledger.next_order_id()
        request = OrderRequest(
            symbol=symbol,
            side=Side.SELL if pos.size > 0 else Side.BUY,
            type=OrderType.MARKET,
            quantity=abs(pos.size),
            client_order_id=f"autoclose-{exchange_symbol}-{order_id}",
            reduce_only=side_key is PositionSide.BOTH,
            position_side=side_key,
        )
        now = acct.now()
        state = OrderState(request, order_id, side_key, OrderStatus.FILLED, now, now)
        ledger.add(state)
        realized = unrealized_pnl(pos.size, pos.entry, mark)
        clearance = max(_ZERO, equity) if i == len(keys) - 1 else _ZERO
        acct.add_margin(realized - clearance)
        if inst is not None:
            ledger.record_fill(
                state,
                symbol,
                mark,
                abs(pos.size),
                clearance,
                MARGIN_ASSET,
                maker=False,
                realized=realized,
            )
        logger.warning(
            "simulated liquidation of %s %s %s at mark %s (realised %s)",
            symbol,
            side_key.value,
            pos.size,
            mark,
            realized,
        )
    if equity < 0:
        acct.add_margin(-equity)  # the insurance fund absorbs the deficit
    for symbol in symbols:
        acct.record_exposure(symbol)
    acct.touch()
