"""Fixtures: the synthetic history on disk, loaded, and a replay source on a simulated clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.backtest import History, ReplaySource, load_history
from bot.clock import SimulatedClock
from tests.unit.backtest.synth import T0, make_history_dir


@pytest.fixture
def history_dir(tmp_path: Path) -> Path:
    return make_history_dir(tmp_path / "data")


@pytest.fixture
def history(history_dir: Path) -> History:
    return load_history(history_dir)


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock(T0)


@pytest.fixture
def source(history: History, clock: SimulatedClock) -> ReplaySource:
    return ReplaySource(history, clock)
