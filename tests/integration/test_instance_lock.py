"""The instance lock on real PostgreSQL and SQLite: refusal, loss of its connection, re-taking."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import asyncpg
import pytest

from bot.persistence.instance_lock import (
    PG_LOCK_CLASS,
    PG_LOCK_ID,
    InstanceLocked,
    LockKeeper,
    instance_lock_for,
)
from tests import kit


def _asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def _terminate_lock_sessions(url: str) -> None:
    conn = await asyncpg.connect(_asyncpg_dsn(url))
    try:
        await conn.execute(
            # This test's database only: advisory locks of every database share pg_locks,
            # and another xdist worker's lock tests (or bots) hold the same key on theirs.
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
            "AND classid = $1 AND objid = $2 "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            PG_LOCK_CLASS,
            PG_LOCK_ID,
        )
    finally:
        await conn.close()


@pytest.mark.postgres
async def test_postgres_lock_refuses_a_second_holder_then_a_lost_session_is_retaken(
    pg_url: str,
) -> None:
    first, second = instance_lock_for(pg_url), instance_lock_for(pg_url)
    await first.acquire()
    try:
        with pytest.raises(InstanceLocked) as refused:
            await second.acquire()
        assert refused.value.holder.pid == os.getpid()
        assert refused.value.holder.host == socket.gethostname()
        assert refused.value.holder.since is not None

        await _terminate_lock_sessions(pg_url)  # e.g. the server restarted

        assert await first.ensure() is True  # re-taken on a new session
        with pytest.raises(InstanceLocked):
            await second.acquire()
    finally:
        await first.release()
        await second.release()


@pytest.mark.postgres
async def test_postgres_lock_taken_by_another_during_an_outage_stops_the_keeper(
    pg_url: str,
) -> None:
    first, other = instance_lock_for(pg_url), instance_lock_for(pg_url)
    lost: list[bool] = []
    keeper = LockKeeper(first, on_lost=lambda: lost.append(True))
    await first.acquire()
    other_conn = await asyncpg.connect(
        _asyncpg_dsn(pg_url), server_settings={"application_name": "carrybot pid=1 host=elsewhere"}
    )
    try:
        await _terminate_lock_sessions(pg_url)
        assert await other_conn.fetchval(
            "SELECT pg_try_advisory_lock($1, $2)", PG_LOCK_CLASS, PG_LOCK_ID
        )

        assert await keeper.ensure() is False
        assert lost == [True]
        assert await keeper.ensure() is False  # stays lost: the bot stops
    finally:
        await other_conn.close()
        await first.release()
        await other.release()


@pytest.mark.postgres
async def test_a_stale_session_of_this_lock_is_ended_not_reported(pg_url: str) -> None:
    lock = instance_lock_for(pg_url)
    await lock.acquire()
    # The network dropped under the session without a word: the server still holds it.
    orphan, lock._conn = lock._conn, None  # type: ignore[attr-defined]
    try:
        assert await lock.ensure() is True

        with pytest.raises(InstanceLocked):
            await instance_lock_for(pg_url).acquire()
    finally:
        await lock.release()
        await orphan.close()


async def test_sqlite_lock_file_names_the_holder_and_is_free_after_release(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}"
    first = instance_lock_for(url, now=lambda: kit.T0)
    await first.acquire()
    lock_file = tmp_path / "ledger.db.lock"
    try:
        with pytest.raises(InstanceLocked) as refused:
            await instance_lock_for(url).acquire()
        assert refused.value.holder.pid == os.getpid()
        assert refused.value.holder.since == kit.T0
        assert f"pid {os.getpid()}" in str(refused.value)
        assert lock_file.is_file()
    finally:
        await first.release()
    again = instance_lock_for(url)
    await again.acquire()
    await again.release()


async def test_in_memory_sqlite_takes_no_lock() -> None:
    lock = instance_lock_for("sqlite+aiosqlite://")
    await lock.acquire()
    await instance_lock_for("sqlite+aiosqlite://").acquire()
    assert await lock.ensure() is True
