"""`carrybot adopt [--hedge ID] [--close]`: the way out of a drift found at start-up.

The request is recorded in the ledger (an `adopt.requested` event); the next `carrybot run`
applies it during start-up reconciliation, before any trading.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from bot.adopt import request_adopt
from bot.cli.common import console, load_context
from bot.clock import SystemClock
from bot.persistence import migrate
from bot.persistence.db import create_engine, session_factory
from bot.persistence.repositories import CycleReads, Ledger
from bot.persistence.startup_checks import database_errors

ConfigOption = Annotated[Path | None, typer.Option("--config", "-c", help="TOML config file.")]
DatabaseOption = Annotated[str | None, typer.Option("--database", help="Database URL.")]


def register(app: typer.Typer) -> None:
    @app.command("adopt")
    def adopt(
        hedge: Annotated[
            int | None, typer.Option("--hedge", help="Hedge id (default: every drifted hedge).")
        ] = None,
        close: Annotated[
            bool,
            typer.Option("--close", help="Close what is there instead of trading on with it."),
        ] = False,
        config: ConfigOption = None,
        database: DatabaseOption = None,
    ) -> None:
        """After a drift: re-base the hedge on the exchange's quantities at the next start
        (or, with --close, close what is there leg by leg, never opening)."""
        ctx = load_context(config, database)

        async def go() -> str:
            engine = create_engine(ctx.database_url)
            try:
                with database_errors(ctx.database_url):
                    await migrate.ensure_current(engine)
                    ledger = Ledger(session_factory(engine), CycleReads())
                    return await request_adopt(ledger, hedge, close=close, at=SystemClock().now())
            finally:
                await engine.dispose()

        message = asyncio.run(go())
        console.print(f"{message} (`carrybot run`)", markup=False)
