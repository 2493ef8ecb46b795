"""The dashboard keeps its views while the ledger is unchanged, and never serves them stale:
a write by this process or a row added by another process shows at the next request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import event, update
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.control import set_trading_state
from bot.domain import Event, Severity
from bot.domain.ledger import BalanceSnapshot, MarketObservation, TradingState
from bot.persistence.db import create_engine, session_factory
from bot.persistence.models import HedgeRow
from bot.persistence.repositories import CycleReads, Ledger
from tests.web.conftest import Dash

PATHS = ("/metrics", "/", "/api/status", "/api/hedges", "/api/events", "/market")


@contextmanager
def statements(engine: AsyncEngine) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


def _engine(dash: Dash) -> AsyncEngine:
    bind = dash.ledger.sessions.kw["bind"]
    assert isinstance(bind, AsyncEngine)
    return bind


@pytest.fixture
async def other_process(dash: Dash) -> AsyncIterator[Ledger]:
    """A second engine on the same database: writes this process's counter cannot see."""
    url = _engine(dash).url.render_as_string(hide_password=False)
    engine = create_engine(url)
    try:
        yield Ledger(session_factory(engine), CycleReads())
    finally:
        await engine.dispose()


async def test_an_unchanged_ledger_costs_one_query_per_request(dash: Dash) -> None:
    for path in PATHS:
        assert (await dash.client.get(path)).status_code == 200
    rebuilds = dash.ctx.read.rebuilds
    with statements(_engine(dash)) as seen:
        for path in PATHS:
            assert (await dash.client.get(path)).status_code == 200
    assert len(seen) == len(PATHS), seen
    assert all("max(events.id)" in s for s in seen)
    assert dash.ctx.read.rebuilds == rebuilds


async def test_a_write_by_this_process_shows_at_the_next_request(dash: Dash) -> None:
    btc = dash.seeded.open[0]
    first = (await dash.client.get("/api/status")).json()
    assert Decimal(first["open_hedges"][0]["notional"]) == btc.target_notional != 1500
    # In place, at the same (simulated) time: no id or timestamp moves, the counter sees it.
    await dash.ledger.hedges.update(btc.id, at=btc.updated_at, target_notional=Decimal(1500))
    after = (await dash.client.get("/api/status")).json()
    assert Decimal(after["open_hedges"][0]["notional"]) == Decimal(1500)
    metrics = (await dash.client.get("/metrics")).text
    assert 'carrybot_notional_usdt{pair="BTC/USDT"} 1500.0' in metrics


async def test_a_halt_from_another_process_shows_at_the_next_request(
    dash: Dash, other_process: Ledger
) -> None:
    assert (await dash.client.get("/api/status")).json()["trading_state"] == "active"
    now = dash.seeded.clock.now()
    await set_trading_state(
        other_process, TradingState.HALTED, reason="from a shell", source="cli", at=now
    )
    status = (await dash.client.get("/api/status")).json()
    assert (status["trading_state"], status["trading_reason"]) == ("halted", "from a shell")
    page = (await dash.client.get("/events")).text
    assert "trading HALTED by cli: from a shell" in page


async def test_another_process_in_place_update_shows_within_the_max_age(
    dash: Dash, other_process: Ledger
) -> None:
    btc = dash.seeded.open[0]
    first = (await dash.client.get("/api/status")).json()
    assert Decimal(first["open_hedges"][0]["notional"]) == btc.target_notional != 1200
    async with other_process.sessions.begin() as s:  # no new row: only the age bound sees it
        await s.execute(
            update(HedgeRow).where(HedgeRow.id == btc.id).values(target_notional=Decimal(1200))
        )
    kept = (await dash.client.get("/api/status")).json()
    assert kept["open_hedges"][0]["notional"] == first["open_hedges"][0]["notional"]
    dash.seeded.clock.advance(timedelta(seconds=dash.ctx.read.max_age_seconds))
    fresh = (await dash.client.get("/api/status")).json()
    assert Decimal(fresh["open_hedges"][0]["notional"]) == Decimal(1200)
    assert fresh["now"] == dash.seeded.clock.now().isoformat()


async def test_a_kept_report_carries_the_time_of_the_request(dash: Dash) -> None:
    first = (await dash.client.get("/api/status")).json()
    rebuilds = dash.ctx.read.rebuilds
    dash.seeded.clock.advance(timedelta(seconds=10))
    later = (await dash.client.get("/api/status")).json()
    assert dash.ctx.read.rebuilds == rebuilds
    assert later["snapshot_age_seconds"] == first["snapshot_age_seconds"] + 10


def _equity_line(metrics: str) -> str:
    (line,) = [x for x in metrics.splitlines() if x.startswith("carrybot_equity_usdt ")]
    return line


async def test_new_observations_and_balances_alone_show_within_the_max_age_not_at_once(
    dash: Dash, other_process: Ledger
) -> None:
    """A running bot adds them every few seconds: rebuilding every view at each scrape for
    them cost more than the dashboard's CPU budget (`bench_soak.py`)."""
    clock = dash.seeded.clock
    btc = dash.seeded.open[0]
    first = (await dash.client.get("/metrics")).text
    rebuilds = dash.ctx.read.rebuilds
    for ledger in (dash.ledger, other_process):  # this process's writes, and another's rows
        clock.advance(timedelta(seconds=5))
        await ledger.observations.upsert(
            [MarketObservation(btc.perp_symbol, clock.now(), mark_price=Decimal(1))]
        )
        await ledger.snapshots.record(
            [BalanceSnapshot(clock.now(), "total", "USDT", Decimal(3), Decimal(0), Decimal(3))],
            [],
        )
        kept = (await dash.client.get("/metrics")).text
        assert _equity_line(kept) == _equity_line(first) != "carrybot_equity_usdt 3.0"
        assert dash.ctx.read.rebuilds == rebuilds

    clock.advance(timedelta(seconds=dash.ctx.read.max_age_seconds))
    fresh = (await dash.client.get("/metrics")).text
    assert _equity_line(fresh) == "carrybot_equity_usdt 3.0"
    assert dash.ctx.read.rebuilds == rebuilds + 1

    # Anything else shows at once, however young the kept views are.
    await other_process.events.emit(
        Event("exchange.recovered", "back", clock.now(), Severity.INFO, {})
    )
    page = (await dash.client.get("/events")).text
    assert "exchange.recovered" in page
