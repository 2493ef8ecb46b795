"""/metrics keeps the ledger's part between scrapes and refreshes only what changed: an order
acknowledged after it was first scraped, events counted from the new rows only, and in the
running bot (which owns its ledger) no refresh by age at all."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import event, func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.domain import Event, Leg, OrderPurpose, OrderStatus, OrderType, Severity, Side
from bot.domain.ledger import MarketObservation, NewOrder
from bot.domain.orders import Order
from bot.persistence.models import EventRow
from bot.web import WebContext, create_app
from bot.web.readmodel import ReadModel
from tests.web.conftest import Dash

D = Decimal


def _value(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    raise AssertionError(f"{name} {labels} not found")


@contextmanager
def statements(dash: Dash) -> Iterator[list[str]]:
    engine = dash.ledger.sessions.kw["bind"]
    assert isinstance(engine, AsyncEngine)
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


@pytest.fixture
async def bot_dash(make_dash: Callable[..., AsyncIterator[Dash]]) -> AsyncIterator[Dash]:
    """The dashboard as `carrybot run` serves it: its read model owns the ledger."""
    async for d in make_dash():
        read = ReadModel(d.ledger, leverage=2, clock=d.seeded.clock, owns_ledger=True)
        d.ctx = WebContext(read, d.seeded.clock, token=None)
        transport = httpx.ASGITransport(app=create_app(d.ctx))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            d.client = client
            yield d


async def test_an_order_acknowledged_after_a_scrape_is_counted_once_it_is(dash: Dash) -> None:
    clock = dash.seeded.clock
    btc = dash.seeded.open[0]
    before = (await dash.client.get("/metrics")).text
    spot = _value(before, "carrybot_order_round_trip_seconds_count", leg="spot")
    (order,) = await dash.ledger.orders.add(
        [
            NewOrder(
                "cb-t-1",
                Leg.SPOT,
                OrderPurpose.CLOSE,
                "BTC/USDT",
                Side.SELL,
                OrderType.MARKET,
                D(1),
            )
        ],
        venue="paper",
        at=clock.now(),
        hedge_id=btc.id,
    )
    sent = (await dash.client.get("/metrics")).text  # written, not yet sent or acknowledged
    assert _value(sent, "carrybot_order_round_trip_seconds_count", leg="spot") == spot
    clock.advance(timedelta(milliseconds=30))
    ack = Order(
        "BTC/USDT",
        "cb-t-1",
        "9",
        Side.SELL,
        OrderType.MARKET,
        OrderStatus.FILLED,
        D(1),
        D(1),
        D(100),
        None,
        clock.now(),
        clock.now(),
    )
    await dash.ledger.orders.apply(ack, at=clock.now(), sent_at=order.created_at)
    acked = (await dash.client.get("/metrics")).text
    assert _value(acked, "carrybot_order_round_trip_seconds_count", leg="spot") == spot + 1
    assert _value(acked, "carrybot_order_round_trip_seconds_bucket", leg="spot", le="0.025") == (
        _value(before, "carrybot_order_round_trip_seconds_bucket", leg="spot", le="0.025")
    )
    assert _value(acked, "carrybot_order_round_trip_seconds_bucket", leg="spot", le="0.05") == (
        _value(before, "carrybot_order_round_trip_seconds_bucket", leg="spot", le="0.05") + 1
    )
    again = (await dash.client.get("/metrics")).text  # counted once, however often scraped
    assert _value(again, "carrybot_order_round_trip_seconds_count", leg="spot") == spot + 1


async def test_a_new_event_reads_the_new_events_only_and_rebuilds_no_report(dash: Dash) -> None:
    clock = dash.seeded.clock
    first = (await dash.client.get("/metrics")).text
    rebuilds = dash.ctx.read.rebuilds
    for n in (1, 2):
        await dash.ledger.events.emit(
            Event("exchange.recovered", "back", clock.now(), Severity.INFO, {})
        )
        with statements(dash) as seen:
            text = (await dash.client.get("/metrics")).text
        assert (
            _value(text, "carrybot_events_total", kind="exchange.recovered", severity="info") == n
        )
        assert _value(text, "carrybot_reconnects_total", kind="exchange.recovered") == n
        assert len(seen) == 2, seen  # the version, then the events newer than the last seen
        assert "events.id >" in seen[1]
    assert dash.ctx.read.rebuilds == rebuilds
    assert _value(text, "carrybot_open_hedges") == _value(first, "carrybot_open_hedges")


async def test_the_running_bots_scrape_of_an_unchanged_ledger_is_one_query_however_late(
    bot_dash: Dash,
) -> None:
    clock = bot_dash.seeded.clock
    first = (await bot_dash.client.get("/metrics")).text
    refreshes = bot_dash.ctx.metrics.ledger.refreshes
    for _ in range(3):
        clock.advance(timedelta(seconds=bot_dash.ctx.read.max_age_seconds))
        with statements(bot_dash) as seen:
            text = (await bot_dash.client.get("/metrics")).text
        assert len(seen) == 1 and "max(events.id)" in seen[0], seen
    assert bot_dash.ctx.metrics.ledger.refreshes == refreshes
    assert _value(text, "carrybot_net_pnl_usdt") == _value(first, "carrybot_net_pnl_usdt")


async def test_new_marks_alone_are_read_without_the_hedges_fills_and_funding(
    bot_dash: Dash,
) -> None:
    clock = bot_dash.seeded.clock
    btc = bot_dash.seeded.open[0]
    first = (await bot_dash.client.get("/metrics")).text
    clock.advance(timedelta(seconds=bot_dash.ctx.read.max_age_seconds))
    await bot_dash.ledger.observations.upsert(
        [
            MarketObservation(
                btc.perp_symbol,
                clock.now(),
                mark_price=D(1),
                spot_bid=D(90),
                spot_ask=D(90),
                perp_bid=D(91),
                perp_ask=D(91),
            )
        ]
    )
    with statements(bot_dash) as seen:
        text = (await bot_dash.client.get("/metrics")).text
    assert _value(text, "carrybot_basis_pnl_usdt") != _value(first, "carrybot_basis_pnl_usdt")
    reads = [s for s in seen if "max(balance_snapshots.id)" not in s]  # after the version
    assert reads and not [s for s in reads if "FROM fills" in s or "FROM funding_payments" in s]
    status = (await bot_dash.client.get("/api/status")).json()
    assert D(str(_value(text, "carrybot_basis_pnl_usdt"))) == D(status["totals"]["basis_pnl"])


async def test_a_later_report_is_recomputed_from_kept_inputs_without_a_query(
    bot_dash: Dash,
) -> None:
    clock = bot_dash.seeded.clock
    first = (await bot_dash.client.get("/api/status")).json()
    rebuilds = bot_dash.ctx.read.rebuilds
    clock.advance(timedelta(hours=2))
    with statements(bot_dash) as seen:
        later = (await bot_dash.client.get("/api/status")).json()
    assert len(seen) == 1, seen  # the version alone
    assert bot_dash.ctx.read.rebuilds == rebuilds + 1
    (was,), (now,) = first["open_hedges"], later["open_hedges"]
    assert float(now["holding_hours"]) == float(was["holding_hours"]) + 2
    assert now["net"] == was["net"]


async def test_an_event_committed_late_under_a_lower_id_is_counted_once(dash: Dash) -> None:
    """On PostgreSQL a transaction holding a lower id can commit after a higher one."""
    clock = dash.seeded.clock
    async with dash.ledger.sessions() as s:
        top = int(await s.scalar(select(func.max(EventRow.id))) or 0)

    async def add(event_id: int) -> None:
        row = {"id": event_id, "at": clock.now(), "kind": "bench.late", "severity": "info"}
        async with dash.ledger.sessions.begin() as s:
            await s.execute(insert(EventRow).values(message="late", data={}, **row))

    def late(text: str) -> float:
        return _value(text, "carrybot_events_total", kind="bench.late", severity="info")

    await add(top + 5)
    assert late((await dash.client.get("/metrics")).text) == 1
    await add(top + 2)  # committed after the scrape that saw top + 5
    assert late((await dash.client.get("/metrics")).text) == 2
    await dash.ledger.events.emit(Event("bench.late", "late", clock.now(), Severity.INFO, {}))
    assert late((await dash.client.get("/metrics")).text) == 3
