"""Fixtures for the bot-process tests: a fake Binance process and a migrated PostgreSQL ledger."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.e2e.bot_harness import BotEnv, fake_process, kill_leftovers
from tests.fakes.fixtures import FakeBinanceProcess
from tests.support.ledgers import upgrade


@pytest.fixture(autouse=True)
def no_bot_left_running() -> Iterator[None]:
    """After each test, no bot of its own still runs (see `kill_leftovers`)."""
    yield
    kill_leftovers()


@pytest.fixture
def fake_proc() -> Iterator[FakeBinanceProcess]:
    yield from fake_process(standard=True)


def make_env(
    fake: FakeBinanceProcess,
    tmp_path: Path,
    url: str,
    *,
    live: bool,
    mode: str = "auto",
    poll: float = 1.0,
) -> BotEnv:
    """A config for a bot against `fake` and its ledger at `url`, migrated.

    The ledger is migrated in this process with the function `carrybot db upgrade` runs,
    not by the command itself (a process start of its own per test); the command is the
    subject of test_cli_foundation.py and the other CLI tests."""
    env = BotEnv(fake, tmp_path, url, live)
    env.write_config(mode=mode, poll=poll)
    with ThreadPoolExecutor(1) as thread:  # its own event loop: callers may be in one
        thread.submit(asyncio.run, upgrade(url)).result()
    return env


@pytest.fixture(params=["live", "paper"])
def bot_env(
    request: pytest.FixtureRequest, fake_proc: FakeBinanceProcess, pg_url: str, tmp_path: Path
) -> BotEnv:
    """A bot against the fake on PostgreSQL, in live mode and in paper mode."""
    return make_env(fake_proc, tmp_path, pg_url, live=request.param == "live")
