"""A ledger held in memory: the repositories' interface over Python lists, for backtests.

`MemoryLedger` answers every call of `Ledger` (the trading loop, executor, reconciler and
risk gate cannot tell them apart) without a database round trip: a replayed hour costs
microseconds instead of the ~1 ms of an async SQLAlchemy transaction. Rows are kept as the
database would store them (column name → value, ids from 1, natural keys idempotent) and
`bot.persistence.memory_write.write_ledger` puts them into a migrated database in one
transaction at the end, so the file reads like any bot's ledger (`carrybot status`).

What a read returns is what the SQL ledger returns: money read back is normalised as
`Money` normalises a stored value (trailing zeros stripped), while the object a write
returns keeps the values just written, as the ORM row of that write does. The results of a
backtest are therefore the same to the last digit with either ledger.

Nothing here may be shared between processes: `carrybot halt` cannot reach a backtest.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

from bot.domain import Event, Severity
from bot.domain.ledger import (
    BotRun,
    CloseRequest,
    TradingState,
    TradingStatus,
    Transfer,
    TransferStatus,
)
from bot.persistence.bot_state import (
    CloseRequestRepository,
    EventRepository,
    PaperStateRepository,
    RunRepository,
    TradingStateRepository,
)
from bot.persistence.memory_fills import MemoryFills, MemoryFunding, MemorySettledFunding
from bot.persistence.memory_hedges import MemoryHedges, MemoryOrders
from bot.persistence.memory_observations import MemoryObservations, MemorySnapshots
from bot.persistence.memory_rows import MemoryRepository, Row, Tables
from bot.persistence.repositories import CycleView, Ledger
from bot.persistence.transfers import TransferRepository, new_transfer_values, transfer_of


class MemoryRuns(MemoryRepository, RunRepository):
    async def start(
        self, *, mode: str, environment: str, config_hash: str, version: str, at: datetime
    ) -> BotRun:
        row = self._t.add(
            "bot_runs",
            {
                "mode": mode,
                "exchange_environment": environment,
                "config_hash": config_hash,
                "version": version,
                "started_at": at,
                "stopped_at": None,
                "stop_reason": None,
            },
        )
        return _run(row)

    async def stop(self, run_id: int, *, at: datetime, reason: str) -> None:
        for row in self._t.rows["bot_runs"]:
            if row["id"] == run_id:
                row.update(stopped_at=at, stop_reason=reason)

    async def latest(self, limit: int = 10) -> list[BotRun]:
        return [_run(r) for r in reversed(self._t.rows["bot_runs"][-limit:])]


class MemoryEvents(MemoryRepository, EventRepository):
    def __init__(self, tables: Tables, run_id: int | None = None) -> None:
        super().__init__(tables)
        self.run_id = run_id

    async def emit(self, event: Event) -> None:
        self._t.add(
            "events",
            {
                "at": event.at,
                "kind": event.kind,
                "severity": event.severity.value,
                "message": event.message,
                "data": dict(event.data),
                "hedge_id": event.hedge_id,
                "run_id": self.run_id,
            },
        )

    async def recent(self, kind: str | None = None, limit: int = 100) -> list[Event]:
        rows = [r for r in self._t.rows["events"] if kind is None or r["kind"] == kind]
        return [
            Event(
                r["kind"],
                r["message"],
                r["at"],
                Severity(r["severity"]),
                json.loads(json.dumps(r["data"])) if r["data"] else {},
                r["hedge_id"],
            )
            for r in reversed(rows[-limit:] if limit > 0 else [])
        ]


class MemoryTradingState(MemoryRepository, TradingStateRepository):
    async def get(self) -> TradingStatus | None:
        return self._t.trading

    async def set(
        self, state: TradingState, *, reason: str, changed_by: str, at: datetime
    ) -> TradingStatus:
        self._t.trading = TradingStatus(state, reason, changed_by, at)
        return self._t.trading


class MemoryCloseRequests(MemoryRepository, CloseRequestRepository):
    """Close requests of the process itself (nothing outside can reach a backtest); not
    written to the database at the end (a backtest has no operator)."""

    @property
    def _requests(self) -> dict[int, CloseRequest]:
        return self._t.close_requests

    async def add(self, hedge_id: int, *, reason: str, source: str, at: datetime) -> CloseRequest:
        self._t.close_request_ids += 1
        request = CloseRequest(self._t.close_request_ids, hedge_id, reason, source, at)
        self._requests[request.id] = request
        return request

    async def pending(self) -> list[CloseRequest]:
        return list(self.kept())

    def kept(self) -> tuple[CloseRequest, ...]:
        """The pending requests, without an await (the cycle view's read)."""
        return tuple(self._requests.values()) if self._requests else ()

    async def finish(self, request_id: int, *, outcome: str, at: datetime) -> None:
        self._requests.pop(request_id, None)


class MemoryTransfers(MemoryRepository, TransferRepository):
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
        values = new_transfer_values(
            hedge_id=hedge_id,
            asset=asset,
            amount=amount,
            from_wallet=from_wallet,
            to_wallet=to_wallet,
            reason=reason,
            at=at,
        )
        return transfer_of(self._t.add("transfers", values))

    async def finish(
        self,
        transfer_id: int,
        *,
        status: TransferStatus,
        at: datetime,
        exchange_id: str | None = None,
        error: str | None = None,
    ) -> Transfer:
        rows = self._t.rows["transfers"]
        if not 0 < transfer_id <= len(rows):  # ids are 1.. in write order, never deleted
            raise KeyError(f"no transfer {transfer_id}")
        row = rows[transfer_id - 1]
        row.update(status=status.value, completed_at=at if status.is_final else None)
        if exchange_id is not None:
            row["exchange_id"] = exchange_id
        if error is not None:
            row["error"] = error
        return transfer_of(row)

    async def for_hedges(self, hedge_ids: Iterable[int]) -> list[Transfer]:
        ids = set(hedge_ids)
        return [transfer_of(r) for r in self._t.rows["transfers"] if r["hedge_id"] in ids]


class MemoryPaperState(MemoryRepository, PaperStateRepository):
    async def load(self, key: str) -> dict[str, Any] | None:
        saved = self._t.paper.get(key)
        return json.loads(json.dumps(saved[0])) if saved is not None else None  # a JSON copy

    async def save(self, key: str, state: dict[str, Any], *, at: datetime) -> None:
        self._t.paper[key] = (state, at)  # the caller's fresh dict (`to_state()`), kept as is


class MemoryLedger(Ledger):
    """`Ledger` in memory; `write_ledger` stores it in a database at the end of a run."""

    def __init__(self, tables: Tables | None = None, run_id: int | None = None) -> None:
        # The SQL ledger's repositories are replaced one by one; no session factory exists.
        self.tables = tables or Tables()
        t = self.tables
        self.runs = MemoryRuns(t)
        self.observations = MemoryObservations(t)
        self.settled_funding = MemorySettledFunding(t)
        self.hedges = MemoryHedges(t)
        self.orders = MemoryOrders(t)
        self.fills = MemoryFills(t)
        self.funding = MemoryFunding(t)
        self.snapshots = MemorySnapshots(t)
        self.events = MemoryEvents(t, run_id)
        self.trading_state = MemoryTradingState(t)
        self._closes = MemoryCloseRequests(t)
        self.close_requests = self._closes
        self.paper_state = MemoryPaperState(t)
        self.transfers = MemoryTransfers(t)

    def for_run(self, run_id: int) -> MemoryLedger:
        """Return a ledger over the same rows whose events are tagged with `run_id`."""
        return MemoryLedger(self.tables, run_id)

    async def cycle_view(self) -> CycleView:
        t = self.tables
        closes = self._closes.kept()
        return CycleView(t.trading, list(t.active.values()), dict(t.last_closed), closes)


def _run(r: Row) -> BotRun:
    return BotRun(
        r["id"],
        r["mode"],
        r["exchange_environment"],
        r["config_hash"],
        r["version"],
        r["started_at"],
        r["stopped_at"],
        r["stop_reason"],
    )
