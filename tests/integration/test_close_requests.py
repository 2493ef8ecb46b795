"""Close requests in the ledger: stored, read by the cycle until done, refused when they
cannot apply; the same in the SQL ledger (SQLite, PostgreSQL) and the backtest's memory one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from bot.control import CloseRefused, request_close
from bot.domain import HedgeState
from bot.persistence.memory import MemoryLedger
from bot.persistence.repositories import Ledger

pytestmark = pytest.mark.postgres
D = Decimal
T0 = datetime(2024, 3, 1, tzinfo=UTC)


async def _open_hedge(
    ledger: Ledger, uid: str = "u1", *, state: HedgeState = HedgeState.OPEN
) -> int:
    hedge, _ = await ledger.hedges.create(
        uid=uid,
        pair="BTC/USDT",
        spot_symbol="BTC/USDT",
        perp_symbol="BTC/USDT:USDT",
        target_quantity=D("0.010"),
        target_notional=D("500"),
        reason="entry",
        metrics={},
        at=T0,
        venue="paper",
        orders=[],
    )
    if state is not HedgeState.OPENING:
        await ledger.hedges.transition(hedge.id, HedgeState.OPEN, reason="filled", at=T0)
    if state is HedgeState.CLOSED:
        await ledger.hedges.transition(hedge.id, HedgeState.CLOSING, reason="exit", at=T0)
        await ledger.hedges.transition(hedge.id, HedgeState.CLOSED, reason="flat", at=T0)
    return hedge.id


@pytest.fixture(params=["sql", "memory"])
def any_ledger(request: pytest.FixtureRequest, ledger: Ledger) -> Ledger:
    return ledger if request.param == "sql" else MemoryLedger()


async def test_a_request_is_read_by_every_cycle_until_it_is_done(any_ledger: Ledger) -> None:
    ledger = any_ledger
    hedge_id = await _open_hedge(ledger)
    assert (await ledger.cycle_view()).close_requests == ()

    request = await ledger.close_requests.add(hedge_id, reason="by hand", source="cli", at=T0)

    assert (request.hedge_id, request.reason, request.source) == (hedge_id, "by hand", "cli")
    assert request.requested_at == T0
    assert await ledger.close_requests.pending() == [request]
    assert (await ledger.cycle_view()).close_requests == (request,)
    assert (await ledger.cycle_view()).close_requests == (request,)  # not consumed by a read

    await ledger.close_requests.finish(request.id, outcome="closed", at=T0 + timedelta(seconds=1))

    assert await ledger.close_requests.pending() == []
    assert (await ledger.cycle_view()).close_requests == ()


async def test_request_close_refuses_an_unknown_or_not_open_hedge_and_stores_nothing(
    any_ledger: Ledger,
) -> None:
    ledger = any_ledger
    open_id = await _open_hedge(ledger, "u1")
    opening = await _open_hedge(ledger, "u2", state=HedgeState.OPENING)
    closed = await _open_hedge(ledger, "u3", state=HedgeState.CLOSED)

    with pytest.raises(
        CloseRefused, match=f"hedge 99: no hedge.*active hedges: {open_id}, {opening}"
    ) as e:
        await request_close(ledger, 99, reason="r", source="cli", at=T0)
    assert e.value.not_found
    for hedge_id, state in ((opening, "OPENING"), (closed, "CLOSED")):
        with pytest.raises(CloseRefused, match=f"is {state}, not OPEN") as e:
            await request_close(ledger, hedge_id, reason="r", source="cli", at=T0)
        assert not e.value.not_found
    assert await ledger.close_requests.pending() == []
    assert await ledger.events.recent(kind="control.close_requested") == []


async def test_a_second_request_for_a_waiting_hedge_is_the_first_one(any_ledger: Ledger) -> None:
    ledger = any_ledger
    hedge_id = await _open_hedge(ledger)
    first = await request_close(ledger, hedge_id, reason="one", source="web", at=T0)
    second = await request_close(ledger, hedge_id, reason="two", source="cli", at=T0)

    assert second == first
    assert await ledger.close_requests.pending() == [first]
    (event,) = await ledger.events.recent(kind="control.close_requested")
    assert (event.hedge_id, event.data["source"], event.data["reason"]) == (hedge_id, "web", "one")
