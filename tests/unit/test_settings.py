"""Process settings come from the environment and .env; the environment wins."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import UserError
from bot.settings import Mode, load_settings


def test_dotenv_fills_in_and_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = tmp_path / ".env"
    env.write_text("CARRYBOT_MODE=live\nBINANCE_API_KEY=from-dotenv-key\nLOG_FORMAT=json\n")
    monkeypatch.setenv("LOG_FORMAT", "text")
    for name in ("CARRYBOT_MODE", "BINANCE_API_KEY", "BINANCE_API_SECRET", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)

    settings = load_settings(env)

    assert settings.mode is Mode.LIVE
    assert settings.binance_api_key is not None
    assert settings.binance_api_key.get_secret_value() == "from-dotenv-key"
    assert settings.log_format == "text"
    assert "from-dotenv-key" not in repr(settings)


def test_blank_keys_count_as_unset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BINANCE_API_KEY", "")
    monkeypatch.setenv("BINANCE_API_SECRET", "  ")

    settings = load_settings(None)

    assert not settings.has_api_keys


def test_bad_mode_is_a_one_line_user_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARRYBOT_MODE", "yolo")

    with pytest.raises(UserError) as info:
        load_settings(None)

    assert info.value.problems[0].startswith("CARRYBOT_MODE='yolo'")
