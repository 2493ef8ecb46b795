"""The SQL ledger: every repository over one session factory. They take and return domain objects.

Repositories are the only code that touches ORM rows, one module per aggregate: hedges and
their orders (`hedges`), fills and funding (`fills`), wallet transfers (`transfers`),
observations and snapshots (`observations`), the bot's own state (`bot_state`); rows map
to domain objects in `mapping`, and every idempotent write goes through `upsert`.
"""

from __future__ import annotations

from bot.domain.ledger import CloseRequest
from bot.persistence.base import Sessions, engine_of
from bot.persistence.bot_state import (
    CloseRequestRepository,
    EventRepository,
    PaperStateRepository,
    RunRepository,
    TradingStateRepository,
)
from bot.persistence.cycle_reads import PENDING_CLOSES, CycleReads, CycleView, close_request_of
from bot.persistence.fills import FillRepository, FundingRepository, SettledFundingRepository
from bot.persistence.hedges import HedgeRepository, OrderRepository
from bot.persistence.observations import ObservationRepository, SnapshotRepository
from bot.persistence.transfers import TransferRepository

__all__ = [
    "CloseRequestRepository",
    "CycleReads",
    "CycleView",
    "EventRepository",
    "FillRepository",
    "FundingRepository",
    "HedgeRepository",
    "Ledger",
    "ObservationRepository",
    "OrderRepository",
    "PaperStateRepository",
    "RunRepository",
    "SettledFundingRepository",
    "SnapshotRepository",
    "TradingStateRepository",
    "TransferRepository",
]


class Ledger:
    """All repositories over one session factory, with the reads kept for its engine."""

    def __init__(self, sessions: Sessions, reads: CycleReads, run_id: int | None = None) -> None:
        self.sessions = sessions
        self.reads = reads
        self.runs = RunRepository(sessions)
        self.observations = ObservationRepository(sessions)
        self.settled_funding = SettledFundingRepository(sessions)
        self.hedges = HedgeRepository(sessions, reads)
        self.orders = OrderRepository(sessions)
        self.fills = FillRepository(sessions)
        self.funding = FundingRepository(sessions)
        self.snapshots = SnapshotRepository(sessions)
        self.events = EventRepository(sessions, run_id)
        self.trading_state = TradingStateRepository(sessions, reads)
        self.close_requests = CloseRequestRepository(sessions)
        self.paper_state = PaperStateRepository(sessions)
        self.transfers = TransferRepository(sessions)

    def for_run(self, run_id: int) -> Ledger:
        """Return a ledger whose events are tagged with `run_id`."""
        return Ledger(self.sessions, self.reads, run_id)

    async def cycle_view(self) -> CycleView:
        """Return the trading state, the active hedges, the last closes and the pending
        operator closes in one round trip.

        The trading state and the close requests are read every time (`carrybot halt` and
        `carrybot close` write them from another process) unless `reads` keeps the state (a
        ledger no other process writes, which no close request can reach either); the
        hedges are read again only after this process wrote one.
        """
        reads = self.reads
        kept, status = reads.kept_status()
        hedges = reads.current()
        if kept and hedges is not None:
            return CycleView(status, *hedges)
        async with engine_of(self.sessions).connect() as conn:
            closes: tuple[CloseRequest, ...] = ()
            if not kept:
                status = await reads.read_status(conn)
                closes = tuple(close_request_of(r) for r in await conn.execute(PENDING_CLOSES))
            active, last_closed = await reads.read(conn)
            return CycleView(status, active, last_closed, closes)
