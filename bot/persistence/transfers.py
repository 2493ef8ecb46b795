"""Universal transfers between wallets in the SQL ledger (the `transfers` table).

A transfer is written PENDING before it is sent and finished with what became of it
(`TransferStatus`); `carrybot status` lists those of the hedges still open.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from bot.domain.ledger import Transfer, TransferStatus
from bot.persistence.base import SqlRepository
from bot.persistence.models import TransferRow
from bot.persistence.types import _strip_zeros


def transfer_of(values: dict[str, Any]) -> Transfer:
    """Return the transfer of a `transfers` row given as column name -> value."""
    return Transfer(
        id=values["id"],
        hedge_id=values["hedge_id"],
        asset=values["asset"],
        amount=_strip_zeros(values["amount"]),
        from_wallet=values["from_wallet"],
        to_wallet=values["to_wallet"],
        status=TransferStatus(values["status"]),
        reason=values["reason"],
        requested_at=values["requested_at"],
        completed_at=values["completed_at"],
        exchange_id=values["exchange_id"],
        error=values["error"],
    )


def new_transfer_values(
    *,
    hedge_id: int | None,
    asset: str,
    amount: Decimal,
    from_wallet: str,
    to_wallet: str,
    reason: str,
    at: datetime,
) -> dict[str, Any]:
    """The columns of a transfer about to be sent (PENDING)."""
    if amount <= 0:
        raise ValueError(f"transfer amount must be positive, got {amount}")
    return {
        "hedge_id": hedge_id,
        "asset": asset,
        "amount": amount,
        "from_wallet": from_wallet,
        "to_wallet": to_wallet,
        "exchange_id": None,
        "status": TransferStatus.PENDING.value,
        "reason": reason,
        "error": None,
        "requested_at": at,
        "completed_at": None,
    }


def _values(row: TransferRow) -> dict[str, Any]:
    return {c.key: getattr(row, c.key) for c in TransferRow.__table__.columns}


class TransferRepository(SqlRepository):
    """Transfers, one row per request sent to the exchange."""

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
        values = new_transfer_values(
            hedge_id=hedge_id,
            asset=asset,
            amount=amount,
            from_wallet=from_wallet,
            to_wallet=to_wallet,
            reason=reason,
            at=at,
        )
        async with self._sessions.begin() as s:
            row = TransferRow(**values)
            s.add(row)
            await s.flush()
            return transfer_of(_values(row))

    async def finish(
        self,
        transfer_id: int,
        *,
        status: TransferStatus,
        at: datetime,
        exchange_id: str | None = None,
        error: str | None = None,
    ) -> Transfer:
        """Record what became of a transfer; `completed_at` is set once it is final."""
        async with self._sessions.begin() as s:
            row = await s.get(TransferRow, transfer_id)
            if row is None:
                raise KeyError(f"no transfer {transfer_id}")
            row.status = status.value
            row.completed_at = at if status.is_final else None
            if exchange_id is not None:
                row.exchange_id = exchange_id
            if error is not None:
                row.error = error
            await s.flush()
            return transfer_of(_values(row))

    async def for_hedges(self, hedge_ids: Iterable[int]) -> list[Transfer]:
        """The transfers of `hedge_ids`, oldest first."""
        ids = list(hedge_ids)
        if not ids:
            return []
        async with self._sessions() as s:
            rows = await s.scalars(
                select(TransferRow).where(TransferRow.hedge_id.in_(ids)).order_by(TransferRow.id)
            )
            return [transfer_of(_values(r)) for r in rows]
