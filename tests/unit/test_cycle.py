"""The one cycle: `run --once` and the backtest run its stages in one order.

The loop here is a stand-in that records which job ran (the `Cycle` and its callers are
under test, not the jobs).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

from bot.app import run_once
from bot.backtest.engine import BacktestSpec, CycleStepper
from bot.clock import SimulatedClock
from bot.config import config_from_dict
from bot.trading import TradingLoop
from bot.trading.cycle import STAGES, Cycle, Due

T0 = datetime(2024, 1, 1, tzinfo=UTC)


class RecordingLoop:
    """Stands in for `TradingLoop`: each job appends its stage name and returns a value."""

    def __init__(self, clock: SimulatedClock, *, failing: str | None = None) -> None:
        self.clock = clock
        self.ran: list[str] = []
        self.forced: list[bool] = []
        self._failing = failing
        self.stop_after: str | None = None
        """Stand in for a graceful stop that begins while this stage runs."""
        self.stopping = False

    def is_stopping(self) -> bool:
        return self.stopping

    def _run(self, name: str) -> None:
        self.ran.append(name)
        if name == self.stop_after:
            self.stopping = True
        if name == self._failing:
            raise RuntimeError(f"{name} broke")

    async def poll(self) -> None:
        self._run("poll")

    async def capture_funding(self, *, force: bool = False) -> int:
        self._run("funding_capture")
        self.forced.append(force)
        return 0

    async def snapshot_balances(self) -> Decimal:
        self._run("balance_snapshot")
        return Decimal(1000)

    async def reconcile(self) -> None:
        self._run("reconcile")

    async def evaluate(self) -> list[Any]:
        self._run("evaluate")
        return []

    async def heartbeat(self) -> str:
        self._run("heartbeat")
        return "beat"


def _loop(stand_in: RecordingLoop) -> TradingLoop:
    return cast(TradingLoop, stand_in)


async def test_cycle_with_every_stage_due_runs_them_in_the_one_order() -> None:
    stand_in = RecordingLoop(SimulatedClock(T0))
    result = await Cycle(_loop(stand_in)).run(Due(reconcile=True))

    assert stand_in.ran == list(STAGES)
    assert result.stages == list(STAGES)
    assert result.equity == Decimal(1000)


async def test_cycle_skips_what_is_not_due_but_always_captures_funding() -> None:
    stand_in = RecordingLoop(SimulatedClock(T0))
    await Cycle(_loop(stand_in)).run(Due(poll=False, snapshot=False, evaluate=False))

    assert stand_in.ran == ["funding_capture"]
    assert stand_in.forced == [False]


async def test_cycle_runs_its_hook_between_funding_capture_and_snapshot() -> None:
    stand_in = RecordingLoop(SimulatedClock(T0))

    async def hook() -> None:
        stand_in.ran.append("hook")

    await Cycle(_loop(stand_in), before_snapshot=hook).run()

    assert stand_in.ran == ["poll", "funding_capture", "hook", "balance_snapshot", "evaluate"]


async def test_run_once_is_one_full_cycle_with_funding_forced_then_the_heartbeat() -> None:
    stand_in = RecordingLoop(SimulatedClock(T0))
    await run_once(_loop(stand_in))

    assert stand_in.ran == ["poll", "funding_capture", "balance_snapshot", "evaluate", "heartbeat"]
    assert stand_in.forced == [True]


async def test_backtest_step_runs_the_cycle_in_its_order_with_its_own_intervals() -> None:
    clock = SimulatedClock(T0)
    stand_in = RecordingLoop(clock)
    spec = BacktestSpec(
        config=config_from_dict({}),
        data_dir=Path("."),
        database_url="sqlite+aiosqlite://",
        snapshot_every=timedelta(hours=8),
        reconcile_every=timedelta(hours=24),
    )
    equity: list[Any] = []
    stepper = CycleStepper(_loop(stand_in), spec, equity, {})

    await stepper.step()
    first = list(stand_in.ran)
    stand_in.ran.clear()
    clock.set(T0 + timedelta(hours=1))
    await stepper.step()

    assert first == list(STAGES)  # the first step: snapshot and reconciliation due
    assert stand_in.ran == ["poll", "funding_capture", "evaluate"]
    assert [p.equity for p in equity] == [Decimal(1000)]
