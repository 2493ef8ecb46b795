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

A graceful stop (`BotScheduler.stop`) starts no new run, waits (bounded) for the jobs that
are running — a heartbeat mid-way through a database write included — and only then shuts
the scheduler down, so the database engine is disposed with no job still using it. A job
still running after the grace is cancelled and awaited; its cancellation is logged at INFO,
not as a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from bot.clock import Clock
from bot.config import ScheduleConfig
from bot.lifecycle import wait_in_flight
from bot.trading import TradingLoop
from bot.trading.cycle import Cycle, Due, StageRunner

log = logging.getLogger(__name__)

FUNDING_CHECK_SECONDS = 15.0
"""Longest wait between two looks for funding payments that are due (cheap when none are)."""

CANCEL_WAIT_SECONDS = 5.0
"""Longest wait for a job cancelled at stop to unwind (e.g. SQLAlchemy closing its session)."""

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

    A graceful stop waits for a running cycle, which starts no stage once the loop is
    stopping, instead of cancelling it half-way.
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

    async def __call__(self) -> None:
        await self._cycle.run(self.timer.due())


class RunningJobs:
    """The scheduler's jobs running now (their tasks), for the graceful stop to wait for."""

    def __init__(self) -> None:
        self._tasks: dict[asyncio.Task[Any], str] = {}

    @contextlib.contextmanager
    def track(self, name: str) -> Iterator[None]:
        """Count the current task as job `name` while the block runs."""
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - jobs always run in a task
            yield
            return
        self._tasks[task] = name
        try:
            yield
        finally:
            self._tasks.pop(task, None)

    def names(self) -> list[str]:
        """The names of the jobs running now."""
        return sorted(self._tasks.values())

    async def drain(self, within: float) -> list[str]:
        """Wait up to `within` seconds for the running jobs to end, then cancel the rest and
        wait (bounded) for them to unwind. Return the names of the jobs cancelled."""
        tasks = set(self._tasks)
        if not tasks:
            return []
        log.info("Waiting for the running job(s) to finish: %s", ", ".join(self.names()))
        _, pending = await asyncio.wait(tasks, timeout=within)
        if not pending:
            return []
        cancelled = sorted(self._tasks.get(t, "?") for t in pending)
        for task in pending:
            task.cancel()
        await asyncio.wait(pending, timeout=CANCEL_WAIT_SECONDS)
        return cancelled


@dataclass(frozen=True)
class BotScheduler:
    """The APScheduler instance, its cycle job and the jobs running now."""

    scheduler: AsyncIOScheduler
    cycle: CycleJob
    running: RunningJobs

    async def stop(self, loop: TradingLoop, within: float) -> None:
        """Stop gracefully: no new runs; let a hedge in flight finish and the running jobs
        end (up to `within` seconds, then cancel them); then shut the scheduler down."""
        loop.state.stopping = True
        self.scheduler.pause()
        await wait_in_flight(loop)
        cancelled = await self.running.drain(within)
        if cancelled:
            log.warning(
                "Job(s) %s still running %.0fs after the stop; cancelled",
                ", ".join(cancelled),
                within,
            )
        # Shutting APScheduler down cancels a job still running: none is left by now.
        self.scheduler.shutdown(wait=False)


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
    name: str,
    job: Callable[[], Awaitable[Any]],
    running: RunningJobs,
    on_job: JobObserver | None = None,
) -> Callable[[], Awaitable[None]]:
    """Run a job so that an unexpected exception is logged and never stops the scheduler."""

    async def run() -> None:
        started = time.perf_counter()
        with running.track(name):
            try:
                await job()
            except asyncio.CancelledError:
                # Only a stop cancels a job (this is its task's outermost frame): not a
                # failure, and re-raising would have APScheduler log it as an ERROR.
                log.info("Job %s cancelled at stop", name)
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
    running = RunningJobs()
    jobs: list[tuple[str, Callable[[], Awaitable[Any]], float, bool]] = [
        ("cycle", cycle, cycle.timer.tick, True),
        ("heartbeat", loop.heartbeat, schedule.heartbeat_seconds, False),
    ]
    now = clock.now()
    for name, job, seconds, run_now in jobs:
        # Passing next_run_time=None would add the job paused, so only pass it to run now.
        extra: dict[str, Any] = {"next_run_time": now} if run_now else {}
        scheduler.add_job(
            _guarded(name, job, running, on_job),
            IntervalTrigger(seconds=seconds, timezone=UTC),
            id=name,
            name=name,
            max_instances=1,
            coalesce=True,
            **extra,
        )
    return BotScheduler(scheduler, cycle, running)
