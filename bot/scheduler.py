"""APScheduler 3 jobs of the bot: thin wrappers, each `max_instances=1, coalesce=True`."""

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

log = logging.getLogger(__name__)

FUNDING_CHECK_SECONDS = 15.0


JobObserver = Callable[[str, float], None]


def _guarded(
    name: str, job: Callable[[], Awaitable[Any]], on_job: JobObserver | None = None
) -> Callable[[], Awaitable[None]]:
    """Run a job so that an unexpected exception is logged and never stops the scheduler.

    `on_job(name, seconds)` is told how long each run took (the dashboard's job histogram).
    """

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
) -> AsyncIOScheduler:
    """Create the scheduler with the bot's jobs (not started)."""
    scheduler = AsyncIOScheduler(
        timezone=UTC,
        job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": 30},
    )
    now = clock.now()
    jobs: list[tuple[str, Callable[[], Awaitable[Any]], float, bool]] = [
        ("poll", loop.poll, schedule.poll_seconds, True),
        ("evaluate", loop.evaluate, schedule.evaluate_seconds, False),
        (
            "funding_capture",
            loop.capture_funding,
            min(FUNDING_CHECK_SECONDS, schedule.funding_capture_delay_seconds),
            False,
        ),
        ("reconcile", loop.reconcile, schedule.reconcile_seconds, False),
        ("balance_snapshot", loop.snapshot_balances, schedule.balance_snapshot_seconds, True),
        ("heartbeat", loop.heartbeat, schedule.heartbeat_seconds, False),
    ]
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
    return scheduler
