"""One precedence for the ledger URL: `--database`, then `DATABASE_URL`, then `[database] url`."""

from __future__ import annotations

import pytest

from bot.config import Config, config_from_dict
from bot.database_url import resolve_database_url
from bot.errors import UserError
from bot.settings import Settings

CONFIG = config_from_dict({"database": {"url": "sqlite:///from-config.db"}}, source="test")


def _never() -> Config:
    raise AssertionError("the config is not read when the option or DATABASE_URL gives a URL")


def test_the_option_wins_over_the_environment_and_the_config() -> None:
    settings = Settings(DATABASE_URL="sqlite:///env.db")
    url = resolve_database_url("postgres://u@h/db", settings, _never)
    assert url == "postgresql+asyncpg://u@h/db"


def test_database_url_wins_over_the_config_which_is_then_not_read() -> None:
    url = resolve_database_url(None, Settings(DATABASE_URL="sqlite:///env.db"), _never)
    assert url == "sqlite+aiosqlite:///env.db"


def test_the_config_gives_the_url_when_nothing_else_does() -> None:
    url = resolve_database_url(None, Settings(DATABASE_URL=None), lambda: CONFIG)
    assert url == "sqlite+aiosqlite:///from-config.db"


def test_a_bad_url_names_where_it_came_from() -> None:
    with pytest.raises(UserError, match=r"^DATABASE_URL = 'mysql://x': must be"):
        resolve_database_url(None, Settings(DATABASE_URL="mysql://x"), _never)
    with pytest.raises(UserError, match=r"^--database = 'nope': must be"):
        resolve_database_url("nope", Settings(), _never)
