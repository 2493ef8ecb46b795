"""The simulated spot wallet: free and locked balances per asset, spot orders and their fills.

-2010 "Account has insufficient balance for requested action." when the wallet cannot pay
(quote for buys: the walked cost, or quantity x limit price, plus the fee when buys pay it
in quote; base for sells). A resting limit order locks what it may still spend.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from bot.domain import Balance, Instrument, OrderRequest, Side
from bot.errors import InsufficientFunds
from bot.exchange import sim_state as codec
from bot.exchange.sim_fees import FeeModel
from bot.exchange.sim_filters import check_order, reject
from bot.exchange.sim_market import SimMarket
from bot.exchange.sim_matching import cost, limit_price, taker_fills
from bot.exchange.sim_orders import OrderLedger
from bot.exchange.sim_state import OrderState

_ZERO = Decimal(0)
_INSUFFICIENT_BALANCE = "Account has insufficient balance for requested action."


class SimSpotAccount:
    """Spot balances and spot order execution of one simulated account."""

    def __init__(self, market: SimMarket, ledger: OrderLedger, fees: FeeModel) -> None:
        self._market = market
        self._ledger = ledger
        self._fees = fees
        self.free: dict[str, Decimal] = {}
        self.locked: dict[str, Decimal] = {}

    def balances(self) -> dict[str, Balance]:
        """Return every spot asset the account has held, free and locked."""
        assets = sorted(set(self.free) | set(self.locked))
        return {a: Balance(a, self.free.get(a, _ZERO), self.locked.get(a, _ZERO)) for a in assets}

    def create(self, req: OrderRequest, inst: Instrument) -> OrderState:
        """Validate and execute a spot order; lock the funds of a resting remainder."""
        if req.reduce_only:
            raise reject(-1106, "Parameter 'reduceOnly' sent when not required.")
        if req.position_side is not None:
            raise reject(-1106, "Parameter 'positionSide' sent when not required.")
        check_order(req, inst, reference_price=self._market.reference_price(inst, req))
        fills = taker_fills(self._market, inst, req)
        limit = limit_price(req)
        if req.side is Side.BUY:
            spend = cost(fills) if limit is None else req.quantity * limit
            need = self._fees.spot_buy_budget(spend)
            have = self.free.get(inst.quote, _ZERO)
        else:
            need, have = req.quantity, self.free.get(inst.base, _ZERO)
        if need > have:
            raise InsufficientFunds(_INSUFFICIENT_BALANCE, code=-2010)
        state = self._ledger.new_order(req, position_side=None)
        for price, qty in fills:
            self.fill(state, inst, price, qty, maker=False)
        self._ledger.settle_status(state)
        if state.is_open:
            asset, amount = self._reserve(state, inst)
            self._move(asset, amount, to_locked=True)
            state.reserved = amount
        return state

    def fill(
        self, state: OrderState, inst: Instrument, price: Decimal, qty: Decimal, *, maker: bool
    ) -> None:
        """Apply one fill of a spot order to the wallet (a maker fill spends locked funds)."""
        charge = self._fees.spot_fill(inst, state.request.side, price, qty, maker=maker)
        if maker:
            self.locked[charge.pay_asset] = self.locked.get(charge.pay_asset, _ZERO) - charge.pay
            state.reserved -= charge.pay
        else:
            self.free[charge.pay_asset] = self.free.get(charge.pay_asset, _ZERO) - charge.pay
        received = self.free.get(charge.receive_asset, _ZERO) + charge.receive
        if charge.fee_from_receive:
            received -= charge.fee
        self.free[charge.receive_asset] = received
        self._ledger.record_fill(
            state, inst.symbol, price, qty, charge.fee, charge.fee_asset, maker=maker, realized=None
        )

    def release(self, state: OrderState, inst: Instrument) -> None:
        """Unlock what a spot order still holds (before it is closed)."""
        if state.reserved > 0:
            asset, _ = self._reserve(state, inst)
            self._move(asset, state.reserved, to_locked=False)

    def _reserve(self, state: OrderState, inst: Instrument) -> tuple[str, Decimal]:
        if state.request.side is Side.BUY:
            return inst.quote, state.remaining * (state.request.price or _ZERO)
        return inst.base, state.remaining

    def _move(self, asset: str, amount: Decimal, *, to_locked: bool) -> None:
        sign = 1 if to_locked else -1
        self.free[asset] = self.free.get(asset, _ZERO) - sign * amount
        self.locked[asset] = self.locked.get(asset, _ZERO) + sign * amount

    # --- persistence --------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        """Return the balances as JSON data."""
        enc = codec.enc_dec
        return {
            a: {"free": enc(b.free), "locked": enc(b.locked)} for a, b in self.balances().items()
        }
