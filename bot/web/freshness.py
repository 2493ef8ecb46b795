"""When the dashboard's kept views are still true: a version of the ledger, cheap to read.

The version has two parts. `WriteCounter` counts this process's INSERT/UPDATE/DELETE
statements on the engine (exact, no query: it sees in-place updates such as an order's
acknowledgement, which no maximum id reveals). `ledger_marks` is one query of maximum ids
and the kill switch's time, which also sees rows other processes add (`carrybot halt` or
`carrybot adopt` from a shell, or a bot writing a ledger that `carrybot web` serves).

Each part is split in two: the rows a running bot adds every few seconds (`FAST_TABLES`:
market observations, balance snapshots) and the rest. The reader refreshes its views at once
on a change of the rest, and on a change of the fast rows alone at most every
`ReadModel.max_age_seconds`: otherwise a bot scraped every 15 s rebuilt every view at every
scrape (measured in `bench_soak.py`).
"""

from __future__ import annotations

from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import event, func, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from bot.persistence.models import (
    BalanceSnapshotRow,
    BotRunRow,
    EventRow,
    FillRow,
    FundingPaymentRow,
    HedgeRow,
    HedgeTransitionRow,
    MarketObservationRow,
    OrderRow,
    TradingStateRow,
)

# Tables no dashboard view reads: writing them leaves the kept views true.
UNREAD_TABLES = frozenset(
    {
        "paper_state",
        "stream_states",
        "settled_funding",
        "alembic_version",
        "position_snapshots",
    }
)
# Tables a running bot adds rows to every few seconds: kept views follow them within the age.
FAST_TABLES = frozenset({"market_observations", "balance_snapshots"})

_COUNTERS: WeakKeyDictionary[Engine, WriteCounter] = WeakKeyDictionary()


class WriteCounter:
    """How many writes this process sent through one engine to the tables the views read."""

    def __init__(self) -> None:
        self.writes = 0  # to the tables the views read, FAST_TABLES aside
        self.fast_writes = 0  # to FAST_TABLES
        self.by_table: dict[str, int] = {}  # the same writes, per table

    def _after_execute(
        self,
        conn: Connection,
        cursor: Any,
        statement: str,
        parameters: Any,
        context: Any,
        executemany: bool,
    ) -> None:
        if context is None or not (context.isinsert or context.isupdate or context.isdelete):
            return
        table = getattr(getattr(context.compiled, "statement", None), "table", None)
        name = getattr(table, "name", None)
        if name in FAST_TABLES:
            self.fast_writes += 1
        elif name not in UNREAD_TABLES:
            self.writes += 1
        else:
            return
        key = str(name)
        self.by_table[key] = self.by_table.get(key, 0) + 1


def write_counter(engine: AsyncEngine) -> WriteCounter:
    """The counter of `engine` (one per engine, attached at the first call)."""
    sync = engine.sync_engine
    counter = _COUNTERS.get(sync)
    if counter is None:
        counter = WriteCounter()
        event.listen(sync, "after_cursor_execute", counter._after_execute)
        _COUNTERS[sync] = counter
    return counter


def _top(column: Any) -> Any:
    return select(func.max(column)).scalar_subquery()


_MARKED = {
    "balance_snapshots": BalanceSnapshotRow.id,
    "market_observations": MarketObservationRow.id,
    "events": EventRow.id,
    "hedges": HedgeRow.id,
    "hedge_transitions": HedgeTransitionRow.id,
    "orders": OrderRow.id,
    "fills": FillRow.id,
    "funding_payments": FundingPaymentRow.id,
    "bot_runs": BotRunRow.id,
    "trading_state": TradingStateRow.changed_at,
}
_MARKS = select(*(_top(column) for column in _MARKED.values()))


async def ledger_marks(session: AsyncSession | AsyncConnection) -> dict[str, Any]:
    """The newest id of every table the views read, and when the kill switch last changed,
    by table name."""
    row = (await session.execute(_MARKS)).one()
    return dict(zip(_MARKED, row, strict=True))
