"""Sizing a COIN-M hedge: whole contracts for the notional, the coin that hedges them.

The short is `floor(notional / spot ask × future bid / contract size)` contracts; the spot
buy is the coin worth those contracts at the future's bid (grossed up for a fee paid in the
coin, rounded up to the spot step). What is left unhedged is the coin's USD value beyond
the contracts: the rounding of the spot step, always under one contract, and refused above
`max_unhedged_usd`. The coin is the short's only margin, so the leverage must leave room
for the opening fee: contracts × size / bid / leverage × (1 + margin_buffer) + fee must fit
in the coin bought.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from bot.domain import Pair
from bot.domain.inverse import contracts_for
from bot.domain.numbers import ceil_to_step
from bot.execution.sizing import SizingError

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class CoinmSize:
    """`contracts` to short, `spot_order_quantity` of coin to buy, and what stays unhedged."""

    contracts: Decimal
    spot_order_quantity: Decimal
    coin: Decimal  # net of the spot fee: what is moved to the COIN-M wallet
    hedged_usd: Decimal
    unhedged_usd: Decimal


def unhedged_usd(
    coin: Decimal, contracts: Decimal, contract_size: Decimal, price: Decimal
) -> Decimal:
    """The coin's USD value at `price` beyond the short (negative: the short is larger)."""
    return coin * price - contracts * contract_size


def size_coinm(
    pair: Pair,
    notional: Decimal,
    *,
    spot_ask: Decimal,
    future_bid: Decimal,
    spot_fee: Decimal,
    futures_fee: Decimal,
    leverage: int,
    spot_free_quote: Decimal,
    balance_buffer: Decimal,
    margin_buffer: Decimal,
    max_unhedged_usd: Decimal,
    price_allowance: Decimal = Decimal("0.002"),
) -> CoinmSize:
    """Size a COIN-M hedge of about `notional` USDT; raise SizingError naming what fails."""
    spot, future = pair.spot, pair.perp
    if spot_ask <= 0 or future_bid <= 0:
        raise SizingError(
            f"{pair.key}: no valid price (spot ask {spot_ask}, future bid {future_bid})"
        )
    size = future.contract_size
    short = contracts_for(notional / spot_ask * future_bid, size)
    if short.contracts < max(future.min_qty, Decimal(1)):
        raise SizingError(
            f"{pair.key}: notional {notional} is less than one {size} USD contract of "
            f"{future.symbol}"
        )
    cap = future.market_max_qty or future.max_qty
    if cap is not None and short.contracts > cap:
        raise SizingError(f"{pair.key}: {short.contracts} contracts above max quantity {cap}")
    coin = ceil_to_step(short.hedged_usd / future_bid, spot.step_size)
    order = ceil_to_step(coin / (1 - spot_fee), spot.step_size)
    coin_net = order * (1 - spot_fee)
    if order < spot.min_qty or order * spot_ask < spot.min_notional:
        raise SizingError(f"{pair.key}: spot buy {order} below the spot filters")
    cost = order * spot_ask * (1 + price_allowance)
    usable = spot_free_quote * (1 - balance_buffer)
    if cost > usable:
        raise SizingError(
            f"{pair.key}: spot buy needs {cost:.2f} {spot.quote}, only {usable:.2f} usable "
            f"(free {spot_free_quote}, balance_buffer {balance_buffer})"
        )
    margin = short.hedged_usd / future_bid / leverage * (1 + margin_buffer)
    fee = short.hedged_usd / future_bid * futures_fee
    if margin + fee > coin_net:
        raise SizingError(
            f"{pair.key}: a COIN-M short margined by its own coin needs {margin + fee:.8f} "
            f"{future.settle} at {leverage}x with margin_buffer {margin_buffer}, the coin is "
            f"{coin_net:.8f}: raise exchange.leverage (2 or more)"
        )
    rest = unhedged_usd(coin_net, short.contracts, size, future_bid)
    if abs(rest) > max_unhedged_usd:
        raise SizingError(
            f"{pair.key}: {rest:.2f} USD would stay unhedged, above risk.max_unhedged_usd "
            f"{max_unhedged_usd}"
        )
    return CoinmSize(short.contracts, order, coin_net, short.hedged_usd, rest)
