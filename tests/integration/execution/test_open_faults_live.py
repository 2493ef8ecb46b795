"""Opening a hedge over the live adapter while the fake Binance misbehaves.

Every case ends with the legs within one step of each other on the server's own account
(flat when the hedge failed) and the ledger agreeing with the server order for order.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from bot.domain import HedgeState, Leg, OrderPurpose, OrderStatus, PositionMode
from tests.integration.execution.rig import PERP_ORDER, SPOT_ORDER, Rig, RigFactory

D = Decimal
pytestmark = pytest.mark.postgres
MODES = [PositionMode.ONE_WAY, PositionMode.HEDGE]
INSUFFICIENT = "Account has insufficient balance for requested action."


async def _orders(rig: Rig, hedge_id: int) -> list[tuple[Leg, OrderPurpose, OrderStatus]]:
    return sorted((o.leg, o.purpose, o.status) for o in await rig.ledger.orders.for_hedge(hedge_id))


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.value)
@pytest.mark.parametrize(
    ("code", "msg"),
    [(-2010, INSUFFICIENT), (-1013, "Filter failure: NOTIONAL")],
    ids=["insufficient", "filter"],
)
async def test_open_spot_rejected_unwinds_the_short_and_fails_flat(
    rig_factory: RigFactory, mode: PositionMode, code: int, msg: str
) -> None:
    rig = await rig_factory(mode=mode)
    rig.fake.add_fault("reject", SPOT_ORDER, method="POST", code=code, msg=msg)

    hedge = await rig.open()

    assert hedge is not None and hedge.state is HedgeState.FAILED
    assert "spot leg failed" in (hedge.close_reason or "")
    assert str(code) in (hedge.close_reason or "")
    unwind = rig.order_posts(PERP_ORDER)[1]
    assert unwind["side"] == "BUY" and unwind["quantity"] == "0.019"
    if mode is PositionMode.HEDGE:
        assert unwind["positionSide"] == "SHORT" and "reduceOnly" not in unwind
    else:
        assert unwind["reduceOnly"] == "true" and "positionSide" not in unwind
    rig.assert_flat()
    await rig.assert_ledger_matches(hedge)
    assert await _orders(rig, hedge.id) == [
        (Leg.PERP, OrderPurpose.OPEN, OrderStatus.FILLED),
        (Leg.PERP, OrderPurpose.UNWIND, OrderStatus.FILLED),
        (Leg.SPOT, OrderPurpose.OPEN, OrderStatus.REJECTED),
    ]
    records = await rig.ledger.orders.for_hedge(hedge.id)
    (spot_open,) = [o for o in records if o.leg is Leg.SPOT]
    assert spot_open.error_code == code


@pytest.mark.parametrize(
    ("code", "msg"),
    [
        (-2019, "Margin is insufficient."),
        (-4164, "Order's notional must be no smaller than 100 (unless you choose reduce only)."),
    ],
    ids=["margin", "min_notional"],
)
async def test_open_perp_rejected_unwinds_the_spot_and_fails_flat(
    rig_factory: RigFactory, code: int, msg: str
) -> None:
    rig = await rig_factory()
    rig.fake.add_fault("reject", PERP_ORDER, method="POST", code=code, msg=msg)

    hedge = await rig.open()

    assert hedge is not None and hedge.state is HedgeState.FAILED
    assert "perp leg failed" in (hedge.close_reason or "")
    assert str(code) in (hedge.close_reason or "")
    assert [p["side"] for p in rig.order_posts(SPOT_ORDER)] == ["BUY", "SELL"]
    assert len(rig.order_posts(PERP_ORDER)) == 1  # the short is never retried
    rig.assert_flat()
    await rig.assert_ledger_matches(hedge)
    assert await _orders(rig, hedge.id) == [
        (Leg.PERP, OrderPurpose.OPEN, OrderStatus.REJECTED),
        (Leg.SPOT, OrderPurpose.OPEN, OrderStatus.FILLED),
        (Leg.SPOT, OrderPurpose.UNWIND, OrderStatus.FILLED),
    ]


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.value)
async def test_open_perp_response_dropped_is_resolved_by_lookup_and_opens(
    rig_factory: RigFactory, mode: PositionMode
) -> None:
    rig = await rig_factory(mode=mode)
    rig.fake.add_fault("drop", PERP_ORDER, method="POST")

    hedge = await rig.open()

    assert hedge is not None and hedge.state is HedgeState.OPEN
    (post,) = rig.requests(PERP_ORDER, "POST")
    assert post.dropped
    lookups = rig.requests(PERP_ORDER, "GET")
    assert lookups and {r.params["origClientOrderId"] for r in lookups} == {f"cb-{hedge.uid}-po1"}
    assert len(rig.server_orders(rig.pair.perp.symbol)) == 1
    assert rig.server_short() == D("0.019")
    rig.assert_balanced()
    await rig.assert_ledger_matches(hedge)
    assert await _orders(rig, hedge.id) == [
        (Leg.PERP, OrderPurpose.OPEN, OrderStatus.FILLED),
        (Leg.SPOT, OrderPurpose.OPEN, OrderStatus.FILLED),
    ]


async def test_open_spot_timed_out_is_resolved_by_lookup_without_a_second_post(
    rig_factory: RigFactory,
) -> None:
    rig = await rig_factory(timeout_ms=150)
    rig.fake.add_fault("delay", SPOT_ORDER, method="POST", delay_ms=400)

    hedge = await rig.open()

    assert hedge is not None and hedge.state is HedgeState.OPEN
    assert len(rig.requests(SPOT_ORDER, "POST")) == 1
    lookups = rig.requests(SPOT_ORDER, "GET")
    assert lookups and {r.params["origClientOrderId"] for r in lookups} == {f"cb-{hedge.uid}-so1"}
    assert len(rig.server_orders(rig.pair.spot.symbol)) == 1
    rig.assert_balanced()
    await rig.assert_ledger_matches(hedge)


@pytest.mark.parametrize(
    ("spot_ratio", "perp_ratio", "fix"),
    [("0.6", "0.8", OrderPurpose.TOP_UP), ("0.9", "0.5", OrderPurpose.TRIM)],
    ids=["spot_short", "perp_short"],
)
async def test_open_both_legs_partially_filled_are_equalised_within_one_step(
    rig_factory: RigFactory, spot_ratio: str, perp_ratio: str, fix: OrderPurpose
) -> None:
    rig = await rig_factory()
    rig.fake.add_fault("partial_fill", SPOT_ORDER, method="POST", ratio=spot_ratio)
    rig.fake.add_fault("partial_fill", PERP_ORDER, method="POST", ratio=perp_ratio)

    hedge = await rig.open()

    assert hedge is not None and hedge.state is HedgeState.OPEN
    rig.assert_balanced()
    await rig.assert_ledger_matches(hedge)
    records = await rig.ledger.orders.for_hedge(hedge.id)
    opens = [o for o in records if o.purpose is OrderPurpose.OPEN]
    assert {o.status for o in opens} == {OrderStatus.EXPIRED}  # partial market orders expire
    assert [o for o in records if o.purpose is fix and o.leg is Leg.SPOT]
    assert rig.server_short() == hedge.perp_quantity > 0


@pytest.mark.parametrize(
    ("limited", "other"), [(SPOT_ORDER, PERP_ORDER), (PERP_ORDER, SPOT_ORDER)], ids=["spot", "perp"]
)
async def test_open_leg_rate_limited_unwinds_the_filled_leg_and_fails_flat(
    rig_factory: RigFactory, limited: str, other: str
) -> None:
    rig = await rig_factory()
    rig.fake.add_fault("rate_limit", limited, method="POST", retry_after=5)

    hedge = await rig.open()

    assert hedge is not None and hedge.state is HedgeState.FAILED
    assert "-1003" in (hedge.close_reason or "") or "429" in (hedge.close_reason or "")
    assert len(rig.requests(limited, "POST")) == 1  # never re-sent
    assert len(rig.requests(other, "POST")) == 2  # the open, then its unwind
    rig.assert_flat()
    await rig.assert_ledger_matches(hedge)
    statuses = {(o.purpose, o.status) for o in await rig.ledger.orders.for_hedge(hedge.id)}
    assert statuses == {
        (OrderPurpose.OPEN, OrderStatus.REJECTED),
        (OrderPurpose.OPEN, OrderStatus.FILLED),
        (OrderPurpose.UNWIND, OrderStatus.FILLED),
    }


async def test_open_perp_lost_before_processing_is_confirmed_absent_after_recv_window(
    rig_factory: RigFactory,
) -> None:
    rig = await rig_factory()
    rig.fake.add_fault("server_error", PERP_ORDER, method="POST", status=503)  # not processed

    hedge = await rig.open()

    assert hedge is not None and hedge.state is HedgeState.FAILED
    (post,) = rig.requests(PERP_ORDER, "POST")
    lookups = rig.requests(PERP_ORDER, "GET")
    assert {r.params["origClientOrderId"] for r in lookups} == {f"cb-{hedge.uid}-po1"}
    assert lookups[-1].clock_at - post.clock_at >= 5 + 2  # recvWindow + margin, then absent
    assert rig.server_orders(rig.pair.perp.symbol) == []
    rig.assert_flat()
    await rig.assert_ledger_matches(hedge)
    perp = next(o for o in await rig.ledger.orders.for_hedge(hedge.id) if o.leg is Leg.PERP)
    assert (perp.status, perp.error_code) == (OrderStatus.REJECTED, -2013)
