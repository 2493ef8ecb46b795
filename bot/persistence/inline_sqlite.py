"""An aiosqlite connection that runs each call in the caller's thread, for throwaway databases.

aiosqlite hands every call to a worker thread and waits for the answer: right for a bot that
must keep serving while the disk is slow, costly (hundreds of µs a call) for a backtest that
does nothing else while its local SQLite file answers in microseconds. This connection keeps
aiosqlite's interface (so SQLAlchemy's aiosqlite dialect drives it unchanged) but runs each
queued call at once; the awaited future is already done, so the event loop never waits.

Use it through `connect_args={"async_creator_fn": inline_connect}` (see `inline_sqlite_args`).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Generator
from typing import Any

import aiosqlite


class _RunNow:
    """Stands in for aiosqlite's queue to its worker thread: runs each item when put."""

    def put_nowait(self, item: tuple[asyncio.Future[Any] | None, Callable[[], Any]]) -> None:
        future, function = item
        try:
            result = function()
        except BaseException as exc:
            if future is not None and not future.done():
                future.set_exception(exc)
            return
        if future is not None and not future.done():
            future.set_result(result)


class InlineConnection(aiosqlite.Connection):
    """aiosqlite's connection without its thread: every call runs where it is awaited.

    SQLite's own busy wait would block the only thread, so the connection opens with no busy
    timeout and a statement that finds the database locked is retried after yielding to the
    event loop, where the holder of the lock (another task's session) gets to commit.
    """

    def __init__(self, connector: Callable[[], sqlite3.Connection], iter_chunk_size: int) -> None:
        super().__init__(connector, iter_chunk_size)
        self._tx = _RunNow()  # type: ignore[assignment]

    def __await__(self) -> Generator[Any, None, aiosqlite.Connection]:
        return self._connect().__await__()  # no worker thread to start

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not self._running or not self._connection:
            raise ValueError("Connection closed")
        waited = 0.0
        attempt = 0
        while True:
            try:
                return fn(*args, **kwargs)
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or waited >= BUSY_TIMEOUT_SECONDS:
                    raise
            attempt += 1
            delay = 0.0 if attempt <= _SPINS else _BUSY_SLEEP_SECONDS
            waited += delay
            await asyncio.sleep(delay)


BUSY_TIMEOUT_SECONDS = 30.0
_SPINS = 1000  # yields before sleeping: the lock holder usually commits on the next turn
_BUSY_SLEEP_SECONDS = 0.001


def inline_connect(database: str, **kwargs: Any) -> InlineConnection:
    """Return an (unopened) inline connection to `database`, like `aiosqlite.connect`."""
    kwargs.pop("iter_chunk_size", None)
    kwargs["timeout"] = 0  # locked: retried by `_execute`, never waited for in this thread
    return InlineConnection(lambda: sqlite3.connect(database, **kwargs), 64)


def inline_sqlite_args() -> dict[str, Any]:
    """Return the `connect_args` that make SQLAlchemy's aiosqlite dialect use this module."""
    return {"async_creator_fn": inline_connect}
