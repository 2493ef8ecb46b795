"""The live scheduler: APScheduler runs the one `Cycle` (stages when due) and the heartbeat.

The loop is the stand-in of `test_cycle.py`, which records the stages that ran: the
scheduler's timing and the cycle's order are under test, not the jobs.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from bot.clock import SimulatedClock
from bot.config import ScheduleConfig
from bot.scheduler import CycleTimer, build_scheduler
from bot.trading.cycle import Due
from tests.unit.test_cycle import RecordingLoop, _loop

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _due_at(timer: CycleTimer, clock: SimulatedClock, seconds: list[float]) -> list[Due]:
    out = []
    for at in seconds:
        clock.set(T0 + timedelta(seconds=at))
        out.append(timer.due())
    return out


def test_the_first_cycle_polls_and_snapshots_then_evaluates_and_reconciles_later() -> None:
    clock = SimulatedClock(T0)
    timer = CycleTimer(ScheduleConfig(), clock)

    first, tick, at_300 = _due_at(timer, clock, [0, 10, 300])

    assert timer.tick == 10  # the defaults: poll and evaluate every 10 s
    assert first == Due(poll=True, snapshot=True, reconcile=False, evaluate=False)
    assert tick == Due(poll=True, snapshot=False, reconcile=False, evaluate=True)
    assert at_300 == Due(poll=True, snapshot=True, reconcile=True, evaluate=True)


def test_a_tick_a_little_early_still_runs_what_is_due_then() -> None:
    clock = SimulatedClock(T0)
    timer = CycleTimer(ScheduleConfig(), clock)

    dues = _due_at(timer, clock, [0, 9.99, 19.98, 299.9])

    assert [d.poll for d in dues] == [True, True, True, True]
    assert [d.evaluate for d in dues] == [False, True, True, True]
    assert dues[-1].snapshot and dues[-1].reconcile


def test_each_stage_keeps_its_own_interval_rounded_up_to_the_tick() -> None:
    clock = SimulatedClock(T0)
    schedule = ScheduleConfig(poll_seconds=10, evaluate_seconds=25, balance_snapshot_seconds=60)
    timer = CycleTimer(schedule, clock)

    dues = _due_at(timer, clock, [0, 10, 20, 30, 40, 50, 60])

    assert [d.evaluate for d in dues] == [False, False, False, True, False, False, True]
    assert [d.snapshot for d in dues] == [True, False, False, False, False, False, True]
    assert all(d.poll for d in dues)


async def test_the_cycle_job_runs_the_due_stages_in_order_and_a_failing_stage_does_not_stop_it() -> (
    None
):
    clock = SimulatedClock(T0)
    stand_in = RecordingLoop(clock, failing="balance_snapshot")
    timed: list[str] = []

    def on_job(name: str, seconds: float) -> None:
        timed.append(name)

    bot = build_scheduler(_loop(stand_in), ScheduleConfig(), clock, on_job=on_job)
    jobs: dict[str, Any] = {job.id: job for job in bot.scheduler.get_jobs()}
    clock.advance(timedelta(seconds=300))
    await jobs["cycle"].func()
    stand_in.ran.clear()
    clock.advance(timedelta(seconds=10))
    await jobs["cycle"].func()

    assert set(jobs) == {"cycle", "heartbeat"}
    assert all(j.max_instances == 1 and j.coalesce for j in jobs.values())
    assert stand_in.ran == ["poll", "funding_capture", "evaluate"]
    assert timed[:7] == [
        "poll",
        "funding_capture",
        "balance_snapshot",  # raised: logged, and the cycle went on
        "reconcile",
        "evaluate",
        "cycle",
        "poll",
    ]


async def test_a_stop_during_a_stage_lets_it_end_and_starts_no_further_stage() -> None:
    clock = SimulatedClock(T0)
    stand_in = RecordingLoop(clock)
    stand_in.stop_after = "poll"
    bot = build_scheduler(_loop(stand_in), ScheduleConfig(), clock)

    await bot.cycle()

    assert stand_in.ran == ["poll"]
