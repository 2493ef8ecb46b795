"""Matching: the immediate (taker) fills of a new order, and resting orders the market crosses.

Market orders walk at most `depth_levels` levels of the book, one trade per level (or fill
at the best quote plus `slippage_bps`, unlimited, when only a quote is known); limit orders
take what crosses their price at once and rest for the rest, filling as maker at their own
price when a later book or quote crosses them (the book is a snapshot: resting orders do
not consume it). A fill ratio set on the market caps market orders (fault injection).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING

from bot.domain import Instrument, OrderRequest, OrderType, Side
from bot.domain.numbers import floor_to_step
from bot.exchange.sim_book import Level, crosses, liquidity, slipped_price, walk_book
from bot.exchange.sim_market import SimMarket
from bot.exchange.sim_orders import OrderLedger

if TYPE_CHECKING:
    from bot.exchange.sim_futures import SimFuturesAccount
    from bot.exchange.sim_spot import SimSpotAccount

_ZERO = Decimal(0)


def limit_price(req: OrderRequest) -> Decimal | None:
    """Return the limit price of a limit order (a market order's price is ignored)."""
    return req.price if req.type is OrderType.LIMIT else None


def cost(fills: Sequence[Level]) -> Decimal:
    """Return the quote value of `fills`."""
    return sum((p * q for p, q in fills), _ZERO)


def taker_fills(market: SimMarket, inst: Instrument, req: OrderRequest) -> list[Level]:
    """Return the immediate fills of an order: the book walked, or the quote."""
    is_market = req.type is OrderType.MARKET
    quantity = req.quantity
    ratio = market.fill_ratios.get(inst.symbol)
    if is_market and ratio is not None:
        quantity = floor_to_step(quantity * ratio, inst.step_size)
    if quantity <= 0:
        return []
    limit = limit_price(req)
    levels = market.levels(inst.symbol, req.side)
    if levels is not None:
        return walk_book(levels, quantity, req.side, limit=limit)
    best = market.best(inst.symbol, req.side)
    if best is None or best <= 0:
        return []
    price = (
        slipped_price(best, req.side, market.slippage_bps, inst.tick_size) if is_market else best
    )
    return [(price, quantity)] if crosses(price, limit, req.side) else []


def crossing_liquidity(
    market: SimMarket, symbol: str, side: Side, limit: Decimal, remaining: Decimal
) -> Decimal:
    """Return how much of a resting order's `remaining` the market now fills at `limit`."""
    levels = market.levels(symbol, side)
    if levels is not None:
        return liquidity(levels, side, limit)
    best = market.best(symbol, side)
    if best is None:
        return _ZERO
    return remaining if best > 0 and crosses(best, limit, side) else _ZERO


def match_resting(
    symbol: str,
    market: SimMarket,
    ledger: OrderLedger,
    spot: SimSpotAccount,
    futures: SimFuturesAccount,
    touch: Callable[[], None],
) -> None:
    """Fill, as maker at their own price, the resting orders on `symbol` the market crosses."""
    if not ledger.has_resting():
        return  # the usual case: market orders only, nothing rests
    inst = market.instruments.get(symbol)
    if inst is None:
        return
    changed = False
    for state in ledger.open_states():
        req, limit = state.request, limit_price(state.request)
        if req.symbol != symbol or limit is None:
            continue
        qty = min(
            state.remaining, crossing_liquidity(market, symbol, req.side, limit, state.remaining)
        )
        if inst.is_derivative:
            qty = futures.clamp_closing(state, qty)
            changed = changed or not state.is_open
        if qty <= 0:
            continue
        if inst.is_derivative:
            futures.fill(state, inst, limit, qty, maker=True)
        else:
            spot.fill(state, inst, limit, qty, maker=True)
        ledger.settle_status(state)
        changed = True
    if changed:
        if inst.is_derivative:
            futures.record_exposure(symbol)
        touch()
