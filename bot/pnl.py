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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from bot.domain import Fill, Hedge, Side

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
    perp_fills = [f for f in fills if f.symbol == hedge.perp_symbol]
    spot_mark = spot_price or hedge.exit_spot_price or _last_price(spot_fills)
    perp_mark = perp_price or hedge.exit_perp_price or _last_price(perp_fills)
    spot_pnl, _ = leg_pnl(spot_fills, spot_mark)
    perp_pnl, _ = leg_pnl(perp_fills, perp_mark)
    fees = sum((fee_usdt(f) for f in fills), ZERO)
    spot_cost = sum((f.price * f.quantity for f in spot_fills if f.side is Side.BUY), ZERO)
    short_notional = sum((f.price * f.quantity for f in perp_fills if f.side is Side.SELL), ZERO)
    capital = spot_cost + short_notional / max(leverage, 1)
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
    )


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
