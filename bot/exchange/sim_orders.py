"""The simulated account's orders and trades: every order by client id, the open ones, fills.

Client order ids are unique per account. Exchange order ids are increasing integers (as
strings) across the account, so also per symbol; trade ids are increasing integers per
symbol, as on Binance.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from bot.clock import Clock
from bot.domain import Fill, OrderRequest, OrderStatus, OrderType, PositionSide
from bot.exchange import sim_state as codec
from bot.exchange.sim_state import OrderState

_ZERO = Decimal(0)


class OrderLedger:
    """Orders, the resting subset, fills and id counters of one simulated account."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._orders: dict[str, OrderState] = {}
        self._resting: dict[str, OrderState] = {}  # the open subset of `_orders`
        self._fills: list[Fill] = []
        self._order_seq = 0
        self._trade_seq: dict[str, int] = {}

    def get(self, client_order_id: str) -> OrderState | None:
        """Return the order with this client id, None when unknown."""
        return self._orders.get(client_order_id)

    def knows(self, client_order_id: str) -> bool:
        """Tell whether an order with this client id was ever placed."""
        return client_order_id in self._orders

    def has_resting(self) -> bool:
        return bool(self._resting)

    def open_states(self) -> list[OrderState]:
        """Return the open orders, oldest first (a copy: callers may close them)."""
        return list(self._resting.values())

    def new_order(self, req: OrderRequest, *, position_side: PositionSide | None) -> OrderState:
        """Register a NEW order for `req` under the next exchange order id."""
        now = self._clock.now()
        state = OrderState(
            request=req,
            order_id=self.next_order_id(),
            position_side=position_side,
            status=OrderStatus.NEW,
            created_at=now,
            updated_at=now,
        )
        self._orders[req.client_order_id] = state
        return state

    def add(self, state: OrderState) -> None:
        """Register an order built elsewhere (a liquidation's closing order)."""
        self._orders[state.request.client_order_id] = state

    def record_fill(
        self,
        state: OrderState,
        symbol: str,
        price: Decimal,
        qty: Decimal,
        fee: Decimal,
        fee_asset: str,
        *,
        maker: bool,
        realized: Decimal | None,
    ) -> None:
        """Add one trade of `state` at `price` to the order and to the account's fills."""
        now = self._clock.now()
        state.filled += qty
        state.cost += price * qty
        state.fee += fee
        state.fee_asset = fee_asset
        state.updated_at = now
        self._fills.append(
            Fill(
                trade_id=self._next_trade_id(symbol),
                symbol=symbol,
                exchange_order_id=state.order_id,
                side=state.request.side,
                price=price,
                quantity=qty,
                fee=fee,
                fee_asset=fee_asset,
                timestamp=now,
                is_maker=maker,
                client_order_id=state.request.client_order_id,
                realized_pnl=realized,
            )
        )

    def settle_status(self, state: OrderState) -> None:
        """Set the status its fills give an order: FILLED, EXPIRED (market), PARTIALLY_FILLED."""
        if state.filled >= state.request.quantity:
            state.status = OrderStatus.FILLED
        elif state.request.type is OrderType.MARKET:
            state.status = OrderStatus.EXPIRED
        elif state.filled > 0:
            state.status = OrderStatus.PARTIALLY_FILLED
        state.updated_at = self._clock.now()
        self._index(state)

    def finish(self, state: OrderState, status: OrderStatus) -> None:
        """End a resting order with `status` (the caller has released what it locked)."""
        state.reserved = _ZERO
        state.status = status
        state.updated_at = self._clock.now()
        self._index(state)

    def trades(self, symbol: str, since: datetime | None = None) -> list[Fill]:
        """Return the fills on `symbol` at or after `since`, oldest first."""
        return [
            f for f in self._fills if f.symbol == symbol and (since is None or f.timestamp >= since)
        ]

    def next_order_id(self) -> str:
        # One counter for the account: ids increase per symbol and never repeat across them.
        self._order_seq += 1
        return str(self._order_seq)

    def _next_trade_id(self, symbol: str) -> str:
        self._trade_seq[symbol] = self._trade_seq.get(symbol, 0) + 1
        return str(self._trade_seq[symbol])

    def _index(self, state: OrderState) -> None:
        cid = state.request.client_order_id
        if state.is_open:
            self._resting[cid] = state
        else:
            self._resting.pop(cid, None)

    # --- persistence --------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        """Return the orders, fills and counters as JSON data."""
        return {
            "orders": [codec.encode_order(o) for o in self._orders.values()],
            "fills": [codec.encode_fill(f) for f in self._fills],
            "order_seq": self._order_seq,
            "trade_seq": dict(sorted(self._trade_seq.items())),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any], clock: Clock) -> OrderLedger:
        """Rebuild a ledger from `to_state` data (raises KeyError/ValueError when malformed)."""
        ledger = cls(clock)
        orders = {o.request.client_order_id: o for o in map(codec.decode_order, state["orders"])}
        ledger._orders = orders
        ledger._resting = {cid: o for cid, o in orders.items() if o.is_open}
        ledger._fills = [codec.decode_fill(f) for f in state["fills"]]
        ledger._order_seq = int(state["order_seq"])
        ledger._trade_seq = {s: int(v) for s, v in state["trade_seq"].items()}
        return ledger

    def replace_with(self, other: OrderLedger) -> None:
        """Take over the orders, fills and counters of `other` (a restored ledger)."""
        self._orders, self._resting, self._fills = other._orders, other._resting, other._fills
        self._order_seq, self._trade_seq = other._order_seq, other._trade_seq
