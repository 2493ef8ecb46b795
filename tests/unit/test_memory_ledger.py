"""`MemoryLedger`: the SQL ledger's interface in memory, answering as the SQL ledger does."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from bot.domain import (
    Fill,
    FundingPayment,
    HedgeState,
    Leg,
    Order,
    OrderPurpose,
    OrderStatus,
    OrderType,
    Side,
)
from bot.domain.ledger import BalanceSnapshot, NewOrder
from bot.persistence import memory
from bot.persistence.base import SqlRepository
from bot.persistence.memory import MemoryLedger
from bot.persistence.repositories import Ledger

D = Decimal
T0 = datetime(2024, 3, 1, tzinfo=UTC)


def test_memory_ledger_overrides_every_public_method_of_the_sql_ledger() -> None:
    mem = MemoryLedger()
    missing = []
    for name, repo in vars(mem).items():
        if name == "tables":
            continue
        for cls in type(repo).__mro__:
            if not _is_sql_repository(cls):
                continue
            for method, fn in vars(cls).items():
                if method.startswith("_") or not inspect.isfunction(fn):
                    continue
                if not getattr(type(repo), method).__module__.startswith(memory.__name__):
                    missing.append(f"{name}.{method}")
    assert missing == []
    assert {"cycle_view", "for_run"} <= {
        n for n, f in vars(MemoryLedger).items() if inspect.isfunction(f)
    }
    assert issubclass(MemoryLedger, Ledger)  # usable wherever the loop takes a Ledger


def _is_sql_repository(cls: type) -> bool:
    module = cls.__module__
    return (
        module.startswith("bot.persistence.")
        and not module.startswith(memory.__name__)
        and cls is not SqlRepository
    )


async def _hedge(ledger: MemoryLedger) -> int:
    hedge, _ = await ledger.hedges.create(
        uid="u1",
        pair="BTC/USDT",
        spot_symbol="BTC/USDT",
        perp_symbol="BTC/USDT:USDT",
        target_quantity=D("0.010"),
        target_notional=D("999.99000"),
        reason="entry",
        metrics={},
        at=T0,
        venue="paper",
        orders=[],
    )
    return hedge.id


async def test_write_of_an_equal_value_keeps_the_stored_text_as_an_orm_flush_does() -> None:
    ledger = MemoryLedger()
    hedge_id = await _hedge(ledger)

    returned = await ledger.hedges.transition(
        hedge_id, HedgeState.OPEN, reason="filled", at=T0, target_notional=D("999.99")
    )

    assert str(returned.target_notional) == "999.99"  # the value just written
    (row,) = ledger.tables.rows["hedges"]
    assert str(row["target_notional"]) == "999.99000"  # 999.99 == 999.99000: not rewritten
    (read,) = await ledger.hedges.active()
    assert str(read.target_notional) == "999.99"  # read back normalised, as Money does
    assert str(read.target_quantity) == "0.01"


async def test_active_last_closed_and_held_since_follow_the_writes() -> None:
    ledger = MemoryLedger()
    hedge_id = await _hedge(ledger)
    await ledger.hedges.transition(hedge_id, HedgeState.OPEN, reason="x", at=T0, opened_at=T0)
    assert [h.id for h in (await ledger.cycle_view()).active] == [hedge_id]
    closed = T0 + timedelta(hours=5)

    await ledger.hedges.transition(hedge_id, HedgeState.CLOSING, reason="exit", at=closed)
    await ledger.hedges.transition(
        hedge_id, HedgeState.CLOSED, reason="done", at=closed, closed_at=closed
    )

    view = await ledger.cycle_view()
    assert view.active == [] and view.last_closed_at == {"BTC/USDT": closed}
    assert [h.id for h in await ledger.hedges.held_since(closed)] == [hedge_id]
    assert await ledger.hedges.held_since(closed + timedelta(seconds=1)) == []
    with pytest.raises(KeyError):
        await ledger.hedges.update(99, at=T0, spot_quantity=D(1))


async def test_fills_and_funding_are_stored_once_per_natural_key() -> None:
    ledger = MemoryLedger()
    fill = Fill("t1", "BTC/USDT", "o1", Side.BUY, D("100.10"), D("1"), D("0.001"), "BTC", T0)
    payment = FundingPayment("BTC/USDT:USDT", T0, D("0.50"), "USDT")

    assert await ledger.fills.record("paper", [fill, fill]) == 1
    assert await ledger.fills.record("paper", [fill]) == 0
    assert await ledger.funding.record_owned("paper", [(payment, 7), (payment, 7)]) == 1

    assert [f.price for f in await ledger.fills.all()] == [D("100.1")]
    assert await ledger.funding.totals_by_hedge() == {7: D("0.5")}


async def test_first_value_since_is_the_first_snapshot_at_or_after_the_time() -> None:
    ledger = MemoryLedger()
    for hours, value in ((0, "100"), (8, "110.0"), (16, "120")):
        at = T0 + timedelta(hours=hours)
        await ledger.snapshots.record(
            [BalanceSnapshot(at, "total", "USDT", D(value), D(0), D(value))], []
        )

    assert await ledger.snapshots.first_value_since("total", T0 + timedelta(hours=1)) == D("110")
    assert await ledger.snapshots.first_value_since("total", T0 + timedelta(hours=17)) is None
    assert await ledger.snapshots.first_value_since("spot", T0) is None


async def test_orders_read_back_follow_each_write_of_the_order() -> None:
    ledger = MemoryLedger()
    hedge_id = await _hedge(ledger)
    new = NewOrder("c1", Leg.SPOT, OrderPurpose.OPEN, "BTC/USDT", Side.BUY, OrderType.MARKET, D(1))
    await ledger.orders.add([new], venue="paper", at=T0, hedge_id=hedge_id)
    (before,) = await ledger.orders.for_hedge(hedge_id)
    assert before.status is OrderStatus.PENDING and await ledger.orders.get("c1") == before

    filled = Order(
        "BTC/USDT", "c1", "x1", Side.BUY, OrderType.MARKET, OrderStatus.FILLED,
        D(1), D(1), D("100.50"), None, T0, T0,
    )  # fmt: skip
    await ledger.orders.apply(filled, at=T0)

    (after,) = await ledger.orders.for_hedge(hedge_id)
    assert (after.status, after.filled, after.average_price) == (
        OrderStatus.FILLED,
        D(1),
        D("100.5"),  # read back normalised, as Money does
    )
    assert await ledger.orders.get("c1") == after
    await ledger.orders.mark_failed("c1", at=T0, status=OrderStatus.REJECTED, code=-1, message="x")
    assert (await ledger.orders.get("c1")).status is OrderStatus.REJECTED  # type: ignore[union-attr]
