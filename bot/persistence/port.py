"""The ledger port: what execution and reconciliation need of the ledger, and nothing more.

The executor, its leg runner, delivery settlement and the reconciler take a `LedgerPort`;
`Ledger` (SQL) and `MemoryLedger` (a backtest's, in memory) both implement it, and so can
any other ledger that answers these calls as they do. Writes happen before the exchange is
asked anything: a hedge and its orders are stored before an order is sent.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from bot.domain import Event, Fill, FundingPayment, Hedge, HedgeState, Order, OrderStatus
from bot.domain.ledger import (
    NewOrder,
    OrderRecord,
    TradingState,
    TradingStatus,
    Transfer,
    TransferStatus,
)


class HedgeStore(Protocol):
    """Hedges as persisted state machines."""

    async def create(
        self,
        *,
        uid: str,
        pair: str,
        spot_symbol: str,
        perp_symbol: str,
        target_quantity: Decimal,
        target_notional: Decimal,
        reason: str,
        metrics: dict[str, str],
        at: datetime,
        venue: str,
        orders: Sequence[NewOrder],
        state: HedgeState = HedgeState.OPENING,
        run_id: int | None = None,
    ) -> tuple[Hedge, list[OrderRecord]]:
        """Write a hedge and the orders it will send in one transaction, before any send."""
        ...

    async def get(self, hedge_id: int) -> Hedge | None:
        """Return the hedge, or None when there is none of that id."""
        ...

    async def in_states(self, states: Iterable[HedgeState] | None = None) -> list[Hedge]:
        """Return hedges (in the given states), oldest first."""
        ...

    async def active(self) -> list[Hedge]:
        """Return hedges that may hold exposure (anything but CLOSED and FAILED)."""
        ...

    async def transition(
        self, hedge_id: int, to: HedgeState, *, reason: str, at: datetime, **fields: Any
    ) -> Hedge:
        """Move a hedge along its state machine, recording the reason; update other fields."""
        ...

    async def update(self, hedge_id: int, *, at: datetime, **fields: Any) -> Hedge:
        """Update quantities, prices or metrics without changing state."""
        ...


class OrderStore(Protocol):
    """Orders, written before they are sent and updated with what the exchange says."""

    async def add(
        self, orders: Sequence[NewOrder], *, venue: str, at: datetime, hedge_id: int | None
    ) -> list[OrderRecord]:
        """Write orders (status PENDING) before they are sent."""
        ...

    async def for_hedge(self, hedge_id: int) -> list[OrderRecord]:
        """Return the orders of a hedge, oldest first."""
        ...

    async def apply(
        self, order: Order, *, at: datetime, acked: bool = True, sent_at: datetime | None = None
    ) -> OrderRecord:
        """Record the exchange's view of an order (status, filled, average price)."""
        ...

    async def mark_failed(
        self,
        client_order_id: str,
        *,
        at: datetime,
        status: OrderStatus,
        code: int | None,
        message: str,
        sent_at: datetime | None = None,
    ) -> OrderRecord:
        """Record that an order was rejected, or that its outcome is unknown."""
        ...


class FillStore(Protocol):
    """Fills, stored once per (venue, symbol, trade id)."""

    async def record(
        self, venue: str, fills: Iterable[Fill], *, fee_usdt: dict[str, Decimal] | None = None
    ) -> int:
        """Store fills, skipping those already stored; return how many were new."""
        ...

    async def for_order(self, client_order_id: str) -> list[Fill]:
        """Return the fills of an order, oldest first."""
        ...


class FundingStore(Protocol):
    """Funding payments as recorded (a COIN-M hedge's close moves its coin funding back)."""

    async def payments(
        self, *, venue: str | None = None, hedge_id: int | None = None
    ) -> list[FundingPayment]:
        """Return the payments (of one venue, of one hedge), oldest first."""
        ...


class TradingStateStore(Protocol):
    """The kill switch."""

    async def get(self) -> TradingStatus | None:
        """Return the kill-switch state, or None when it was never set (treated as ACTIVE)."""
        ...

    async def set(
        self, state: TradingState, *, reason: str, changed_by: str, at: datetime
    ) -> TradingStatus:
        """Set the kill switch; return the new status."""
        ...


class EventLog(Protocol):
    """The events the ledger holds (reconciliation reads the operator's adopt requests)."""

    async def recent(self, kind: str | None = None, limit: int = 100) -> list[Event]:
        """Return the newest events (optionally of one kind), newest first."""
        ...


class TransferStore(Protocol):
    """Universal transfers between wallets, written before they are sent."""

    async def request(
        self,
        *,
        hedge_id: int | None,
        asset: str,
        amount: Decimal,
        from_wallet: str,
        to_wallet: str,
        reason: str,
        at: datetime,
    ) -> Transfer:
        """Write a transfer (PENDING) before it is sent; return it."""
        ...

    async def finish(
        self,
        transfer_id: int,
        *,
        status: TransferStatus,
        at: datetime,
        exchange_id: str | None = None,
        error: str | None = None,
    ) -> Transfer:
        """Record what became of a transfer."""
        ...

    async def for_hedges(self, hedge_ids: Iterable[int]) -> list[Transfer]:
        """The transfers of `hedge_ids`, oldest first."""
        ...


class LedgerPort(Protocol):
    """The ledger as execution and reconciliation see it."""

    @property
    def hedges(self) -> HedgeStore: ...

    @property
    def orders(self) -> OrderStore: ...

    @property
    def fills(self) -> FillStore: ...

    @property
    def funding(self) -> FundingStore: ...

    @property
    def trading_state(self) -> TradingStateStore: ...

    @property
    def events(self) -> EventLog: ...

    @property
    def transfers(self) -> TransferStore: ...
