"""Options and parsing shared by `carrybot backtest` and `carrybot sweep`."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from bot.config import normalise_database_url
from bot.errors import UserError

ConfigOption = Annotated[Path | None, typer.Option("--config", "-c", help="TOML config file.")]
DataOption = Annotated[
    Path,
    typer.Option("--data", help="History directory holding binance/{funding,mark,perp,spot}."),
]
FromOption = Annotated[
    str | None, typer.Option("--from", help="First event time, YYYY-MM-DD or ISO 8601 (UTC).")
]
ToOption = Annotated[
    str | None, typer.Option("--to", help="Last event time (included), YYYY-MM-DD or ISO 8601.")
]
OutOption = Annotated[
    Path | None, typer.Option("--out", help="Output directory (default out/backtest-<hash>).")
]
DatabaseOption = Annotated[
    str | None,
    typer.Option("--database", help="Ledger URL (default: a fresh ledger.db in the output)."),
]


def quiet_bot_logs() -> None:
    """Keep per-cycle INFO lines (hedges, funding) out of the console during a replay."""
    for name in ("bot", "strategies"):
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.WARNING:
            logger.setLevel(logging.WARNING)


def parse_when(text: str | None, option: str) -> datetime | None:
    """Parse a date or an ISO 8601 time; naive values are UTC."""
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UserError(
            f"{option} {text!r}: expected YYYY-MM-DD or an ISO 8601 time like 2021-01-01T08:00"
        ) from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def database_url(url: str) -> str:
    try:
        return normalise_database_url(url)
    except ValueError as exc:
        raise UserError(f"--database {url!r}: {exc}") from None
