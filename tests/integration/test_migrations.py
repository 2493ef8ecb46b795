"""Alembic owns the schema: upgrade to head and down to base on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect

from bot.errors import DatabaseBehindError
from bot.persistence import migrate
from bot.persistence.db import create_engine
from bot.persistence.models import Base

pytestmark = pytest.mark.postgres


async def table_names(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
    finally:
        await engine.dispose()


async def test_upgrade_creates_every_model_table_and_downgrade_removes_them(
    database_url: str,
) -> None:
    engine = create_engine(database_url)
    try:
        await migrate.upgrade(engine)
        assert await migrate.current_revision(engine) == migrate.head_revision()
        assert set(Base.metadata.tables) <= await table_names(database_url)

        await migrate.downgrade(engine, "base")

        assert await migrate.current_revision(engine) is None
        assert await table_names(database_url) <= {"alembic_version"}
    finally:
        await engine.dispose()


async def test_upgrade_is_idempotent(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        await migrate.upgrade(engine)
        await migrate.upgrade(engine)

        await migrate.ensure_current(engine)
    finally:
        await engine.dispose()


async def test_bot_refuses_a_database_that_is_behind_and_names_the_fix(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        with pytest.raises(DatabaseBehindError, match="run `carrybot db upgrade`"):
            await migrate.ensure_current(engine)
    finally:
        await engine.dispose()


async def test_models_match_the_migrations(database_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine = create_engine(database_url)
    try:
        await migrate.upgrade(engine)
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda c: compare_metadata(MigrationContext.configure(c), Base.metadata)
            )
    finally:
        await engine.dispose()

    assert diff == []
