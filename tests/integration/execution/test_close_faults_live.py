"""Closing a hedge over the live adapter when the perpetual's close is rejected.

A close adapts to what the exchange says and never re-opens anything: it ends CLOSED and
flat on the server's own account, with the ledger agreeing with the server.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from bot.domain import (
    HedgeState,
    Leg,
    OrderPurpose,
    OrderRequest,
    OrderStatus,
    OrderType,
    PositionMode,
    PositionSide,
    Side,
)
from tests.integration.execution.rig import PERP_ORDER, SPOT_ORDER, RigFactory

D = Decimal
pytestmark = pytest.mark.postgres
MODES = [PositionMode.ONE_WAY, PositionMode.HEDGE]


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.value)
@pytest.mark.parametrize(
    ("by_hand", "sent", "statuses"),
    [
        ("0.005", ["0.019", "0.014"], [OrderStatus.REJECTED, OrderStatus.FILLED]),
        ("0.019", ["0.019"], [OrderStatus.REJECTED]),
    ],
    ids=["part", "all"],
)
async def test_close_after_short_reduced_by_hand_adapts_to_reduce_only_rejection_and_ends_flat(
    rig_factory: RigFactory,
    mode: PositionMode,
    by_hand: str,
    sent: list[str],
    statuses: list[OrderStatus],
) -> None:
    rig = await rig_factory(mode=mode)
    hedge = await rig.open()
    assert hedge is not None and hedge.state is HedgeState.OPEN
    hedge_mode = mode is PositionMode.HEDGE
    rig.fake.account.create_order(  # someone buys back part of the short on the exchange
        OrderRequest(
            rig.pair.perp.symbol,
            Side.BUY,
            OrderType.MARKET,
            D(by_hand),
            "manual-1",
            reduce_only=not hedge_mode,
            position_side=PositionSide.SHORT if hedge_mode else None,
        )
    )
    rig.fake.clear_requests()

    closed = await rig.executor.close(hedge, rig.pair, reason="exit")

    assert closed.state is HedgeState.CLOSED
    perp_posts = rig.order_posts(PERP_ORDER)
    assert {p["side"] for p in perp_posts} == {"BUY"}  # nothing re-opened
    assert [p["quantity"] for p in perp_posts] == sent
    assert [p["side"] for p in rig.order_posts(SPOT_ORDER)] == ["SELL"]
    rig.assert_flat()
    await rig.assert_ledger_matches(closed)
    closes = [
        o
        for o in await rig.ledger.orders.for_hedge(hedge.id)
        if o.leg is Leg.PERP and o.purpose is OrderPurpose.CLOSE
    ]
    assert [o.status for o in closes] == statuses
    assert closes[0].error_code == -2022
    assert await rig.ledger.events.recent(kind="hedge.drift")


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.value)
async def test_close_position_side_mismatch_redetects_the_mode_retries_and_closes(
    rig_factory: RigFactory, mode: PositionMode
) -> None:
    rig = await rig_factory(mode=mode)
    hedge = await rig.open()
    assert hedge is not None
    rig.fake.clear_requests()
    rig.fake.add_fault(
        "reject",
        PERP_ORDER,
        method="POST",
        code=-4061,
        msg="Order's position side does not match user's setting.",
    )

    closed = await rig.executor.close(hedge, rig.pair, reason="exit")

    assert closed.state is HedgeState.CLOSED
    perp_posts = rig.requests(PERP_ORDER, "POST")
    assert len(perp_posts) == 2
    detects = rig.requests("/fapi/v1/positionSide/dual", "GET")
    assert len(detects) == 1 and perp_posts[0].at < detects[0].at < perp_posts[1].at
    expected = {"positionSide": "SHORT"} if mode is PositionMode.HEDGE else {"reduceOnly": "true"}
    retry = rig.order_posts(PERP_ORDER)[1]
    assert {k: retry.get(k) for k in ("positionSide", "reduceOnly")} == {
        "positionSide": expected.get("positionSide"),
        "reduceOnly": expected.get("reduceOnly"),
    }
    rig.assert_flat()
    await rig.assert_ledger_matches(closed)
