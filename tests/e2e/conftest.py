"""Fixtures for the bot-process tests: a fake Binance process and a migrated PostgreSQL ledger."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.bot_harness import BotEnv, fake_process
from tests.fakes.fixtures import FakeBinanceProcess


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
    env = BotEnv(fake, tmp_path, url, live)
    env.write_config(mode=mode, poll=poll)
    upgraded = env.cli("db", "upgrade")
    assert upgraded.code == 0, upgraded.stderr
    return env


@pytest.fixture(params=["live", "paper"])
def bot_env(
    request: pytest.FixtureRequest, fake_proc: FakeBinanceProcess, pg_url: str, tmp_path: Path
) -> BotEnv:
    """A bot against the fake on PostgreSQL, in live mode and in paper mode."""
    return make_env(fake_proc, tmp_path, pg_url, live=request.param == "live")
