"""Database problems at start-up as one `error:` line naming the URL and the fix.

A ledger in a directory that does not exist, a read-only ledger file, an unreachable
PostgreSQL server, a database or role that does not exist: each is the user's to fix, so each
becomes a `UserError` (exit 2, no traceback) before any order can be sent. Outages after
start-up are not handled here: the outage guard rides them out.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.engine import make_url

from bot.config import redact_url
from bot.errors import UserError

WHERE = "set DATABASE_URL or [database] url"


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (None for PostgreSQL and in-memory SQLite)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database or ""
    if database.startswith("file:"):  # a URI filename: `sqlite:///file:PATH?mode=ro&uri=true`
        database = database.removeprefix("file:")
    if not database or database.startswith(":memory:"):
        return None
    return Path(database)


def check_sqlite_file(url: str, *, write: bool = True) -> None:
    """Refuse a SQLite ledger whose directory is missing or which cannot be written."""
    path = sqlite_path(url)
    if path is None:
        return
    shown = redact_url(url)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise UserError(
            f"database {shown}: the directory {str(folder)!r} does not exist: create it "
            f"(mkdir -p {folder}) or {WHERE} to a file in an existing directory"
        )
    if not write:
        return
    if path.exists() and not os.access(path, os.W_OK):
        raise UserError(_read_only(shown, path))
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserError(
            f"database {shown}: the directory {str(folder)!r} is not writable (SQLite writes "
            f"its journal and the instance lock beside the file): make it writable or {WHERE}"
        )


def _read_only(shown: str, path: Path) -> str:
    return (
        f"database {shown}: the ledger file is read-only: make it writable "
        f"(chmod u+w {path}) or {WHERE} to a ledger the bot may write"
    )


def explain(url: str, exc: BaseException) -> str | None:
    """One line for a database error the user must fix, or None for anything else."""
    shown = redact_url(url)
    parsed = make_url(url)
    chain = _chain(exc)
    names = {type(e).__name__ for e in chain}
    text = " ".join(str(e) for e in chain).lower()
    if parsed.get_backend_name() == "sqlite":
        path = sqlite_path(url)
        if "readonly database" in text or "read-only" in text:
            return _read_only(shown, path or Path(parsed.database or "?"))
        if "unable to open database file" in text:
            return (
                f"database {shown}: SQLite cannot open the file: check that its directory "
                f"exists and is writable, or {WHERE}"
            )
        return None
    where = f"{parsed.host or 'localhost'}:{parsed.port or 5432}"
    if "InvalidCatalogNameError" in names:
        return (
            f"database {shown}: PostgreSQL at {where} has no database {parsed.database!r}: "
            f"create it (createdb -h {parsed.host or 'localhost'} -p {parsed.port or 5432} "
            f"-U {parsed.username or 'postgres'} {parsed.database}), run `carrybot db upgrade`, "
            "and start again"
        )
    if names & {"InvalidAuthorizationSpecificationError", "InvalidPasswordError"}:
        return (
            f"database {shown}: PostgreSQL at {where} refused user {parsed.username!r} "
            f"({_first_line(chain)}): fix the user or password in the URL ({WHERE})"
        )
    if any(isinstance(e, socket.gaierror) for e in chain):
        return (
            f"database {shown}: the host {parsed.host!r} is unknown: fix the host in the URL "
            f"({WHERE})"
        )
    if any(isinstance(e, OSError | TimeoutError) for e in chain) or names & {
        "CannotConnectNowError",
        "ConnectionDoesNotExistError",
    }:
        return (
            f"database {shown}: cannot reach PostgreSQL at {where} ({_first_line(chain)}): "
            f"start the server or fix host and port in the URL ({WHERE})"
        )
    return None


@contextmanager
def database_errors(url: str, *, write: bool = True) -> Iterator[None]:
    """Check a SQLite file up front, then turn user-fixable database errors into UserError."""
    check_sqlite_file(url, write=write)
    try:
        yield
    except UserError:
        raise
    except Exception as exc:
        problem = explain(url, exc)
        if problem is None:
            raise
        raise UserError(problem) from None


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _first_line(chain: list[BaseException]) -> str:
    deepest = chain[-1]
    message = str(deepest).splitlines()[0] if str(deepest) else type(deepest).__name__
    return message


__all__ = ["check_sqlite_file", "database_errors", "explain", "sqlite_path"]
