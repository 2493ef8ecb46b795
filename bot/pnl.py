"""P&L per hedge and in total, from the ledger's fills and funding payments.

Definitions (USDT):
- funding: sum of funding payments attributed to the hedge (received positive);
- fees: every fill's fee converted to USDT (spot buys pay theirs in the base asset, valued
  at the fill price);
- basis P&L: spot leg P&L + perp leg P&L, each = sells − buys at fill prices, plus the
  quantity still held (gross of base-asset fees, which are counted in `fees`) valued at the
  current price (for an open hedge) or the last exit price (for a closed one);
- net = funding + basis − fees; realised APR = net / capital × (365 days / holding time),
  capital = spot cost + the short's initial margin at the configured leverage.

A COIN-M hedge (its metrics carry `contract_size`) shorts inverse contracts: its short's P&L
is in the coin, Σ sells −q × size / price + Σ buys q × size / price, contracts still short
valued at the mark (or the delivery price), i.e. contracts × size × (1/exit − 1/entry);
`coin_pnl` is that less the short's fees (paid in the coin). In USDT the short's P&L and
fees are valued at the spot price the coin is (or was) sold at, so that with the spot leg
(which sells the short's coin P&L with the hedge's coin) net is the USDT the hedge made.
Its capital is the spot cost alone: the coin bought is the short's margin.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from bot.domain import Fill, Hedge, Side

COIN_DECIMALS = Decimal("0.00000001")

ZERO = Decimal(0)
YEAR_SECONDS = Decimal(365 * 24 * 3600)


@dataclass(frozen=True, slots=True)
class HedgePnL:
    hedge_id: int
    pair: str
    state: str
    funding: Decimal
    fees: Decimal
    spot_pnl: Decimal
    perp_pnl: Decimal
    capital: Decimal
    holding_seconds: Decimal
    opened_at: datetime | None
    closed_at: datetime | None
    coin_pnl: Decimal | None = None  # COIN-M: the short's P&L less its fees, in the coin

    @property
    def basis_pnl(self) -> Decimal:
        return self.spot_pnl + self.perp_pnl

    @property
    def net(self) -> Decimal:
        return self.funding + self.basis_pnl - self.fees

    @property
    def holding_hours(self) -> Decimal:
        return self.holding_seconds / 3600

    @property
    def apr(self) -> Decimal | None:
        """Realised APR on the capital used (None before an hour has passed)."""
        if self.capital <= 0 or self.holding_seconds < 3600:
            return None
        return self.net / self.capital * YEAR_SECONDS / self.holding_seconds


@dataclass(frozen=True, slots=True)
class PnLTotals:
    funding: Decimal
    fees: Decimal
    basis_pnl: Decimal
    net: Decimal
    capital: Decimal
    hedges: int


def leg_pnl(fills: Sequence[Fill], price: Decimal | None) -> tuple[Decimal, Decimal]:
    """Return (P&L, quantity held) of one leg: sells − buys + held × `price`."""
    cash = held = ZERO
    for f in fills:
        if f.side is Side.BUY:
            cash -= f.price * f.quantity
            held += f.quantity
        else:
            cash += f.price * f.quantity
            held -= f.quantity
    if held and price is not None:
        cash += held * price
    return cash, held


def fee_usdt(fill: Fill) -> Decimal:
    """Return a fill's fee in USDT: as the ledger converted it (a BNB fee at the BNB price
    when it was recorded), else quote fees as is and base-asset fees at the fill price."""
    if fill.fee_usdt is not None:
        return fill.fee_usdt
    base, _, rest = fill.symbol.partition("/")
    quote = rest.split(":")[0]
    if fill.fee_asset in (quote, "USDT"):  # USDT: also a USD pair's fee in USDT terms
        return fill.fee
    if fill.fee_asset == base:
        return fill.fee * fill.price
    return ZERO  # another asset recorded before its price was known: reported as 0


def hedge_pnl(
    hedge: Hedge,
    fills: Sequence[Fill],
    funding: Decimal,
    *,
    now: datetime,
    spot_price: Decimal | None = None,
    perp_price: Decimal | None = None,
    leverage: int = 1,
) -> HedgePnL:
    """Compute one hedge's P&L. Prices value what is still held (open hedges)."""
    spot_fills = [f for f in fills if f.symbol == hedge.spot_symbol]
    shorts = set(hedge.short_symbols)  # a rolled hedge's short traded several contracts
    perp_fills = [f for f in fills if f.symbol in shorts]
    spot_mark = spot_price or hedge.exit_spot_price or _last_price(spot_fills)
    perp_mark = perp_price or hedge.exit_perp_price or _last_price(perp_fills)
    spot_pnl, _ = leg_pnl(spot_fills, spot_mark)
    spot_cost = sum((f.price * f.quantity for f in spot_fills if f.side is Side.BUY), ZERO)
    coin_pnl = None
    size = hedge.metrics.get("contract_size")
    if size is not None:  # COIN-M: inverse contracts, P&L and fees in the coin
        base = hedge.pair.partition("/")[0]
        coin = inverse_leg_pnl(perp_fills, perp_mark, Decimal(size))
        coin_fees = sum((f.fee for f in perp_fills if f.fee_asset == base), ZERO)
        coin_pnl = coin - coin_fees
        value = spot_mark or ZERO
        perp_pnl = coin * value
        fees = sum((fee_usdt(f) for f in spot_fills), ZERO) + coin_fees * value
        capital = spot_cost
    else:
        perp_pnl, _ = leg_pnl(perp_fills, perp_mark)
        fees = sum((fee_usdt(f) for f in fills), ZERO)
        short = sum((f.price * f.quantity for f in perp_fills if f.side is Side.SELL), ZERO)
        capital = spot_cost + short / max(leverage, 1)
    start = hedge.opened_at or hedge.created_at
    end = hedge.closed_at or now
    return HedgePnL(
        hedge_id=hedge.id,
        pair=hedge.pair,
        state=hedge.state.value,
        funding=funding,
        fees=fees,
        spot_pnl=spot_pnl,
        perp_pnl=perp_pnl,
        capital=capital,
        holding_seconds=Decimal(str(max((end - start).total_seconds(), 0.0))),
        opened_at=hedge.opened_at,
        closed_at=hedge.closed_at,
        coin_pnl=coin_pnl,
    )


