"""Which ledger URL a command uses: `--database`, else `DATABASE_URL`, else `[database] url`.

The CLI (`bot.cli.common`) and Alembic's environment (`migrations/env.py`) both ask here, so
the precedence and the normalisation to an async driver are written once.
"""

from __future__ import annotations

from collections.abc import Callable

from bot.config import Config, normalise_database_url
from bot.errors import UserError
from bot.settings import Settings


def resolve_database_url(
    option: str | None, settings: Settings, config: Callable[[], Config]
) -> str:
    """Return the normalised ledger URL; raise UserError naming where a bad one came from.

    `config` is called only when neither the option nor `DATABASE_URL` gives a URL.
    """
    if option:
        url, source = option, "--database"
    elif settings.database_url:
        url, source = settings.database_url, "DATABASE_URL"
    else:
        url, source = config().database.url, "database.url"
    try:
        return normalise_database_url(url)
    except ValueError as exc:
        raise UserError(f"{source} = {url!r}: {exc}") from None
