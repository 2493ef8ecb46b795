"""Round-trips of every table on both databases; idempotent natural keys; exact decimals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.domain import (
    Event,
    Fill,
    FundingPayment,
    HedgeState,
    Leg,
    Order,
    OrderPurpose,
    OrderStatus,
    OrderType,
    PositionSide,
    SettledFunding,
    Severity,
    Side,
)
from bot.domain.hedge import InvalidTransition
from bot.domain.ledger import (
    BalanceSnapshot,
    MarketObservation,
    NewOrder,
    PositionSnapshot,
    TradingState,
)
from bot.persistence.db import create_engine, session_factory
from bot.persistence.repositories import CycleReads, Ledger

pytestmark = pytest.mark.postgres

T0 = datetime(2024, 3, 1, 8, 0, tzinfo=UTC)
TINY = Decimal("0.00000001")
BIG = Decimal("123456789.12345678")


def new_orders(uid: str) -> list[NewOrder]:
    return [
        NewOrder(
            f"cb-{uid}-so1",
            Leg.SPOT,
            OrderPurpose.OPEN,
            "BTC/USDT",
            Side.BUY,
            OrderType.MARKET,
            Decimal("0.001"),
        ),
        NewOrder(
            f"cb-{uid}-po1",
            Leg.PERP,
            OrderPurpose.OPEN,
            "BTC/USDT:USDT",
            Side.SELL,
            OrderType.MARKET,
            Decimal("0.001"),
            position_side=PositionSide.SHORT,
        ),
    ]


async def make_hedge(ledger: Ledger, uid: str = "h1"):  # type: ignore[no-untyped-def]
    return await ledger.hedges.create(
        uid=uid,
        pair="BTC/USDT",
        spot_symbol="BTC/USDT",
        perp_symbol="BTC/USDT:USDT",
        target_quantity=TINY,
        target_notional=BIG,
        reason="funding 12% APR",
        metrics={"apr": "0.12"},
        at=T0,
        venue="binance",
        orders=new_orders(uid),
    )


async def test_hedge_and_its_orders_are_written_together_with_exact_decimals(
    ledger: Ledger,
) -> None:
    hedge, orders = await make_hedge(ledger)

    stored = await ledger.hedges.get(hedge.id)
    assert stored is not None
    assert stored.target_quantity == TINY
    assert stored.target_notional == BIG
    assert stored.state is HedgeState.OPENING
    assert stored.created_at == T0 and stored.created_at.tzinfo is not None
    assert [o.status for o in orders] == [OrderStatus.PENDING, OrderStatus.PENDING]
    assert (await ledger.orders.for_hedge(hedge.id))[1].position_side is PositionSide.SHORT


async def test_hedge_transitions_are_recorded_with_reasons_and_checked(ledger: Ledger) -> None:
    hedge, _ = await make_hedge(ledger)

    await ledger.hedges.transition(
        hedge.id,
        HedgeState.OPEN,
        reason="both legs filled",
        at=T0 + timedelta(seconds=1),
        spot_quantity=TINY,
        perp_quantity=TINY,
        opened_at=T0,
    )
    with pytest.raises(InvalidTransition):
        await ledger.hedges.transition(hedge.id, HedgeState.OPENING, reason="x", at=T0)

    transitions = await ledger.hedges.transitions(hedge.id)
    assert [(t.from_state, t.to_state) for t in transitions] == [
        (None, "opening"),
        ("opening", "open"),
    ]
    assert transitions[1].reason == "both legs filled"
    assert [h.id for h in await ledger.hedges.active()] == [hedge.id]


async def test_client_order_id_is_unique(ledger: Ledger) -> None:
    await make_hedge(ledger, "dup")

    with pytest.raises(Exception, match=r"(?i)unique|duplicate"):
        await ledger.orders.add(new_orders("dup")[:1], venue="binance", at=T0, hedge_id=None)


async def test_order_lifecycle_send_ack_and_failure(ledger: Ledger) -> None:
    _, orders = await make_hedge(ledger)
    cid = orders[0].client_order_id
    order = Order(
        "BTC/USDT",
        cid,
        "777",
        Side.BUY,
        OrderType.MARKET,
        OrderStatus.FILLED,
        Decimal("0.001"),
        Decimal("0.001"),
        Decimal("50000.5"),
        None,
        T0,
        T0,
    )

    record = await ledger.orders.apply(order, at=T0 + timedelta(milliseconds=40), sent_at=T0)
    failed = await ledger.orders.mark_failed(
        orders[1].client_order_id,
        at=T0,
        status=OrderStatus.REJECTED,
        code=-2019,
        message="Margin is insufficient.",
    )

    assert record.status is OrderStatus.FILLED and record.average_price == Decimal("50000.5")
    assert record.sent_at == T0 and record.acked_at == T0 + timedelta(milliseconds=40)
    assert failed.error_code == -2019
    assert [o.status for o in await ledger.orders.for_hedge(record.hedge_id or 0)] == [
        OrderStatus.FILLED,
        OrderStatus.REJECTED,
    ]


async def test_fill_recorded_twice_is_stored_once(ledger: Ledger) -> None:
    _, orders = await make_hedge(ledger)
    fill = Fill(
        "9001",
        "BTC/USDT",
        "777",
        Side.BUY,
        BIG,
        TINY,
        TINY,
        "BTC",
        T0,
        client_order_id=orders[0].client_order_id,
    )

    first = await ledger.fills.record("binance", [fill])
    second = await ledger.fills.record("binance", [fill, fill])
    same_id_other_symbol = await ledger.fills.record(
        "binance", [Fill("9001", "ETH/USDT", "778", Side.BUY, BIG, TINY, TINY, "ETH", T0)]
    )

    assert (first, second, same_id_other_symbol) == (1, 0, 1)
    stored = await ledger.fills.for_order(orders[0].client_order_id)
    assert stored == [fill]
    hedge_fills = await ledger.fills.for_hedge(orders[0].hedge_id or 0)
    assert [f.price for f in hedge_fills] == [BIG]


async def test_funding_is_idempotent_on_venue_symbol_time(ledger: Ledger) -> None:
    hedge, _ = await make_hedge(ledger)
    pay = FundingPayment(
        "BTC/USDT:USDT",
        T0,
        Decimal("0.05123456"),
        rate=Decimal("0.0001"),
        mark_price=BIG,
        position_size=TINY,
    )

    assert await ledger.funding.record_owned("binance", [(pay, hedge.id)]) == 1
    assert await ledger.funding.record_owned("binance", [(pay, None)]) == 0
    assert await ledger.funding.record_owned("paper", [(pay, None)]) == 1

    assert await ledger.funding.payments(venue="binance") == [pay]
    assert await ledger.funding.totals_by_hedge() == {hedge.id: Decimal("0.05123456")}


async def test_observations_merge_on_symbol_and_minute(ledger: Ledger) -> None:
    obs = MarketObservation(
        "BTC/USDT:USDT",
        T0,
        funding_rate=Decimal("0.0001"),
        mark_price=BIG,
        interval_hours=8,
        next_funding_time=T0 + timedelta(hours=8),
    )
    newer = MarketObservation("BTC/USDT:USDT", T0, funding_rate=Decimal("0.0002"), mark_price=BIG)

    await ledger.observations.upsert([obs])
    await ledger.observations.upsert([newer])

    (stored,) = await ledger.observations.for_symbol("BTC/USDT:USDT")  # one row, merged
    assert stored.funding_rate == Decimal("0.0002")
    assert await ledger.observations.latest_time() == T0


async def test_settled_funding_keeps_history_once(ledger: Ledger) -> None:
    rows = [
        SettledFunding("ETH/USDT:USDT", T0 + timedelta(hours=8 * i), Decimal("0.0001") * i)
        for i in range(3)
    ]

    assert await ledger.settled_funding.upsert("binance", rows) == 3
    assert await ledger.settled_funding.upsert("binance", rows) == 0
    assert await ledger.settled_funding.history("binance", "ETH/USDT:USDT", limit=2) == rows[1:]


async def test_snapshots_round_trip(ledger: Ledger) -> None:
    later = T0 + timedelta(minutes=5)
    balances_taken = [
        BalanceSnapshot(T0, "spot", "USDT", BIG, Decimal(0), BIG),
        BalanceSnapshot(later, "spot", "USDT", TINY, Decimal(1), Decimal(2)),
        BalanceSnapshot(later, "futures", "USDT", Decimal(5), Decimal(0)),
    ]
    pos = PositionSnapshot(
        later,
        "BTC/USDT:USDT",
        PositionSide.BOTH,
        TINY,
        True,
        BIG,
        BIG,
        None,
        Decimal("-0.5"),
        Decimal("0.01"),
        2,
    )
    await ledger.snapshots.record(balances_taken, [pos])

    balances = await ledger.snapshots.latest_balances()
    assert [(b.wallet, b.free, b.total) for b in balances] == [
        ("futures", Decimal(5), Decimal(5)),
        ("spot", TINY, Decimal("1.00000001")),
    ]
    assert await ledger.snapshots.first_value_since("spot", T0 + timedelta(seconds=1)) == 2


async def test_events_trading_state_runs_and_paper_state(ledger: Ledger) -> None:
    run = await ledger.runs.start(
        mode="paper", environment="production", config_hash="abc", version="0.1.0", at=T0
    )
    events = ledger.for_run(run.id).events
    await events.emit(
        Event(
            "risk.denied", "max_open_hedges reached", T0, Severity.WARNING, {"open": 5, "limit": 5}
        )
    )
    assert await ledger.trading_state.get() is None
    await ledger.trading_state.set(TradingState.HALTED, reason="manual", changed_by="cli", at=T0)
    status = await ledger.trading_state.set(
        TradingState.REDUCING, reason="loss", changed_by="risk", at=T0
    )
    await ledger.paper_state.save("paper", {"spot": {"USDT": "100.5"}}, at=T0)
    await ledger.paper_state.save("paper", {"spot": {"USDT": "99"}}, at=T0)
    await ledger.runs.stop(run.id, at=T0 + timedelta(hours=1), reason="SIGTERM")

    (event,) = await events.recent()
    assert (event.kind, event.severity, dict(event.data)) == (
        "risk.denied",
        Severity.WARNING,
        {"open": 5, "limit": 5},
    )
    assert await ledger.trading_state.get() == status
    assert await ledger.paper_state.load("paper") == {"spot": {"USDT": "99"}}
    (stored_run,) = await ledger.runs.latest()
    assert stored_run.stop_reason == "SIGTERM" and stored_run.stopped_at == T0 + timedelta(hours=1)


async def test_naive_timestamps_and_float_money_are_refused(ledger: Ledger) -> None:
    with pytest.raises(Exception, match="timezone-aware"):
        await ledger.runs.start(
            mode="paper", environment="x", config_hash="x", version="x", at=datetime(2024, 1, 1)
        )
    with pytest.raises(Exception, match="Decimal"):
        await ledger.funding.record_owned("binance", [(FundingPayment("X", T0, 0.1), None)])  # type: ignore[arg-type]


# --- what each cycle reads --------------------------------------------------------------


async def test_cycle_view_sees_this_process_hedge_writes_and_a_halt_from_another(
    ledger: Ledger, engine: AsyncEngine
) -> None:
    assert (await ledger.cycle_view()).active == []
    hedge, _ = await make_hedge(ledger)
    assert [h.id for h in (await ledger.cycle_view()).active] == [hedge.id]

    await ledger.hedges.transition(hedge.id, HedgeState.FAILED, reason="leg rejected", at=T0)
    view = await ledger.cycle_view()
    assert view.active == [] and view.last_closed_at == {}

    other = create_engine(str(engine.url.render_as_string(hide_password=False)))
    try:  # `carrybot halt` runs in another process: its own engine
        await Ledger(session_factory(other), CycleReads()).trading_state.set(
            TradingState.HALTED, reason="manual", changed_by="cli", at=T0
        )
    finally:
        await other.dispose()
    status = (await ledger.cycle_view()).trading
    assert status is not None and status.state is TradingState.HALTED


async def test_a_private_ledger_keeps_the_trading_state_until_it_writes_one(
    engine: AsyncEngine,
) -> None:
    ledger = Ledger(session_factory(engine), CycleReads(keep_trading_state=True))
    assert (await ledger.cycle_view()).trading is None

    other = create_engine(str(engine.url.render_as_string(hide_password=False)))
    try:  # nothing else may write a private ledger: a write that does is not seen
        await Ledger(session_factory(other), CycleReads()).trading_state.set(
            TradingState.HALTED, reason="manual", changed_by="cli", at=T0
        )
    finally:
        await other.dispose()
    assert (await ledger.cycle_view()).trading is None

    await ledger.trading_state.set(TradingState.REDUCING, reason="loss", changed_by="risk", at=T0)
    status = (await ledger.cycle_view()).trading
    assert status is not None and status.state is TradingState.REDUCING


async def test_held_since_answers_a_later_window_from_its_last_read_until_a_hedge_write(
    ledger: Ledger,
) -> None:
    first, _ = await make_hedge(ledger, "h1")
    second, _ = await make_hedge(ledger, "h2")
    for hedge in (first, second):
        await ledger.hedges.transition(
            hedge.id, HedgeState.OPEN, reason="filled", at=T0, opened_at=T0
        )
    await ledger.hedges.transition(first.id, HedgeState.CLOSING, reason="exit", at=T0)
    closed_at = T0 + timedelta(hours=10)
    await ledger.hedges.transition(
        first.id, HedgeState.CLOSED, reason="closed", at=closed_at, closed_at=closed_at
    )

    assert [h.id for h in await ledger.hedges.held_since(T0)] == [first.id, second.id]
    # A later window: the hedge closed before it drops out, the one closed at it stays.
    assert [h.id for h in await ledger.hedges.held_since(closed_at)] == [first.id, second.id]
    later = closed_at + timedelta(seconds=1)
    assert [h.id for h in await ledger.hedges.held_since(later)] == [second.id]
    # An earlier window than the last read is read again.
    assert [h.id for h in await ledger.hedges.held_since(T0 - timedelta(days=1))] == [
        first.id,
        second.id,
    ]

    third, _ = await make_hedge(ledger, "h3")
    await ledger.hedges.transition(
        third.id, HedgeState.OPEN, reason="filled", at=later, opened_at=later
    )
    assert [h.id for h in await ledger.hedges.held_since(later)] == [second.id, third.id]


async def test_a_run_ledger_shares_the_kept_reads_of_the_ledger_it_came_from(
    ledger: Ledger,
) -> None:
    run = await ledger.runs.start(
        mode="paper", environment="x", config_hash="h", version="v", at=T0
    )
    tagged = ledger.for_run(run.id)
    assert tagged.reads is ledger.reads
    assert (await tagged.cycle_view()).active == []  # read and kept

    hedge, _ = await make_hedge(ledger)  # written through the other ledger over the engine

    assert [h.id for h in (await tagged.cycle_view()).active] == [hedge.id]
