"""The simulated USDⓈ-M account: wallet, per-symbol settings, positions, orders, funding, delivery.

USDT-margined, single-asset mode. Position modes: one-way (positionSide BOTH or omitted,
else -4061; a reduceOnly order that would increase the position or exceeds it: -2022
"ReduceOnly Order is rejected."); hedge (positionSide LONG/SHORT required, else -4061
"Order's position side does not match user's setting."; reduceOnly rejected -1106
"Parameter 'reduceOnly' sent when not required."; closing more than the position: -2022).
Changing the mode with positions -4068, with open orders -4067, unchanged -4059; margin type
unchanged -4046, with a position -4048, with open orders -4047; leverage outside 1..125
-4028. -2019 "Margin is insufficient." when the part of an order that increases exposure
needs more than is available (`sim_futures_margin`, which also liquidates).

Funding: `settle_funding` pays rate x mark x size to shorts (from longs) when the rate is
positive, using the position held at the funding time (so a position closed since then
still settles); idempotent per (symbol, funding time). Dated futures pay no funding and are
settled by `deliver`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal

from bot.clock import Clock
from bot.domain import (
    FundingPayment,
    Instrument,
    MarginMode,
    OrderRequest,
    OrderStatus,
    PositionMode,
    PositionSide,
    Side,
)
from bot.errors import InsufficientFunds, PositionSideMismatch, ReduceOnlyRejected
from bot.exchange import sim_futures_margin as margin
from bot.exchange.sim_book import vwap
from bot.exchange.sim_fees import FeeModel
from bot.exchange.sim_filters import check_order, reject
from bot.exchange.sim_funding import FundingBook, Sizes
from bot.exchange.sim_margin import initial_margin
from bot.exchange.sim_market import SimMarket
from bot.exchange.sim_matching import taker_fills
from bot.exchange.sim_orders import OrderLedger
from bot.exchange.sim_state import OrderState, PositionState

MARGIN_ASSET = "USDT"
MAX_LEVERAGE = 125
_ZERO = Decimal(0)

PositionKey = tuple[str, PositionSide]


class SimFuturesAccount:
    """The futures side of one simulated account."""

    def __init__(
        self,
        market: SimMarket,
        ledger: OrderLedger,
        fees: FeeModel,
        *,
        clock: Clock,
        position_mode: PositionMode,
        maintenance_rate: Decimal,
        default_leverage: int,
        touch: Callable[[], None],
    ) -> None:
        self.market = market
        self.ledger = ledger
        self.mmr = maintenance_rate
        self._fees = fees
        self._clock = clock
        self._default_leverage = default_leverage
        self.touch = touch
        self.mode = position_mode
        self.wallet: dict[str, Decimal] = {}
        self.leverages: dict[str, int] = {}
        self.margin_modes: dict[str, MarginMode] = {}
        self.positions: dict[PositionKey, PositionState] = {}
        self.funding = FundingBook()

    def now(self) -> datetime:
        return self._clock.now()

    # --- settings -----------------------------------------------------------------------
    def set_position_mode(self, mode: PositionMode) -> None:
        """Switch one-way/hedge: -4059 unchanged, -4068 with positions, -4067 with orders."""
        if mode is self.mode:
            raise reject(-4059, "No need to change position side.")
        if self.positions:
            raise reject(-4068, "Position side cannot be changed if there exists position.")
        if any(self.market.is_derivative(o.request.symbol) for o in self.ledger.open_states()):
            raise reject(-4067, "Position side cannot be changed if there exists open orders.")
        self.mode = mode

    def set_leverage(self, symbol: str, leverage: int) -> None:
        """Set the leverage of one perpetual (1..125, else -4028)."""
        self.derivative(symbol)
        if not 1 <= leverage <= MAX_LEVERAGE:
            raise reject(-4028, f"Leverage {leverage} is not valid")
        before, old = self.available(), self.leverage(symbol)
        self.leverages[symbol] = leverage
        after = self.available()
        if after < 0 and after < before:
            self.leverages[symbol] = old
            raise reject(-2028, "Leverage is smaller than permitted: insufficient margin balance.")

    def leverage(self, symbol: str) -> int:
        return self.leverages.get(symbol, self._default_leverage)

    def set_margin_mode(self, symbol: str, mode: MarginMode) -> None:
        """Set cross/isolated: -4046 unchanged, -4048 with a position, -4047 with orders."""
        self.derivative(symbol)
        if mode is self.margin_mode(symbol):
            raise reject(-4046, "No need to change margin type.")
        if any(s == symbol for s, _ in self.positions):
            raise reject(-4048, "Margin type cannot be changed if there exists position.")
        if any(o.request.symbol == symbol for o in self.ledger.open_states()):
            raise reject(-4047, "Margin type cannot be changed if there exists open orders.")
        self.margin_modes[symbol] = mode

    def margin_mode(self, symbol: str) -> MarginMode:
        return self.margin_modes.get(symbol, MarginMode.CROSS)

    def is_isolated(self, symbol: str) -> bool:
        return self.margin_mode(symbol) is MarginMode.ISOLATED

    def derivative(self, symbol: str) -> Instrument:
        """Return the futures instrument of `symbol` (else -1121 "Invalid symbol.")."""
        inst = self.market.derivative(symbol)
        if inst is None:
            raise reject(-1121, "Invalid symbol.")
        return inst

    # --- wallet -------------------------------------------------------------------------
    def available(self) -> Decimal:
        """Return the USDT the account may still commit or transfer out."""
        return margin.account_view(self).available_balance

    def add_margin(self, amount: Decimal) -> None:
        """Add a signed amount of USDT to the wallet."""
        self.wallet[MARGIN_ASSET] = self.wallet.get(MARGIN_ASSET, _ZERO) + amount

    # --- orders -------------------------------------------------------------------------
    def create(self, req: OrderRequest, inst: Instrument) -> OrderState:
        """Validate and execute a futures order (position side, reduce-only, filters, margin)."""
        side_key, closing = self._position_side_for(req)
        pos = self.positions.get((req.symbol, side_key))
        current = pos.size if pos else _ZERO
        signed = req.quantity if req.side is Side.BUY else -req.quantity
        reducing = reducible(current, signed)
        if req.reduce_only and (reducing == 0 or req.quantity > abs(current)):
            raise ReduceOnlyRejected("ReduceOnly Order is rejected.", code=-2022)
        if closing and req.quantity > abs(current):
            raise ReduceOnlyRejected("ReduceOnly Order is rejected.", code=-2022)
        check_order(
            req,
            inst,
            reference_price=self.market.reference_price(inst, req),
            waive_notional=req.reduce_only or closing,
        )
        fills = taker_fills(self.market, inst, req)
        opening = _ZERO if (req.reduce_only or closing) else req.quantity - reducing
        if opening > 0:
            price = vwap(fills) or self.market.reference_price(inst, req)
            if price is not None:
                self._check_margin(req, opening, reducing, price, pos)
        state = self.ledger.new_order(req, position_side=side_key)
        for price, qty in fills:
            self.fill(state, inst, price, qty, maker=False)
        self.ledger.settle_status(state)
        if fills:
            self.record_exposure(req.symbol)
        return state

    def fill(
        self, state: OrderState, inst: Instrument, price: Decimal, qty: Decimal, *, maker: bool
    ) -> None:
        """Apply one fill of a futures order to its position and the wallet (fee in USDT)."""
        fee = self._fees.futures_fee(price, qty, maker=maker)
        signed = qty if state.request.side is Side.BUY else -qty
        side_key = state.position_side or PositionSide.BOTH
        realized = self.apply_to_position(inst.symbol, side_key, signed, price)
        self.add_margin(realized - fee)
        self.ledger.record_fill(
            state, inst.symbol, price, qty, fee, MARGIN_ASSET, maker=maker, realized=realized
        )

    def clamp_closing(self, state: OrderState, qty: Decimal) -> Decimal:
        """Limit a resting reduce-only/closing order to the position; expire it when flat."""
        req = state.request
        side_key = state.position_side or PositionSide.BOTH
        closing = side_key is not PositionSide.BOTH and (
            (side_key is PositionSide.LONG) == (req.side is Side.SELL)
        )
        if not (req.reduce_only or closing):
            return qty
        pos = self.positions.get((req.symbol, side_key))
        signed = qty if req.side is Side.BUY else -qty
        closable = reducible(pos.size if pos else _ZERO, signed)
        if closable == 0:
            self.ledger.finish(state, OrderStatus.EXPIRED)
        return closable

    def apply_to_position(
        self, symbol: str, side_key: PositionSide, signed: Decimal, price: Decimal
    ) -> Decimal:
        """Add a signed fill to a position; return the realised PnL."""
        now = self.now()
        key = (symbol, side_key)
        leverage, isolated = self.leverage(symbol), self.is_isolated(symbol)
        pos = self.positions.get(key)
        if pos is None or (pos.size > 0) == (signed > 0):
            if pos is None:
                pos = self.positions[key] = PositionState(_ZERO, price, _ZERO, now)
            new_size = pos.size + signed
            pos.entry = self._averaged_entry(pos, signed, price, new_size)
            pos.size = new_size
            if isolated:
                pos.margin += self._position_margin(symbol, signed, price, leverage)
            return _ZERO
        closed = min(abs(signed), abs(pos.size))
        realized = self._realized_pnl(symbol, pos, closed, price)
        if isolated:
            pos.margin -= pos.margin * closed / abs(pos.size)
        new_size = pos.size + signed
        if new_size == 0:
            del self.positions[key]
        elif (new_size > 0) != (pos.size > 0):
            pos.size, pos.entry, pos.opened_at = new_size, price, now
            pos.margin = (
                self._position_margin(symbol, new_size, price, leverage) if isolated else _ZERO
            )
        else:
            pos.size = new_size
        return realized

    # The three places where a linear (USDⓈ-M) and an inverse (COIN-M) contract differ.
    def _averaged_entry(
        self, pos: PositionState, signed: Decimal, price: Decimal, new_size: Decimal
    ) -> Decimal:
        """Entry price after adding `signed` at `price` (linear: weighted by quantity)."""
        return (abs(pos.size) * pos.entry + abs(signed) * price) / abs(new_size)

    def _position_margin(
        self, symbol: str, signed: Decimal, price: Decimal, leverage: int
    ) -> Decimal:
        """Isolated margin a position of `signed` at `price` needs."""
        return initial_margin(signed, price, leverage)

    def _realized_pnl(
        self, symbol: str, pos: PositionState, closed: Decimal, price: Decimal
    ) -> Decimal:
        """P&L of closing `closed` of `pos` at `price`, in the margin asset."""
        return closed * (price - pos.entry) * (1 if pos.size > 0 else -1)

    def _position_side_for(self, req: OrderRequest) -> tuple[PositionSide, bool]:
        """Return the position an order acts on and whether it closes (hedge mode)."""
        mismatch = "Order's position side does not match user's setting."
        if self.mode is PositionMode.ONE_WAY:
            if req.position_side not in (None, PositionSide.BOTH):
                raise PositionSideMismatch(mismatch, code=-4061)
            return PositionSide.BOTH, False
        side = req.position_side
        if side is None or side is PositionSide.BOTH:
            raise PositionSideMismatch(mismatch, code=-4061)
        if req.reduce_only:
            raise ReduceOnlyRejected("Parameter 'reduceOnly' sent when not required.", code=-1106)
        closing = (side is PositionSide.LONG) == (req.side is Side.SELL)
        return side, closing

    def _check_margin(
        self,
        req: OrderRequest,
        opening: Decimal,
        reducing: Decimal,
        price: Decimal,
        pos: PositionState | None,
    ) -> None:
        leverage = self.leverage(req.symbol)
        mark = self.market.mark(req.symbol, price)
        gap = price - mark if req.side is Side.BUY else mark - price
        required = initial_margin(opening, price, leverage) + opening * max(_ZERO, gap)
        available = self.available()
        if pos is not None and reducing > 0:
            # The reducing part of a flip frees margin before the opening part needs it.
            if self.is_isolated(req.symbol):
                available += pos.margin * reducing / abs(pos.size)
            else:
                available += initial_margin(reducing, mark, leverage)
        if required > available:
            raise InsufficientFunds("Margin is insufficient.", code=-2019)

    # --- funding and delivery -----------------------------------------------------------
    def record_exposure(self, symbol: str) -> None:
        """Note the positions now held on `symbol` in the funding timeline."""
        inst = self.market.instruments.get(symbol)
        if inst is not None and inst.is_dated:
            return  # dated futures pay no funding; they settle at delivery
        sizes: Sizes = {
            side: p.size for (s, side), p in sorted(self.positions.items()) if s == symbol
        }
        self.funding.record_exposure(symbol, sizes, self.now())

    def settle_funding(
        self, symbol: str, when: datetime, rate: Decimal, mark: Decimal
    ) -> FundingPayment | None:
        """Apply one funding settlement (UTC `when`) to the wallet and isolated margins."""
        if self.funding.is_settled(symbol, when):
            due = self.funding.due()
            self.funding.settle(symbol, when, rate, mark)  # may only move the window on
            if self.funding.due() != due:
                self.touch()
            return None
        sizes = self.funding.sizes_at(symbol, when)
        payment = self.funding.settle(symbol, when, rate, mark)
        self.touch()
        if payment is None:
            return None
        self.add_margin(payment.amount)
        for side, size in sizes.items():
            pos = self.positions.get((symbol, side))
            if pos is not None and self.is_isolated(symbol) and pos.opened_at <= when:
                pos.margin -= size * mark * rate  # an isolated position's funding is its own
        margin.check_liquidations(self)
        return payment

    def deliver(self, symbol: str, price: Decimal) -> Decimal:
        """Close every position on a dated future at `price` without a trade; cancel its orders."""
        inst = self.derivative(symbol)
        if not inst.is_dated:
            raise reject(-4108, "Symbol is not a delivery contract.")
        realized = _ZERO
        for (sym, side), pos in sorted(self.positions.items()):
            if sym != symbol:
                continue
            realized += self.apply_to_position(symbol, side, -pos.size, price)
        for state in [o for o in self.ledger.open_states() if o.request.symbol == symbol]:
            self.ledger.finish(state, OrderStatus.CANCELED)
        self.add_margin(realized)
        return realized

    def dated_positions_due(self, now: datetime) -> list[str]:
        """Return the dated futures held whose delivery time has come."""
        due = set()
        for symbol, _ in self.positions:
            inst = self.market.instruments.get(symbol)
            if inst is not None and inst.is_dated and inst.expiry and inst.expiry <= now:
                due.add(symbol)
        return sorted(due)


def reducible(current: Decimal, signed: Decimal) -> Decimal:
    """Return how much of a signed order quantity reduces the signed position `current`."""
    if current == 0 or (current > 0) == (signed > 0):
        return _ZERO
    return min(abs(current), abs(signed))
