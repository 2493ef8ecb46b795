"""Shrinking a COIN-M hedge in whole contracts over the live adapter on the fake Binance.

Leg after leg: buy the contracts beyond the target back, move the coin they no longer need
back to spot, sell it. Each step failing leaves nothing naked: no contract bought back →
unchanged; the transfer failing → the coin stays in the COIN-M wallet with an alert and
goes back at the close. Both position modes; the quarterly and the perpetual
(`coinm_future`).
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from bot.domain import Hedge, HedgeState, PositionMode
from bot.domain.ledger import TransferStatus
from bot.execution.coinm_margin import margin_of
from tests.integration.execution.coinm_rig import (
    DAPI_ORDER,
    SPOT_ORDER,
    TRANSFER,
    CoinmRig,
    CoinmRigFactory,
)

D = Decimal
pytestmark = pytest.mark.postgres
MODES = [PositionMode.ONE_WAY, PositionMode.HEDGE]
OUT = "CMFUTURE_MAIN"


async def _open(rig: CoinmRig) -> Hedge:
    hedge = await rig.open("1000")  # 10 contracts
    assert hedge is not None and hedge.perp_quantity == 10
    return hedge


async def _resize(rig: CoinmRig, hedge: Hedge, notional: str) -> Hedge:
    spot_q, perp_q = await rig.quotes()
    rig.fake.clear_requests()
    return await rig.executor.resize(
        hedge, rig.pair, D(notional), reason="risk", spot_quote=spot_q, perp_quote=perp_q
    )


async def _open_then_resize(rig: CoinmRig, notional: str) -> tuple[Hedge, Hedge]:
    hedge = await _open(rig)
    return hedge, await _resize(rig, hedge, notional)


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.value)
async def test_shrink_buys_back_whole_contracts_moves_their_coin_back_and_sells_it(
    coinm_rig_factory: CoinmRigFactory, mode: PositionMode
) -> None:
    rig = await coinm_rig_factory(mode=mode)

    before, hedge = await _open_then_resize(rig, "550")  # 5 whole contracts of 100 USD

    assert hedge.state is HedgeState.OPEN and hedge.perp_quantity == 5 == rig.server_short()
    (buy_back,) = rig.order_posts(DAPI_ORDER)
    assert (buy_back["side"], buy_back["quantity"]) == ("BUY", "5")
    if mode is PositionMode.HEDGE:
        assert buy_back["positionSide"] == "SHORT" and "reduceOnly" not in buy_back
    else:
        assert buy_back["reduceOnly"] == "true" and "positionSide" not in buy_back
    assert rig.transfers() == [OUT]
    assert [p["side"] for p in rig.order_posts(SPOT_ORDER)] == ["SELL"]
    order = [r.path for r in rig.fake.requests if r.method == "POST"]
    assert order.index(DAPI_ORDER) < order.index(TRANSFER) < order.index(SPOT_ORDER)
    assert (hedge.target_quantity, hedge.target_notional) == (D(5), D(500))
    assert margin_of(hedge) < margin_of(before)
    assert 0 < D(hedge.metrics["unhedged_usd"]) <= rig.limit
    rows = await rig.ledger.transfers.for_hedges([hedge.id])
    assert [(t.to_wallet, t.status) for t in rows] == [
        ("coinm", TransferStatus.DONE),
        ("spot", TransferStatus.DONE),
    ]
    assert rows[1].reason.startswith("resize:")
    await rig.assert_ledger_matches(hedge)  # balanced within max_unhedged_usd

    closed = await rig.executor.close(hedge, rig.pair, reason="exit")
    assert closed.state is HedgeState.CLOSED
    rig.assert_flat()


async def test_shrink_below_one_contract_closes_the_hedge(
    coinm_rig_factory: CoinmRigFactory,
) -> None:
    rig = await coinm_rig_factory()

    _, hedge = await _open_then_resize(rig, "60")

    assert hedge.state is HedgeState.CLOSED
    rig.assert_flat()


async def test_shrink_whose_buy_back_is_rejected_leaves_the_hedge_as_it_was(
    coinm_rig_factory: CoinmRigFactory,
) -> None:
    rig = await coinm_rig_factory()
    before = await _open(rig)
    rig.fake.add_fault("reject", DAPI_ORDER, method="POST", code=-1003, times=None, msg="busy")

    hedge = await _resize(rig, before, "500")

    assert hedge.state is HedgeState.OPEN and hedge.perp_quantity == 10 == rig.server_short()
    assert rig.transfers() == [] and rig.order_posts(SPOT_ORDER) == []
    assert margin_of(hedge) == margin_of(before)
    assert await rig.ledger.events.recent(kind="hedge.resize_failed")
    await rig.assert_ledger_matches(hedge)


async def test_shrink_whose_transfer_fails_keeps_the_coin_with_an_alert_until_the_close(
    coinm_rig_factory: CoinmRigFactory,
) -> None:
    rig = await coinm_rig_factory()
    before = await _open(rig)
    failing = rig.fake.add_fault(
        "reject", TRANSFER, method="POST", code=-5013, times=None,
        msg="Asset transfer failed: insufficient balance",
    )  # fmt: skip

    hedge = await _resize(rig, before, "500")

    assert hedge.perp_quantity == 5 == rig.server_short()
    assert rig.order_posts(SPOT_ORDER) == []  # nothing sold that is not in the spot wallet
    assert margin_of(hedge) == margin_of(before)  # the coin is still the hedge's
    (resized,) = await rig.ledger.events.recent(kind="hedge.resized")
    assert resized.severity.value == "alert"  # ~500 USD of coin beyond the short
    assert await rig.ledger.events.recent(kind="hedge.transfer_failed")
    failing.times = 0

    closed = await rig.executor.close(hedge, rig.pair, reason="exit")

    assert closed.state is HedgeState.CLOSED
    rig.assert_flat()


async def test_a_coinm_hedge_asked_to_grow_is_kept_as_it_is(
    coinm_rig_factory: CoinmRigFactory,
) -> None:
    rig = await coinm_rig_factory()

    _, hedge = await _open_then_resize(rig, "2000")

    assert hedge.perp_quantity == 10 and rig.fake.requests_to(DAPI_ORDER, "POST") == []
    assert await rig.ledger.events.recent(kind="hedge.resize_denied")
