"""Alembic environment: async engines; the URL comes from carrybot's settings and config.

From code (`carrybot db upgrade`) a connection is passed in `config.attributes`; from the
`alembic` command line the URL is `DATABASE_URL`, else `[database] url` of `CARRYBOT_CONFIG`.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from bot.persistence.models import Base

target_metadata = Base.metadata


def _url_from_settings() -> str:
    from bot.config import load_config
    from bot.database_url import resolve_database_url
    from bot.settings import load_settings

    settings = load_settings()
    return resolve_database_url(None, settings, lambda: load_config(settings.config_path))


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    from bot.persistence.db import create_engine

    engine = create_engine(_url_from_settings(), poolclass=NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(_configure)
        await connection.commit()
    await engine.dispose()


def run_migrations_offline() -> None:
    context.configure(
        url=_url_from_settings(),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        asyncio.run(_run_async())
    else:
        _configure(connection)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