def inverse_leg_pnl(
    fills: Sequence[Fill], price: Decimal | None, contract_size: Decimal
) -> Decimal:
    """Return an inverse (COIN-M) leg's P&L in the coin; contracts still held valued at
    `price`: a short of c contracts from entry E to exit X makes c × size × (1/X − 1/E).
    A leg closed out whose fills carry the exchange's realised P&L sums those instead."""
    coin = held = ZERO
    for f in fills:
        value = f.quantity * contract_size / f.price
        if f.side is Side.BUY:
            coin += value
            held += f.quantity
        else:
            coin -= value
            held -= f.quantity
    if held == 0 and fills and all(f.realized_pnl is not None for f in fills):
        # Closed out: the exchange's own figures (rounded to 8 decimals as it books them).
        return sum((f.realized_pnl or ZERO for f in fills), ZERO)
    if held and price:
        coin -= held * contract_size / price
        # Settled at delivery (or valued at the mark): booked in the coin to 8 decimals, as
        # Binance books every coin amount, so a delivered short's P&L is the exchange's.
        return coin.quantize(COIN_DECIMALS)
    return coin


def totals(rows: Sequence[HedgePnL]) -> PnLTotals:
    """Sum P&L over hedges."""
    return PnLTotals(
        funding=sum((r.funding for r in rows), ZERO),
        fees=sum((r.fees for r in rows), ZERO),
        basis_pnl=sum((r.basis_pnl for r in rows), ZERO),
        net=sum((r.net for r in rows), ZERO),
        capital=sum((r.capital for r in rows), ZERO),
        hedges=len(rows),
    )


def _last_price(fills: Sequence[Fill]) -> Decimal | None:
    return fills[-1].price if fills else None
