"""Rolling a dated hedge over the live adapter while the fake Binance misbehaves.

Every case runs on USDⓈ-M quarterlies (`fapi`) and COIN-M quarterlies (`dapi`), in one-way
and hedge mode. A roll keeps the spot (COIN-M: the coin stays in the COIN-M wallet, no
transfer) and ends with one short, on the next quarter or (when the roll cannot be done)
on the near one, hedging the spot within one step (`max_unhedged_usd` for COIN-M), or
everything flat when no short can be kept; never a naked spot, never two shorts.

Databases: the storage is the same repository code on both backends, and most cases differ
only in what the fake does to the orders, so they run on SQLite alone (`SQLITE_ONLY`). The
cases whose recovery re-reads and rewrites the ledger (a roll left pending with
`roll_to`, finished by recovery or by start-up reconciliation from the rows written
before the orders were sent) also run on PostgreSQL, where its types and transactions
could differ.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from bot.domain import (
    HedgeState,
    OrderPurpose,
    OrderRequest,
    OrderType,
    PositionMode,
    PositionSide,
    Side,
)
from bot.domain.hedge import ROLL_TO
from bot.errors import InsufficientFunds
from bot.reconcile import Reconciler
from tests.integration.execution.roll_rig import RollRig, RollRigFactory

D = Decimal
# Overrides the `migrated_url` fixture's two backends for the cases that do not need both.
SQLITE_ONLY = pytest.mark.parametrize("migrated_url", ["sqlite"], indirect=True)
MODES = [PositionMode.ONE_WAY, PositionMode.HEDGE]
ROLL_CLOSE, ROLL_OPEN = OrderPurpose.ROLL_CLOSE, OrderPurpose.ROLL_OPEN


async def purposes(rig: RollRig, hedge_id: int) -> list[tuple[OrderPurpose, str]]:
    return [(o.purpose, o.symbol) for o in await rig.ledger.orders.for_hedge(hedge_id)]


async def assert_rolled(rig: RollRig, hedge_id: int, spot_before: Decimal) -> None:
    got = await rig.ledger.hedges.get(hedge_id)
    assert got is not None
    assert (got.state, got.perp_symbol) == (HedgeState.OPEN, rig.next.perp.symbol)
    assert ROLL_TO not in got.metrics and got.metrics["rolled_from"] == rig.near.perp.symbol
    assert got.spot_quantity == spot_before  # the spot (COIN-M: the coin) was kept
    rig.assert_hedged_on(rig.next, rig.limit)
    assert rig.transfers() == 0  # COIN-M: the coin margins both shorts, never moved
    await rig.assert_ledger_matches(got)


@SQLITE_ONLY
@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.value)
async def test_a_roll_buys_back_the_near_short_and_sells_the_next_at_once(
    roll_rig_factory: RollRigFactory, mode: PositionMode
) -> None:
    rig = await roll_rig_factory(mode=mode)
    hedge = await rig.open()

    await rig.roll(hedge)

    (close,) = rig.posts(rig.near_id)
    (sell,) = rig.posts(rig.next_id)
    assert (close["side"], sell["side"]) == ("BUY", "SELL")
    if mode is PositionMode.HEDGE:
        assert close["positionSide"] == sell["positionSide"] == "SHORT"
        assert "reduceOnly" not in close  # Binance rejects it in hedge mode
    else:
        assert close["reduceOnly"] == "true" and "positionSide" not in close
        assert "reduceOnly" not in sell and "positionSide" not in sell
    assert D(close["quantity"]) == hedge.perp_quantity
    if rig.venue == "dapi":  # recomputed from the coin's USD value at the next bid
        assert D(sell["quantity"]) == round(hedge.spot_quantity * D("51000.0") / 100)
    else:
        assert D(sell["quantity"]) == hedge.perp_quantity
    sent = [r for r in rig.fake.requests_to(rig.order_path, "POST")]
    assert abs(sent[0].at - sent[1].at) < 0.5  # both legs at once (perf_counter seconds)
    await assert_rolled(rig, hedge.id, hedge.spot_quantity)
    (rolled,) = await rig.ledger.events.recent(kind="hedge.rolled")
    assert rolled.data["leg_gap_ms"] is not None


@SQLITE_ONLY
@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.value)
async def test_new_short_rejected_after_the_buy_back_filled_is_retried_then_rolls(
    roll_rig_factory: RollRigFactory, mode: PositionMode
) -> None:
    rig = await roll_rig_factory(mode=mode)
    hedge = await rig.open()
    rig.fake.add_fault("reject", rig.order_path, method="POST", symbol=rig.next_id, code=-1000)

    await rig.roll(hedge)

    assert [p for p, s in await purposes(rig, hedge.id)].count(ROLL_OPEN) == 2
    await assert_rolled(rig, hedge.id, hedge.spot_quantity)


@SQLITE_ONLY
@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.value)
async def test_new_short_never_filling_sells_the_spot_rather_than_leave_it_naked(
    roll_rig_factory: RollRigFactory, mode: PositionMode
) -> None:
    rig = await roll_rig_factory(mode=mode)
    hedge = await rig.open()
    rig.fake.add_fault(
        "reject", rig.order_path, method="POST", symbol=rig.next_id, code=-2019, times=None
    )

    after = await rig.roll(hedge)

    assert after.state is HedgeState.CLOSED
    assert "failed after the buy-back" in (after.close_reason or "")
    rig.assert_flat()
    await rig.assert_ledger_matches(after)
    (failed,) = await rig.ledger.events.recent(kind="hedge.roll_failed")
    assert failed.severity.value == "alert"


@SQLITE_ONLY
@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.value)
async def test_buy_back_rejected_after_the_new_short_filled_is_retried_then_rolls(
    roll_rig_factory: RollRigFactory, mode: PositionMode
) -> None:
    rig = await roll_rig_factory(mode=mode)
    hedge = await rig.open()
    rig.fake.add_fault("reject", rig.order_path, method="POST", symbol=rig.near_id, code=-1000)

    await rig.roll(hedge)

    closes = [p for p, s in await purposes(rig, hedge.id) if s == rig.near.perp.symbol]
    assert closes.count(ROLL_CLOSE) == 2  # the double short reduced by the retry
    await assert_rolled(rig, hedge.id, hedge.spot_quantity)


@SQLITE_ONLY
@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.value)
async def test_buy_back_never_filling_buys_the_new_short_back_no_double_short(
    roll_rig_factory: RollRigFactory, mode: PositionMode
) -> None:
    rig = await roll_rig_factory(mode=mode)
    hedge = await rig.open()
    rig.fake.add_fault(
        "reject", rig.order_path, method="POST", symbol=rig.near_id, code=-1000, times=None
    )

    after = await rig.roll(hedge)

    assert (after.state, after.perp_symbol) == (HedgeState.OPEN, rig.near.perp.symbol)
    assert after.perp_quantity == hedge.perp_quantity and ROLL_TO not in after.metrics
    assert (OrderPurpose.TRIM, rig.next.perp.symbol) in await purposes(rig, hedge.id)
    rig.assert_hedged_on(rig.near, rig.limit)
    assert rig.short(rig.near) == hedge.perp_quantity
    await rig.assert_ledger_matches(after)
    assert await rig.ledger.events.recent(kind="hedge.roll_failed")


@SQLITE_ONLY
@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.value)
async def test_both_legs_of_the_roll_rejected_leave_the_hedge_as_it_was(
    roll_rig_factory: RollRigFactory, mode: PositionMode
) -> None:
    rig = await roll_rig_factory(mode=mode)
    hedge = await rig.open()
    rig.fake.add_fault("reject", rig.order_path, method="POST", code=-1000, times=None)

    after = await rig.roll(hedge)

    assert (after.state, after.perp_symbol) == (HedgeState.OPEN, rig.near.perp.symbol)
    assert (after.perp_quantity, after.spot_quantity) == (hedge.perp_quantity, hedge.spot_quantity)
    assert ROLL_TO not in after.metrics
    assert rig.short(rig.near) == hedge.perp_quantity and rig.short(rig.next) == 0
    await rig.assert_ledger_matches(after)


@SQLITE_ONLY
@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.value)
@pytest.mark.parametrize("leg", ["near", "next"])
async def test_a_lost_roll_response_is_looked_up_by_client_id_and_never_resent(
    roll_rig_factory: RollRigFactory, mode: PositionMode, leg: str
) -> None:
    rig = await roll_rig_factory(mode=mode)
    hedge = await rig.open()
    symbol = rig.near_id if leg == "near" else rig.next_id
    rig.fake.add_fault("drop", rig.order_path, method="POST", symbol=symbol)  # done, unanswered

    await rig.roll(hedge)

    assert len(rig.posts(symbol)) == 1
    lookups = [
        r for r in rig.fake.requests_to(rig.order_path, "GET") if "origClientOrderId" in r.params
    ]
    assert lookups
    await assert_rolled(rig, hedge.id, hedge.spot_quantity)


@pytest.mark.postgres
@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.value)
async def test_an_unresolvable_roll_order_waits_then_recovery_finishes_the_roll(
    roll_rig_factory: RollRigFactory, mode: PositionMode
) -> None:
    rig = await roll_rig_factory(mode=mode)
    hedge = await rig.open()
    rig.fake.add_fault("drop", rig.order_path, method="POST", symbol=rig.next_id)
    rig.fake.add_fault("server_error", rig.order_path, method="GET", times=None)

    pending = await rig.roll(hedge)

    assert pending.state is HedgeState.OPEN and pending.metrics[ROLL_TO] == rig.next.perp.symbol
    assert rig.short(rig.next) > 0  # the exchange did it; the bot cannot tell yet
    assert await rig.ledger.events.recent(kind="hedge.unresolved")
    rig.fake.faults.clear()

    await rig.executor.recover(pending, rig.near, roll_into=rig.next)

    assert len(rig.posts(rig.next_id)) == 1  # resolved by client id, not sent again
    await assert_rolled(rig, hedge.id, hedge.spot_quantity)


@SQLITE_ONLY
@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.value)
@pytest.mark.parametrize("leg", ["near", "next"])
async def test_a_partly_filled_roll_order_is_completed(
    roll_rig_factory: RollRigFactory, mode: PositionMode, leg: str
) -> None:
    rig = await roll_rig_factory(mode=mode)
    hedge = await rig.open()
    symbol = rig.near_id if leg == "near" else rig.next_id
    rig.fake.add_fault("partial_fill", rig.order_path, method="POST", symbol=symbol, ratio="0.5")

    await rig.roll(hedge)

    assert len(rig.posts(symbol)) == 2  # the rest traded again
    await assert_rolled(rig, hedge.id, hedge.spot_quantity)


@pytest.mark.postgres
@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.value)
async def test_reconciliation_at_start_up_finishes_an_unresolved_roll_first(
    roll_rig_factory: RollRigFactory, mode: PositionMode
) -> None:
    rig = await roll_rig_factory(mode=mode)
    hedge = await rig.open()
    rig.fake.add_fault("drop", rig.order_path, method="POST", symbol=rig.near_id)
    rig.fake.add_fault("server_error", rig.order_path, method="GET", times=None)
    pending = await rig.roll(hedge)
    assert pending.metrics[ROLL_TO] == rig.next.perp.symbol
    rig.fake.faults.clear()
    pairs = {p.perp.symbol: p for p in (rig.near, rig.next)}
    reconciler = Reconciler(rig.live, rig.ledger, rig.executor, rig.clock, rig.ledger.events, pairs)

    report = await reconciler.run(startup=True)

    assert report.recovered_hedges == [hedge.id]
    assert report.drift == [] and report.errors == [] and report.unowned_positions == []
    assert len(rig.posts(rig.near_id)) == 1  # resolved by client id, not sent again
    await assert_rolled(rig, hedge.id, hedge.spot_quantity)


async def refused_for_margin(rig: RollRig, mode: PositionMode, quantity: Decimal) -> bool:
    """Whether the fake refuses the new short at 2x (-2019) while the old one is held."""
    rig.fake.account.set_leverage(rig.next.perp.symbol, 2)
    request = OrderRequest(
        rig.next.perp.symbol,
        Side.SELL,
        OrderType.MARKET,
        quantity,
        "probe-1",
        position_side=PositionSide.SHORT if mode is PositionMode.HEDGE else None,
    )
    try:
        await rig.live.create_order(request)
    except InsufficientFunds as exc:
        return exc.code == -2019
    return False


# Leverage 2 (the default); fapi: 900 USDT in the USDⓈ-M wallet carries one 1000 USDT short
# (500 margin, 625 with margin_buffer), not two; dapi: the hedge's own coin margins it.
LEVERAGE_2 = {"leverage": 2, "futures_usdt": D(900)}


@SQLITE_ONLY
@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.value)
async def test_at_leverage_2_both_shorts_do_not_fit_so_the_buy_back_goes_first(
    roll_rig_factory: RollRigFactory, mode: PositionMode
) -> None:
    rig = await roll_rig_factory(mode=mode, **LEVERAGE_2)
    hedge = await rig.open()
    assert await refused_for_margin(
        rig, mode, hedge.perp_quantity if rig.venue == "fapi" else D(10)
    )
    rig.fake.clear_requests()

    await rig.roll(hedge)

    sent = [r.params["symbol"] for r in rig.fake.requests_to(rig.order_path, "POST")]
    assert sent == [rig.near_id, rig.next_id]  # one after the other, nothing refused
    orders = await rig.ledger.orders.for_hedge(hedge.id)
    assert all(o.error_code is None for o in orders)
    await assert_rolled(rig, hedge.id, hedge.spot_quantity)
    (rolled,) = await rig.ledger.events.recent(kind="hedge.rolled")
    assert "free beside the old short" in str(rolled.data["sequential"])
    assert rolled.data["naked_ms"] is not None and rolled.data["leg_gap_ms"] is not None


@SQLITE_ONLY
@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.value)
async def test_at_leverage_2_a_new_short_refused_after_the_buy_back_sells_the_spot(
    roll_rig_factory: RollRigFactory, mode: PositionMode
) -> None:
    rig = await roll_rig_factory(mode=mode, **LEVERAGE_2)
    hedge = await rig.open()
    rig.fake.add_fault(
        "reject", rig.order_path, method="POST", symbol=rig.next_id, code=-1013, times=None
    )

    after = await rig.roll(hedge)

    assert after.state is HedgeState.CLOSED  # the spot was naked: sold, never left
    assert "failed after the buy-back" in (after.close_reason or "")
    rig.assert_flat()
    await rig.assert_ledger_matches(after)


@SQLITE_ONLY
async def test_a_roll_into_a_contract_that_does_not_trade_is_denied_then_cools_down(
    roll_rig_factory: RollRigFactory,
) -> None:
    rig = await roll_rig_factory()
    hedge = await rig.open()
    rig.next = replace(rig.next, perp=replace(rig.next.perp, active=False, status="SETTLING"))

    first = await rig.roll(hedge)
    again = await rig.roll(first)  # the next cycle: still cooling down

    assert rig.posts(rig.near_id) == [] and rig.posts(rig.next_id) == []
    assert (again.perp_symbol, again.perp_quantity) == (rig.near.perp.symbol, hedge.perp_quantity)
    (denied,) = await rig.ledger.events.recent(kind="hedge.roll_denied")
    assert "status SETTLING" in denied.message and denied.data["retry_seconds"] == 60
    assert rig.executor.roll_blocked(hedge.id) is not None


@pytest.mark.postgres
@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.value)
async def test_at_leverage_2_an_unresolvable_buy_back_waits_then_recovery_sells_the_new_short(
    roll_rig_factory: RollRigFactory, mode: PositionMode
) -> None:
    """Buy-back first, its answer lost and no look-up answered: the new short is not sent
    (its order is not even written); recovery resolves the buy-back by client id, then sells
    the new short."""
    rig = await roll_rig_factory(mode=mode, **LEVERAGE_2)
    hedge = await rig.open()
    rig.fake.add_fault("drop", rig.order_path, method="POST", symbol=rig.near_id)
    rig.fake.add_fault("server_error", rig.order_path, method="GET", times=None)

    pending = await rig.roll(hedge)

    assert pending.metrics[ROLL_TO] == rig.next.perp.symbol
    assert rig.posts(rig.next_id) == [] and rig.short(rig.near) == 0  # done, unknown to the bot
    assert ROLL_OPEN not in [p for p, _ in await purposes(rig, hedge.id)]
    rig.fake.faults.clear()

    await rig.executor.recover(pending, rig.near, roll_into=rig.next)

    assert len(rig.posts(rig.near_id)) == 1  # resolved by client id, not sent again
    await assert_rolled(rig, hedge.id, hedge.spot_quantity)
