"""APScheduler 3 jobs of the bot: the cycle and the heartbeat, each `max_instances=1,
coalesce=True`.

The cycle job ticks every `min(poll_seconds, evaluate_seconds)` and runs the one `Cycle`
(poll → capture funding → snapshot → reconcile → evaluate) with the stages each cadence
makes due: poll and balance snapshot from the first tick, evaluation after
`evaluate_seconds`, the periodic reconciliation after `reconcile_seconds`. A stage that
fails is logged and the next stage still runs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from bot.clock import Clock
from bot.config import ScheduleConfig
from bot.trading import TradingLoop
from bot.trading.cycle import Cycle, Due

log = logging.getLogger(__name__)


JobObserver = Callable[[str, float], None]


class Cadence:
    """When each stage of the cycle is due next, on the monotonic clock.

    Times advance by whole intervals from the start (not from when a stage last ran), and
    a stage is due up to half a tick early, so a tick that fires a little before its
    interval is up still runs it.
    """

    def __init__(self, schedule: ScheduleConfig, monotonic: Callable[[], float]) -> None:
        self._now = monotonic
        self.tick = min(schedule.poll_seconds, schedule.evaluate_seconds)
        start = monotonic()
        self._every = {
            "poll": schedule.poll_seconds,
            "snapshot": schedule.balance_snapshot_seconds,
            "evaluate": schedule.evaluate_seconds,
            "reconcile": schedule.reconcile_seconds,
        }
        self._next = {
            "poll": start,
            "snapshot": start,
            "evaluate": start + schedule.evaluate_seconds,
            "reconcile": start + schedule.reconcile_seconds,
        }

    def due(self) -> Due:
        """Which stages are due now (each one's next time moves on past now)."""
        now = self._now() + self.tick / 2
        flags: dict[str, bool] = {}
        for name, at in self._next.items():
            flags[name] = now >= at
            while self._next[name] <= now:
                self._next[name] += self._every[name]
        return Due(
            poll=flags["poll"],
            snapshot=flags["snapshot"],
            reconcile=flags["reconcile"],
            evaluate=flags["evaluate"],
        )


def guarded_stage(on_job: JobObserver | None = None) -> Callable[..., Awaitable[Any]]:
    """A stage runner that logs an unexpected exception instead of raising it.

    `on_job(name, seconds)` is told how long each run took (the dashboard's job histogram).
    """

    async def run(name: str, job: Callable[[], Awaitable[Any]]) -> Any:
        started = time.perf_counter()
        try:
            return await job()
        except Exception:
            log.exception("Job %s failed; it runs again at its next interval", name)
            return None
        finally:
            if on_job is not None:
                on_job(name, time.perf_counter() - started)

    return run


def build_scheduler(
    loop: TradingLoop,
    schedule: ScheduleConfig,
    clock: Clock,
    *,
    on_job: JobObserver | None = None,
) -> AsyncIOScheduler:
    """Create the scheduler with the bot's jobs (not started)."""
    scheduler = AsyncIOScheduler(
        timezone=UTC,
        job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": 30},
    )
    runner = guarded_stage(on_job)
    cadence = Cadence(schedule, clock.monotonic)
    cycle = Cycle(loop, runner=runner)

    async def run_cycle() -> None:
        await cycle.run(cadence.due())

    async def heartbeat() -> None:
        await runner("heartbeat", loop.heartbeat)

    now = clock.now()
    jobs = [
        ("cycle", run_cycle, cadence.tick),
        ("heartbeat", heartbeat, schedule.heartbeat_seconds),
    ]
    for name, job, seconds in jobs:
        # Passing next_run_time=None would add the job paused, so only pass it to run now.
        extra: dict[str, Any] = {"next_run_time": now} if name == "cycle" else {}
        scheduler.add_job(
            job,
            IntervalTrigger(seconds=seconds, timezone=UTC),
            id=name,
            name=name,
            max_instances=1,
            coalesce=True,
            **extra,
        )
    return scheduler
