"""`carrybot close HEDGE_ID`: the command stores the request the running bot obeys (the
refusals are in tests/integration/test_close_requests.py and tests/e2e)."""

from __future__ import annotations

from pathlib import Path

from bot.persistence import migrate
from bot.persistence.db import create_engine, session_factory
from bot.persistence.repositories import CycleReads, Ledger
from tests.e2e.cli import run_cli
from tests.support.seeded_ledger import seed_ledger


async def test_close_stores_the_request_with_its_source_and_reason(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}"
    engine = create_engine(url)
    try:
        await migrate.upgrade(engine)
        seeded = await seed_ledger(Ledger(session_factory(engine), CycleReads()))
        open_id = seeded.open[0].id

        done = run_cli(
            "close", str(open_id), "--reason", "by hand", "--database", url, cwd=tmp_path
        )

        assert done.code == 0, done.stderr
        assert f"close of hedge {open_id} requested" in done.stdout
        ledger = Ledger(session_factory(engine), CycleReads())
        (request,) = await ledger.close_requests.pending()
        assert (request.hedge_id, request.reason, request.source) == (open_id, "by hand", "cli")
    finally:
        await engine.dispose()
