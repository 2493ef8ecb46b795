"""Open and close over the live adapter in one-way and hedge mode: the exact wire parameters.

Each test also checks, on the fake's own account, that the legs stay within one step of
each other and end flat, and that the ledger agrees with the server order for order.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from bot.domain import HedgeState, Leg, OrderPurpose, OrderStatus, PositionMode
from tests.integration.execution.rig import PERP_ORDER, SPOT_ORDER, RigFactory

D = Decimal
pytestmark = pytest.mark.postgres
MODES = [PositionMode.ONE_WAY, PositionMode.HEDGE]


def _short_side(mode: PositionMode) -> dict[str, str]:
    return {"positionSide": "SHORT"} if mode is PositionMode.HEDGE else {}


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.value)
async def test_executor_open_sends_spot_quantity_and_perp_sell_with_mode_flags(
    rig_factory: RigFactory, mode: PositionMode
) -> None:
    rig = await rig_factory(mode=mode)

    hedge = await rig.open("1000")

    assert hedge is not None and hedge.state is HedgeState.OPEN
    cid = f"cb-{hedge.uid}-"
    assert rig.order_posts(SPOT_ORDER) == [
        {
            "symbol": "BTCUSDT",
            "side": "BUY",
            "type": "MARKET",
            "quantity": "0.01902",  # 0.019 grossed up for the 0.1 % fee paid in BTC
            "newClientOrderId": cid + "so1",
            "newOrderRespType": "FULL",
        }
    ]
    assert rig.order_posts(PERP_ORDER) == [
        {
            "symbol": rig.pair.perp.exchange_symbol,
            "side": "SELL",
            "type": "MARKET",
            "quantity": "0.019",
            "newClientOrderId": cid + "po1",
            "newOrderRespType": "RESULT",
            **_short_side(mode),
        }
    ]
    assert rig.server_short() == D("0.019")
    assert rig.server_spot() == D("0.01902") - D("0.00001902")
    rig.assert_balanced()
    await rig.assert_ledger_matches(hedge)
    assert [t.to_state for t in await rig.ledger.hedges.transitions(hedge.id)] == [
        "opening",
        "open",
    ]


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.value)
async def test_executor_close_sends_mode_close_flags_and_ends_flat(
    rig_factory: RigFactory, mode: PositionMode
) -> None:
    rig = await rig_factory(mode=mode)
    hedge = await rig.open("1000")
    assert hedge is not None
    rig.fake.clear_requests()

    closed = await rig.executor.close(hedge, rig.pair, reason="exit")

    assert closed.state is HedgeState.CLOSED
    cid = f"cb-{hedge.uid}-"
    assert rig.order_posts(SPOT_ORDER) == [
        {
            "symbol": "BTCUSDT",
            "side": "SELL",
            "type": "MARKET",
            "quantity": "0.019",
            "newClientOrderId": cid + "sc1",
            "newOrderRespType": "FULL",
        }
    ]
    close_flags = (
        {"positionSide": "SHORT"} if mode is PositionMode.HEDGE else {"reduceOnly": "true"}
    )
    assert rig.order_posts(PERP_ORDER) == [
        {
            "symbol": rig.pair.perp.exchange_symbol,
            "side": "BUY",
            "type": "MARKET",
            "quantity": "0.019",
            "newClientOrderId": cid + "pc1",
            "newOrderRespType": "RESULT",
            **close_flags,
        }
    ]
    rig.assert_flat()
    await rig.assert_ledger_matches(closed)
    orders = await rig.ledger.orders.for_hedge(hedge.id)
    assert sorted((o.purpose, o.leg, o.status) for o in orders) == [
        (OrderPurpose.CLOSE, Leg.PERP, OrderStatus.FILLED),
        (OrderPurpose.CLOSE, Leg.SPOT, OrderStatus.FILLED),
        (OrderPurpose.OPEN, Leg.PERP, OrderStatus.FILLED),
        (OrderPurpose.OPEN, Leg.SPOT, OrderStatus.FILLED),
    ]
