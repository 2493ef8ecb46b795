"""A graceful stop while a heartbeat is mid-way through a database write (`carrybot run`'s
`_serve` on the real APScheduler and a real ledger database).

The heartbeat's session is held open on an event, so the stop always lands while the write
is in flight: it must finish (or, past the grace, be cancelled and unwound) before the
engine is disposed, and nothing is logged at ERROR.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import cast

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool

from bot import app
from bot.clock import SimulatedClock
from bot.config import Config
from bot.persistence.repositories import Ledger
from bot.streams.status import StreamStateStore
from bot.trading import TradingLoop
from tests.unit.test_cycle import RecordingLoop


def _clock() -> SimulatedClock:
    # APScheduler's triggers run on the wall clock: a cycle started at a simulated time long
    # past would make it count every missed interval since then.
    return SimulatedClock(datetime.now(UTC))


class SlowHeartbeatLoop(RecordingLoop):
    """The cycle's stand-in, with a heartbeat whose database write waits on `release`."""

    def __init__(self, clock: SimulatedClock, ledger: Ledger) -> None:
        super().__init__(clock)
        self.state = SimpleNamespace(stopping=False)
        self.lock = asyncio.Lock()
        self.ledger = ledger
        self.writing = asyncio.Event()
        self.release = asyncio.Event()
        self.beats = 0

    def is_stopping(self) -> bool:
        return bool(self.state.stopping)

    async def heartbeat(self) -> str:
        async with self.ledger.sessions() as s, s.begin():
            await s.execute(text("SELECT 1"))  # the session now holds a connection
            self.writing.set()
            await self.release.wait()
        await StreamStateStore(self.ledger.sessions).replace([])
        self.beats += 1
        return "beat"


class ReleaseWhenWaited(logging.Handler):
    """Let the held write go once the stop says it waits for the running jobs."""

    def __init__(self, release: asyncio.Event) -> None:
        super().__init__()
        self._release = release

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("Waiting for the running job(s)"):
            self._release.set()


async def _stop_during_heartbeat(stand_in: SlowHeartbeatLoop) -> str:
    """Serve until the heartbeat's write is in flight, then stop as SIGTERM does."""
    stop = asyncio.Event()
    config = Config.model_validate({"schedule": {"heartbeat_seconds": 0.05}})
    serving = asyncio.create_task(
        app._serve(cast(TradingLoop, stand_in), config, stand_in.clock, stop, None)
    )
    await asyncio.wait_for(stand_in.writing.wait(), timeout=10)
    stop.set()
    return await asyncio.wait_for(serving, timeout=30)


def _checked_out(engine: AsyncEngine) -> int:
    """Connections of the engine still in use."""
    pool = engine.pool
    assert isinstance(pool, QueuePool)
    return pool.checkedout()


def _errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_stop_waits_for_the_heartbeat_write_in_flight_and_logs_no_error(
    ledger: Ledger, engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    # The stop's INFO lines drive the test: an in-process sweep earlier in this worker sets
    # the `bot` logger to WARNING (bot/backtest/sweep.py), which would silence them.
    caplog.set_level(logging.INFO, logger="bot")
    stand_in = SlowHeartbeatLoop(_clock(), ledger)
    handler = ReleaseWhenWaited(stand_in.release)
    logging.getLogger("bot.scheduler").addHandler(handler)
    try:
        reason = await _stop_during_heartbeat(stand_in)
    finally:
        logging.getLogger("bot.scheduler").removeHandler(handler)

    in_use = _checked_out(engine)
    await engine.dispose()  # as `carrybot run` does after the stop

    assert reason == "signal"
    assert in_use == 0  # nothing was left using the engine
    assert stand_in.beats == 1  # the write finished, it was not cancelled
    assert _errors(caplog) == []
    assert not any("cancelled" in r.getMessage() for r in caplog.records)


async def test_a_heartbeat_write_stuck_past_the_grace_is_cancelled_cleanly(
    ledger: Ledger,
    engine: AsyncEngine,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.INFO)
    # The stop's INFO lines drive the test: an in-process sweep earlier in this worker sets
    # the `bot` logger to WARNING (bot/backtest/sweep.py), which would silence them.
    caplog.set_level(logging.INFO, logger="bot")
    monkeypatch.setattr(app, "JOB_STOP_SECONDS", 0.2)
    stand_in = SlowHeartbeatLoop(_clock(), ledger)  # `release` is never set

    reason = await _stop_during_heartbeat(stand_in)

    in_use = _checked_out(engine)
    await engine.dispose()

    assert reason == "signal"
    assert in_use == 0  # the cancelled session was closed before the engine goes
    assert stand_in.beats == 0
    assert _errors(caplog) == []
    messages = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "bot.scheduler"]
    assert (logging.INFO, "Job heartbeat cancelled at stop") in messages
    assert (logging.WARNING, "Job(s) heartbeat still running 0s after the stop; cancelled") in (
        messages
    )
