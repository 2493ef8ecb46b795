"""Process settings from the environment and `.env` (read with python-dotenv)."""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Literal

from dotenv import dotenv_values
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.errors import UserError


class Mode(StrEnum):
    PAPER = "paper"
    LIVE = "live"


class Settings(BaseSettings):
    """Everything that differs between deployments and must never be in the TOML: keys, URLs."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    mode: Mode = Field(default=Mode.PAPER, validation_alias="CARRYBOT_MODE")
    database_url: str | None = Field(default=None, validation_alias="DATABASE_URL")
    binance_api_key: SecretStr | None = Field(default=None, validation_alias="BINANCE_API_KEY")
    binance_api_secret: SecretStr | None = Field(
        default=None, validation_alias="BINANCE_API_SECRET"
    )
    bitstamp_api_key: SecretStr | None = Field(default=None, validation_alias="BITSTAMP_API_KEY")
    bitstamp_api_secret: SecretStr | None = Field(
        default=None, validation_alias="BITSTAMP_API_SECRET"
    )
    config_path: Path | None = Field(default=None, validation_alias="CARRYBOT_CONFIG")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", validation_alias="LOG_LEVEL"
    )
    log_format: Literal["text", "json"] = Field(default="text", validation_alias="LOG_FORMAT")
    web_token: SecretStr | None = Field(default=None, validation_alias="CARRYBOT_WEB_TOKEN")
    telegram_bot_token: SecretStr | None = Field(
        default=None, validation_alias="TELEGRAM_BOT_TOKEN"
    )
    telegram_chat_id: str | None = Field(default=None, validation_alias="TELEGRAM_CHAT_ID")
    alert_webhook_url: SecretStr | None = Field(
        default=None, validation_alias="CARRYBOT_ALERT_WEBHOOK_URL"
    )

    @field_validator("mode", "log_level", "log_format", mode="before")
    @classmethod
    def _normalise_case(cls, value: object) -> object:
        if isinstance(value, str):
            return (
                value.upper()
                if value.upper() in {"DEBUG", "INFO", "WARNING", "ERROR"}
                else (value.lower())
            )
        return value

    @field_validator(
        "binance_api_key",
        "binance_api_secret",
        "bitstamp_api_key",
        "bitstamp_api_secret",
        "database_url",
        "web_token",
        "telegram_bot_token",
        "telegram_chat_id",
        "alert_webhook_url",
        mode="before",
    )
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @property
    def has_api_keys(self) -> bool:
        return self.binance_api_key is not None and self.binance_api_secret is not None

    def secret_values(self) -> list[str]:
        """Return the secret strings, for log redaction."""
        return [
            s.get_secret_value()
            for s in (
                self.binance_api_key,
                self.binance_api_secret,
                self.bitstamp_api_key,
                self.bitstamp_api_secret,
                self.web_token,
                self.telegram_bot_token,
                self.alert_webhook_url,
            )
            if s is not None and s.get_secret_value()
        ]


def require_venue_keys(settings: Settings, spot_venue: str) -> None:
    """Raise UserError naming the missing keys when live mode trades spot on `spot_venue`."""
    if spot_venue != "bitstamp":
        return
    missing = [
        name
        for name, value in (
            ("BITSTAMP_API_KEY", settings.bitstamp_api_key),
            ("BITSTAMP_API_SECRET", settings.bitstamp_api_secret),
        )
        if value is None
    ]
    if missing:
        raise UserError(
            f"venues.spot = 'bitstamp' in live mode needs {' and '.join(missing)} in the "
            "environment or .env; set them, or run paper mode"
        )


def load_settings(env_file: Path | None = Path(".env")) -> Settings:
    """Read settings from the process environment, with `.env` filling in what is unset.

    The environment wins over `.env`, as python-dotenv's `load_dotenv(override=False)` does.
    """
    values: dict[str, str] = {}
    if env_file is not None and env_file.is_file():
        values.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    values.update(os.environ)
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = str(err["loc"][0]) if err["loc"] else "environment"
            problems.append(f"{name}={err.get('input')!r}: {err['msg']}")
        raise UserError(problems) from None


def resolve_mode(settings: Settings, live_flag: bool) -> Mode:
    """Decide paper or live. Live needs the explicit flag (or CARRYBOT_MODE=live) and both keys."""
    wants_live = live_flag or settings.mode is Mode.LIVE
    if not wants_live:
        return Mode.PAPER
    if not settings.has_api_keys:
        missing = [
            name
            for name, value in (
                ("BINANCE_API_KEY", settings.binance_api_key),
                ("BINANCE_API_SECRET", settings.binance_api_secret),
            )
            if value is None
        ]
        raise UserError(
            f"live mode needs {' and '.join(missing)} in the environment or .env; "
            "set them, or run paper mode (drop --live and CARRYBOT_MODE=live)"
        )
    return Mode.LIVE
