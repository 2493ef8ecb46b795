"""`carrybot db upgrade | downgrade | current`."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from bot.cli.common import console, load_context
from bot.config import redact_url
from bot.persistence import migrate
from bot.persistence.db import create_engine
from bot.persistence.startup_checks import database_errors

app = typer.Typer(help="Migrate and inspect the ledger database.", no_args_is_help=True)

ConfigOption = Annotated[Path | None, typer.Option("--config", "-c", help="TOML config file.")]
DatabaseOption = Annotated[
    str | None,
    typer.Option("--database", help="Database URL (default: DATABASE_URL, then [database] url)."),
]


@app.command("upgrade")
def upgrade(
    config: ConfigOption = None,
    database: DatabaseOption = None,
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Migrate the database up to the newest schema (safe to run every start)."""
    ctx = load_context(config, database)

    async def go() -> str | None:
        engine = create_engine(ctx.database_url)
        try:
            with database_errors(ctx.database_url):
                await migrate.upgrade(engine, revision)
                return await migrate.current_revision(engine)
        finally:
            await engine.dispose()

    current = asyncio.run(go())
    console.print(f"database {redact_url(ctx.database_url)} is at revision {current}")


@app.command("downgrade")
def downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision, e.g. base or -1.")],
    config: ConfigOption = None,
    database: DatabaseOption = None,
) -> None:
    """Migrate the database down to REVISION (base removes every table)."""
    ctx = load_context(config, database)

    async def go() -> str | None:
        engine = create_engine(ctx.database_url)
        try:
            with database_errors(ctx.database_url):
                await migrate.downgrade(engine, revision)
                return await migrate.current_revision(engine)
        finally:
            await engine.dispose()

    current = asyncio.run(go())
    console.print(f"database {redact_url(ctx.database_url)} is at revision {current or 'base'}")


@app.command("current")
def current(config: ConfigOption = None, database: DatabaseOption = None) -> None:
    """Print the database's revision and the code's newest revision."""
    ctx = load_context(config, database)

    async def go() -> str | None:
        engine = create_engine(ctx.database_url)
        try:
            with database_errors(ctx.database_url, write=False):
                return await migrate.current_revision(engine)
        finally:
            await engine.dispose()

    rev = asyncio.run(go())
    head = migrate.head_revision()
    state = "up to date" if rev == head else "behind: run `carrybot db upgrade`"
    console.print(f"database revision {rev or 'base (empty)'}; code head {head}; {state}")
