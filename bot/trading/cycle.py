"""The bot's cycle, written once: poll → capture funding → snapshot → (reconcile) → evaluate.

The long-running scheduler (`bot.scheduler`), `carrybot run --once` and the backtest run
this one `Cycle`; they differ only in which stages are due (`Due`: the `[schedule]`
intervals, every stage once, or the backtest's snapshot and reconcile intervals) and in how
a stage's error is handled (`StageRunner`: the scheduler logs it and goes on).

Funding is captured before the strategy runs, so the funding settled at an event time is
paid to the position held then; the balance snapshot comes after the poll, so what is held
is priced by this cycle's quotes (after a restart too), and before the evaluation, so the
risk gate sees the day's equity.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from bot.domain import Intent, MarketSnapshot

if TYPE_CHECKING:
    from bot.trading.loop import TradingLoop

log = logging.getLogger(__name__)

STAGES = ("poll", "funding_capture", "balance_snapshot", "reconcile", "evaluate")
"""The stages of one cycle, in the order they run (the names of their metrics)."""


@dataclass(frozen=True, slots=True)
class Due:
    """Which stages run this cycle; funding capture runs every cycle (it is cheap when no
    funding time has passed), and with `force_funding` looks for payments even then."""

    poll: bool = True
    snapshot: bool = True
    reconcile: bool = False
    evaluate: bool = True
    force_funding: bool = False


@dataclass
class CycleResult:
    """What one cycle saw and did."""

    stages: list[str] = field(default_factory=list)
    """The stages that ran, in order."""
    snapshot: MarketSnapshot | None = None
    equity: Decimal | None = None
    """The equity the balance snapshot recorded (None: not due, deferred or failed)."""
    done: list[Intent] = field(default_factory=list)


StageRunner = Callable[[str, Callable[[], Awaitable[Any]]], Awaitable[Any]]
"""Run one stage by name: `await runner(name, job)` returns what the job returned."""


async def run_stage(name: str, job: Callable[[], Awaitable[Any]]) -> Any:
    """Run a stage as it is: an error propagates (run --once, the backtest)."""
    return await job()


class Cycle:
    """One pass over the loop's jobs in the cycle's order."""

    def __init__(
        self,
        loop: TradingLoop,
        *,
        runner: StageRunner = run_stage,
        before_snapshot: Callable[[], Awaitable[None]] | None = None,
        stopping: Callable[[], bool] | None = None,
    ) -> None:
        """`before_snapshot` runs after funding is captured (the backtest closes the hedges
        on pairs whose data ends there, so the snapshot and the strategy see them closed);
        once `stopping()` is true no further stage starts (the scheduler's graceful stop)."""
        self._loop = loop
        self._runner = runner
        self._before_snapshot = before_snapshot
        self._stopping = stopping

    async def run(self, due: Due = Due()) -> CycleResult:
        """Run the due stages in order; return what they saw and did."""
        loop, result = self._loop, CycleResult()
        if due.poll:
            result.snapshot = await self._stage(result, "poll", loop.poll)
        force = due.force_funding
        await self._stage(result, "funding_capture", lambda: loop.capture_funding(force=force))
        if self._before_snapshot is not None:
            await self._before_snapshot()
        if due.snapshot:
            result.equity = await self._stage(result, "balance_snapshot", loop.snapshot_balances)
        if due.reconcile:
            await self._stage(result, "reconcile", loop.reconcile)
        if due.evaluate:
            result.done = await self._stage(result, "evaluate", loop.evaluate) or []
        return result

    async def _stage(
        self, result: CycleResult, name: str, job: Callable[[], Awaitable[Any]]
    ) -> Any:
        if self._stopping is not None and self._stopping():
            return None
        result.stages.append(name)
        return await self._runner(name, job)
