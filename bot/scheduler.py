"""APScheduler 3 drives the bot: the one `Cycle` and the heartbeat, each a job with
`max_instances=1, coalesce=True`.

The cycle job ticks every `CycleTimer.tick` seconds and runs the stages that are due, in the
cycle's order: poll → capture funding → balance snapshot → reconcile → evaluate. It is the
`Cycle` that `run --once` and the backtest run, so the balance snapshot is taken after the
poll that prices what is held, and the strategy acts on the poll of its own cycle. A stage
that raises is logged and the cycle goes on with the next one (a failing snapshot never
stops the evaluation), as Freqtrade's loop goes on after a failed step.

The heartbeat stays a job of its own: its line carries the age of the last market snapshot,
so it keeps coming, and shows the delay, while a slow exchange holds a cycle up.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from bot.clock import Clock
from bot.config import ScheduleConfig
from bot.trading import TradingLoop
from bot.trading.cycle import Cycle, Due, StageRunner

log = logging.getLogger(__name__)

FUNDING_CHECK_SECONDS = 15.0
"""Longest wait between two looks for funding payments that are due (cheap when none are)."""

JobObserver = Callable[[str, float], None]


class CycleTimer:
    """Which stages of the live cycle are due, from `[schedule]`'s intervals on the clock.

    The poll and the balance snapshot are due at the first cycle; the evaluation one
    interval after the start (as the bot always did: the dashboard and the first data come
    first), the reconciliation one interval after it (start-up reconciliation has just run). A
    stage is due at the first tick at least its interval after it last ran, less a little
    slack for the scheduler's jitter (so with the defaults every interval is kept exactly).
    """

    def __init__(self, schedule: ScheduleConfig, clock: Clock) -> None:
        self.tick = min(
            schedule.poll_seconds,
            schedule.evaluate_seconds,
            FUNDING_CHECK_SECONDS,
            schedule.funding_capture_delay_seconds,
        )
        self._slack = min(self.tick / 2, 1.0)
        self._clock = clock
        self._every = {
            "poll": schedule.poll_seconds,
            "snapshot": schedule.balance_snapshot_seconds,
            "reconcile": schedule.reconcile_seconds,
            "evaluate": schedule.evaluate_seconds,
        }
        start = clock.monotonic()
        self._next = {name: start for name in self._every}
        self._next["evaluate"] = start + schedule.evaluate_seconds
        self._next["reconcile"] = start + schedule.reconcile_seconds

    def due(self) -> Due:
        """Return the stages due now, and count them as run."""
        now = self._clock.monotonic()
        due = {name for name, at in self._next.items() if now >= at - self._slack}
        for name in due:
            self._next[name] = now + self._every[name]
        return Due(
            poll="poll" in due,
            snapshot="snapshot" in due,
            reconcile="reconcile" in due,
            evaluate="evaluate" in due,
        )


class CycleJob:
    """The scheduler's cycle job: the due stages of the one `Cycle`, once per tick.

    A graceful stop waits for a running cycle (`idle`), which starts no stage once the
    loop is stopping, instead of cancelling it half-way.
    """

    def __init__(
        self,
        loop: TradingLoop,
        schedule: ScheduleConfig,
        clock: Clock,
        on_job: JobObserver | None = None,
    ) -> None:
        self.timer = CycleTimer(schedule, clock)
        self._cycle = Cycle(loop, runner=guarded_stage(on_job), stopping=loop.is_stopping)
        self._idle = asyncio.Event()
        self._idle.set()

    async def __call__(self) -> None:
        self._idle.clear()
        try:
            await self._cycle.run(self.timer.due())
        finally:
            self._idle.set()

    async def idle(self, within: float) -> bool:
        """Wait up to `within` seconds for a running cycle to end; tell whether it did."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout=within)
        except TimeoutError:
            return False
        return True


@dataclass(frozen=True)
class BotScheduler:
    """The APScheduler instance and its cycle job (which the graceful stop waits for)."""

    scheduler: AsyncIOScheduler
    cycle: CycleJob


def guarded_stage(on_job: JobObserver | None = None) -> StageRunner:
    """A stage runner that logs a stage's exception and lets the cycle go on.

    `on_job(name, seconds)` is told how long each stage took (the dashboard's job histogram,
    labelled `poll`, `funding_capture`, `balance_snapshot`, `reconcile`, `evaluate`).
    """

    async def run(name: str, job: Callable[[], Awaitable[Any]]) -> Any:
        started = time.perf_counter()
        try:
            return await job()
        except Exception:
            log.exception("Stage %s failed; the cycle goes on, and it runs when next due", name)
            return None
        finally:
            if on_job is not None:
                on_job(name, time.perf_counter() - started)

    return run


def _guarded(
    name: str, job: Callable[[], Awaitable[Any]], on_job: JobObserver | None = None
) -> Callable[[], Awaitable[None]]:
    """Run a job so that an unexpected exception is logged and never stops the scheduler."""

    async def run() -> None:
        started = time.perf_counter()
        try:
            await job()
        except Exception:
            log.exception("Job %s failed; it runs again at its next interval", name)
        finally:
            if on_job is not None:
                on_job(name, time.perf_counter() - started)

    run.__name__ = f"job_{name}"
    return run


def build_scheduler(
    loop: TradingLoop,
    schedule: ScheduleConfig,
    clock: Clock,
    *,
    on_job: JobObserver | None = None,
) -> BotScheduler:
    """Create the scheduler with the cycle and heartbeat jobs (not started)."""
    scheduler = AsyncIOScheduler(
        timezone=UTC,
        job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": 30},
    )
    cycle = CycleJob(loop, schedule, clock, on_job)
    jobs: list[tuple[str, Callable[[], Awaitable[Any]], float, bool]] = [
        ("cycle", cycle, cycle.timer.tick, True),
        ("heartbeat", loop.heartbeat, schedule.heartbeat_seconds, False),
    ]
    now = clock.now()
    for name, job, seconds, run_now in jobs:
        # Passing next_run_time=None would add the job paused, so only pass it to run now.
        extra: dict[str, Any] = {"next_run_time": now} if run_now else {}
        scheduler.add_job(
            _guarded(name, job, on_job),
            IntervalTrigger(seconds=seconds, timezone=UTC),
            id=name,
            name=name,
            max_instances=1,
            coalesce=True,
            **extra,
        )
    return BotScheduler(scheduler, cycle)
