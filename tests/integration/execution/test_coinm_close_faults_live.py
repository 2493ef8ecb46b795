"""Closing a COIN-M hedge over the live adapter, when a step of the close fails.

The COIN-M counterpart of `test_close_faults_live.py`, plus the transfer back. A close never
re-opens anything and never moves the coin while it still margins a short; it ends CLOSED
and flat on the server's own account, or CLOSING with an alert and finishes next time.
"""

from __future__ import annotations

from datetime import timedelta
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
from bot.domain.ledger import TransferStatus
from bot.execution.coinm_margin import margin_of
from bot.execution.delivery import settle_delivered
from tests.integration.execution.coinm_rig import DAPI_ORDER, SPOT_ORDER, TRANSFER, CoinmRigFactory

D = Decimal
pytestmark = pytest.mark.postgres
MODES = [PositionMode.ONE_WAY, PositionMode.HEDGE]
IN, OUT = "MAIN_CMFUTURE", "CMFUTURE_MAIN"
DONE, FAILED = TransferStatus.DONE, TransferStatus.FAILED


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.value)
async def test_close_buys_back_reduce_only_moves_the_coin_back_and_sells_it(
    coinm_rig_factory: CoinmRigFactory, mode: PositionMode
) -> None:
    rig = await coinm_rig_factory(mode=mode)
    hedge = await rig.open()
    assert hedge is not None
    rig.fake.clear_requests()

    closed = await rig.executor.close(hedge, rig.pair, reason="exit")

    assert closed.state is HedgeState.CLOSED
    (buy_back,) = rig.order_posts(DAPI_ORDER)
    assert (buy_back["side"], buy_back["quantity"]) == ("BUY", "10")
    if mode is PositionMode.HEDGE:
        assert buy_back["positionSide"] == "SHORT" and "reduceOnly" not in buy_back
    else:
        assert buy_back["reduceOnly"] == "true" and "positionSide" not in buy_back
    assert rig.transfers() == [OUT]
    assert [p["side"] for p in rig.order_posts(SPOT_ORDER)] == ["SELL"]
    order = [r.path for r in rig.fake.requests if r.method == "POST"]
    assert order.index(DAPI_ORDER) < order.index(TRANSFER) < order.index(SPOT_ORDER)
    rig.assert_flat()
    await rig.assert_ledger_matches(closed)


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.value)
@pytest.mark.parametrize(
    ("by_hand", "sent", "statuses"),
    [
        ("3", ["10", "7"], [OrderStatus.REJECTED, OrderStatus.FILLED]),
        ("10", ["10"], [OrderStatus.REJECTED]),
    ],
    ids=["part", "all"],
)
async def test_close_after_short_reduced_by_hand_adapts_to_reduce_only_rejection_and_ends_flat(
    coinm_rig_factory: CoinmRigFactory,
    mode: PositionMode,
    by_hand: str,
    sent: list[str],
    statuses: list[OrderStatus],
) -> None:
    rig = await coinm_rig_factory(mode=mode)
    hedge = await rig.open()
    assert hedge is not None and hedge.state is HedgeState.OPEN
    hedged = mode is PositionMode.HEDGE
    rig.fake.account.create_order(  # someone buys back part of the short on the exchange
        OrderRequest(
            rig.pair.perp.symbol,
            Side.BUY,
            OrderType.MARKET,
            D(by_hand),
            "manual-1",
            reduce_only=not hedged,
            position_side=PositionSide.SHORT if hedged else None,
        )
    )
    rig.fake.clear_requests()

    closed = await rig.executor.close(hedge, rig.pair, reason="exit")

    assert closed.state is HedgeState.CLOSED
    posts = rig.order_posts(DAPI_ORDER)
    assert {p["side"] for p in posts} == {"BUY"}  # nothing re-opened
    assert [p["quantity"] for p in posts] == sent
    assert rig.transfers() == [OUT]
    assert [p["side"] for p in rig.order_posts(SPOT_ORDER)] == ["SELL"]
    assert rig.server_short() == 0 and rig.server_spot() < rig.pair.spot.step_size
    closes = [
        o
        for o in await rig.ledger.orders.for_hedge(hedge.id)
        if o.leg is Leg.PERP and o.purpose is OrderPurpose.CLOSE
    ]
    assert [o.status for o in closes] == statuses
    assert closes[0].error_code == -2022
    assert await rig.ledger.events.recent(kind="hedge.drift")


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.value)
async def test_close_position_side_mismatch_redetects_the_coinm_mode_retries_and_closes(
    coinm_rig_factory: CoinmRigFactory, mode: PositionMode
) -> None:
    rig = await coinm_rig_factory(mode=mode)
    hedge = await rig.open()
    assert hedge is not None
    rig.fake.clear_requests()
    rig.fake.add_fault(
        "reject",
        DAPI_ORDER,
        method="POST",
        code=-4061,
        msg="Order's position side does not match user's setting.",
    )

    closed = await rig.executor.close(hedge, rig.pair, reason="exit")

    assert closed.state is HedgeState.CLOSED
    posts = rig.requests(DAPI_ORDER, "POST")
    assert len(posts) == 2
    detects = rig.requests("/dapi/v1/positionSide/dual", "GET")  # COIN-M's own mode
    assert len(detects) == 1 and posts[0].at < detects[0].at < posts[1].at
    assert rig.requests("/fapi/v1/positionSide/dual", "GET") == []
    rig.assert_flat()
    await rig.assert_ledger_matches(closed)


