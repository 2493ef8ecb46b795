"""The base of the SQL repositories: a session factory and the engine behind it."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

Sessions = async_sessionmaker[AsyncSession]


def engine_of(sessions: Sessions) -> AsyncEngine:
    """Return the engine `sessions` is bound to."""
    bind = sessions.kw.get("bind")
    if not isinstance(bind, AsyncEngine):
        raise TypeError("the session factory must be bound to an AsyncEngine")
    return bind


class SqlRepository:
    """A repository over one session factory."""

    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions

    @property
    def _engine(self) -> AsyncEngine:
        """The engine, for hot paths that run core statements without an ORM session."""
        return engine_of(self._sessions)
