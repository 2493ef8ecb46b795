"""How much a roll sells on the later contract, and whether its margin fits beside the old
short's (else the roll buys back first: `bot.execution.roll`)."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from typing import TYPE_CHECKING

from bot.domain import Hedge, Pair, Quote
from bot.domain.inverse import short_pnl_coin
from bot.domain.numbers import floor_to_step
from bot.exchange.port import coinm_of
from bot.execution.coinm_sizing import unhedged_usd
from bot.execution.hedge_context import ZERO, HedgeContext
from bot.execution.sizing import SizingError

if TYPE_CHECKING:
    from bot.execution.coinm import CoinmHedger


async def roll_quantity(
    ctx: HedgeContext,
    coinm: CoinmHedger | None,
    hedge: Hedge,
    held: Pair,
    into: Pair,
    held_quote: Quote,
    into_quote: Quote,
) -> Decimal:
    """The short to sell on `into`: the same base quantity (USDⓈ-M), or the whole
    contracts the hedge's coin is worth at `into`'s bid (COIN-M)."""
    perp = into.perp
    if not held.perp.is_inverse:
        quantity = floor_to_step(hedge.perp_quantity, perp.step_size)
        if quantity < perp.min_qty or quantity * into_quote.bid < perp.min_notional:
            raise SizingError(
                f"{quantity} {held.base} is below {perp.symbol}'s filters "
                f"(min quantity {perp.min_qty}, min notional {perp.min_notional})"
            )
        return quantity
    assert coinm is not None
    size = perp.contract_size
    entry = hedge.entry_perp_price
    open_pnl = ZERO
    if entry and held_quote.ask > 0:
        open_pnl = short_pnl_coin(
            hedge.perp_quantity, held.perp.contract_size, entry, held_quote.ask
        )
    coin = await coinm.coin_of(hedge, held) + open_pnl
    if into_quote.bid <= 0:
        raise SizingError(f"{perp.symbol}: no bid")
    # The nearest whole number: what stays unhedged is at most half a contract either way
    # (the short's fees, paid in the coin, would otherwise cost a contract at each roll).
    contracts = (coin * into_quote.bid / size).to_integral_value(rounding=ROUND_HALF_EVEN)
    if contracts < max(perp.min_qty, Decimal(1)):
        raise SizingError(f"{coin} {held.base} is less than one {size} USD contract")
    rest = unhedged_usd(coin, contracts, size, into_quote.bid)
    if abs(rest) > ctx.risk.max_unhedged_usd:
        raise SizingError(
            f"{rest:.2f} USD would stay unhedged on {perp.symbol}, above "
            f"risk.max_unhedged_usd {ctx.risk.max_unhedged_usd}"
        )
    return contracts


async def margin_short(
    ctx: HedgeContext, into: Pair, want: Decimal, into_quote: Quote
) -> str | None:
    """Why the new short's margin does not fit beside the old short's (None: it fits)."""
    buffer = 1 + ctx.risk.margin_buffer
    leverage = ctx.setup.leverage
    perp = into.perp
    if perp.is_inverse:
        side = coinm_of(ctx.exchange)
        if side is None:
            raise SizingError("no COIN-M side loaded")
        asset = perp.settle or into.base
        available = (await side.fetch_coinm_account(asset)).available_balance
        need = want * perp.contract_size / into_quote.bid / leverage * buffer
    else:
        asset = perp.settle or perp.quote
        available = (await ctx.exchange.fetch_futures_account()).available_balance
        need = want * into_quote.bid / leverage * buffer
    if need <= available:
        return None
    return (
        f"the new short needs {need:.8f} {asset} margin at {leverage}x with margin_buffer "
        f"{ctx.risk.margin_buffer}, {available:.8f} free beside the old short"
    )