async def test_close_buy_back_failing_keeps_the_coin_as_margin_and_retries_next_time(
    coinm_rig_factory: CoinmRigFactory,
) -> None:
    rig = await coinm_rig_factory()
    hedge = await rig.open()
    assert hedge is not None
    rig.fake.clear_requests()
    rig.fake.add_fault("server_error", DAPI_ORDER, method="POST", status=503, times=5)

    first = await rig.executor.close(hedge, rig.pair, reason="exit")

    assert first.state is HedgeState.CLOSING
    assert rig.transfers() == [] and rig.order_posts(SPOT_ORDER) == []  # coin untouched
    assert rig.server_short() == 10 and margin_of(first) > 0
    assert await rig.ledger.events.recent(kind="hedge.close_incomplete")

    second = await rig.executor.close(first, rig.pair, reason="exit")

    assert second.state is HedgeState.CLOSED
    rig.assert_flat()
    await rig.assert_ledger_matches(second)


async def test_close_transfer_back_failing_stays_closing_then_completes(
    coinm_rig_factory: CoinmRigFactory,
) -> None:
    rig = await coinm_rig_factory()
    hedge = await rig.open()
    assert hedge is not None
    rig.fake.clear_requests()
    rig.fake.add_fault("server_error", TRANSFER, method="POST", status=503, times=5)

    first = await rig.executor.close(hedge, rig.pair, reason="exit")

    assert first.state is HedgeState.CLOSING
    assert rig.server_short() == 0 and rig.server_coinm() > 0  # bought back, coin still there
    assert rig.order_posts(SPOT_ORDER) == []  # nothing sold that is not in the spot wallet
    assert await rig.ledger.events.recent(kind="hedge.transfer_failed")

    second = await rig.executor.close(first, rig.pair, reason="exit")

    assert second.state is HedgeState.CLOSED
    assert rig.transfers() == [OUT] * 6
    rows = await rig.transfer_rows(hedge.id)
    assert rows == [("coinm", DONE)] + [("spot", FAILED)] * 5 + [("spot", DONE)]
    rig.assert_flat()
    await rig.assert_ledger_matches(second)


async def test_close_transfer_back_lost_is_resolved_by_balance(
    coinm_rig_factory: CoinmRigFactory,
) -> None:
    rig = await coinm_rig_factory()
    hedge = await rig.open()
    assert hedge is not None
    rig.fake.clear_requests()
    rig.fake.add_fault("drop", TRANSFER, method="POST")

    closed = await rig.executor.close(hedge, rig.pair, reason="exit")

    assert closed.state is HedgeState.CLOSED
    assert rig.transfers() == [OUT]
    assert await rig.transfer_rows(hedge.id) == [
        ("coinm", DONE),
        ("spot", TransferStatus.DONE_BY_BALANCE),
    ]
    rig.assert_flat()


@pytest.mark.parametrize("coinm_future", ["quarterly"])  # a perpetual is never delivered
async def test_a_short_delivered_by_the_exchange_is_settled_then_its_coin_moved_back_and_sold(
    coinm_rig_factory: CoinmRigFactory,
) -> None:
    rig = await coinm_rig_factory()
    hedge = await rig.open()
    assert hedge is not None and hedge.state is HedgeState.OPEN
    expiry = rig.pair.perp.expiry
    assert expiry is not None
    rig.clock.advance(expiry - rig.clock.now() + timedelta(minutes=5))
    rig.fake.deliver(rig.pair.perp.symbol, "50000")  # Binance closes the short at delivery
    rig.fake.clear_requests()

    settled = await settle_delivered(
        hedge, rig.pair, rig.live, rig.ledger, rig.clock, rig.ledger.events
    )
    assert (settled.perp_quantity, settled.exit_perp_price) == (D(0), D("50000"))
    closed = await rig.executor.close(settled, rig.pair, reason="delivered")

    assert closed.state is HedgeState.CLOSED
    assert rig.order_posts(DAPI_ORDER) == []  # nothing to buy back
    assert rig.transfers() == [OUT]
    rig.assert_flat()  # the delivery's coin P&L came back with the margin
    pnl = D(closed.metrics["coin_pnl"])
    assert pnl == (1000 * (1 / D("50000") - 1 / D("51000.0"))).quantize(D("0.00000001")) - (
        1000 / D("51000.0") * D("0.0005")
    ).quantize(D("0.00000001"))
