"""What every command needs: settings, the config file, the database URL, console output."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from bot.config import Config, load_config
from bot.database_url import resolve_database_url
from bot.logsetup import configure_logging
from bot.settings import Settings, load_settings

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

DEFAULT_CONFIG = Path("carrybot.toml")


@dataclass(frozen=True)
class Context:
    settings: Settings
    config: Config
    config_path: Path | None
    database_url: str


def config_path_from(option: Path | None, settings: Settings) -> Path | None:
    """--config wins, then CARRYBOT_CONFIG, then ./carrybot.toml if present, else defaults."""
    if option is not None:
        return option
    if settings.config_path is not None:
        return settings.config_path
    return DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None


def load_context(config_option: Path | None, database_option: str | None = None) -> Context:
    """Load settings and config, set up logging; raise UserError on bad input."""
    settings = load_settings(Path(os.environ.get("CARRYBOT_ENV_FILE", ".env")))
    configure_logging(settings.log_level, settings.log_format, settings.secret_values())
    path = config_path_from(config_option, settings)
    config = load_config(path)
    url = resolve_database_url(database_option, settings, lambda: config)
    return Context(settings, config, path, url)


def progress_bar() -> Progress:
    """A transient progress bar on stderr (so stdout stays clean for tables and JSON)."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    )
