"""Alembic, driven from code: upgrade, downgrade, and the "is the schema current" check."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

import migrations
from bot.errors import DatabaseBehindError

MIGRATIONS_DIR = Path(migrations.__file__).resolve().parent


def alembic_config() -> AlembicConfig:
    """Return an Alembic config pointing at the packaged `migrations/` directory."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def head_revision() -> str:
    """Return the newest migration revision in the code."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Migrate the database up to `revision` (sharing the engine's connection with Alembic)."""
    async with engine.begin() as conn:
        await conn.run_sync(_run, "upgrade", revision)


async def downgrade(engine: AsyncEngine, revision: str = "base") -> None:
    """Migrate the database down to `revision`."""
    async with engine.begin() as conn:
        await conn.run_sync(_run, "downgrade", revision)


async def current_revision(engine: AsyncEngine) -> str | None:
    """Return the database's revision, or None for an empty database."""
    async with engine.connect() as conn:
        return await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())


async def ensure_current(engine: AsyncEngine) -> None:
    """Raise DatabaseBehindError unless the schema is at the code's head revision."""
    current = await current_revision(engine)
    head = head_revision()
    if current != head:
        where = "empty" if current is None else f"at revision {current}"
        raise DatabaseBehindError(
            f"the database is {where} but this carrybot needs revision {head}: "
            "run `carrybot db upgrade` (same --config / DATABASE_URL) and start again"
        )


def _run(connection: Connection, action: str, revision: str) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    if action == "upgrade":
        command.upgrade(cfg, revision)
    else:
        command.downgrade(cfg, revision)
