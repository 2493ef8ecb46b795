"""The hedge executor over the paper exchange and a real ledger: flows, sizing, partials."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal

import pytest

from bot.clock import SimulatedClock
from bot.domain import (
    Hedge,
    HedgeState,
    Leg,
    MarketKind,
    OrderPurpose,
    OrderRequest,
    OrderStatus,
    OrderType,
    Pair,
    PositionMode,
    PositionSide,
    Quote,
    Side,
    client_order_id,
)
from bot.domain.ledger import NewOrder
from bot.execution.sizing import SizingError, size_hedge
from bot.persistence.repositories import Ledger
from tests import kit
from tests.support.market_source import StaticMarketSource
from tests.support.paper_stack import Stack, build_stack

D = Decimal
pytestmark = pytest.mark.postgres


async def quotes(stack: Stack, pair: Pair) -> tuple[Quote, Quote]:
    spot = (await stack.source.fetch_best_quotes(MarketKind.SPOT))[pair.spot.symbol]
    perp = (await stack.source.fetch_best_quotes(MarketKind.PERPETUAL))[pair.perp.symbol]
    return spot, perp


async def open_btc(stack: Stack, notional: str = "1001", stale: Sequence[Quote] | None = None):  # type: ignore[no-untyped-def]
    pair = kit.pair("BTC")
    spot_q, perp_q = stale or await quotes(stack, pair)
    return await stack.executor.open(
        pair,
        D(notional),
        reason="test",
        metrics={"apr": D("0.2")},
        spot_quote=spot_q,
        perp_quote=perp_q,
    )


async def exposure(stack: Stack) -> tuple[Decimal, Decimal]:
    spot = (await stack.exchange.fetch_spot_balances()).get("BTC")
    short = sum((p.size for p in await stack.exchange.fetch_positions() if p.is_short), D(0))
    return (spot.total if spot else D(0)), short


async def test_open_fills_both_legs_with_equal_net_quantities(ledger: Ledger) -> None:
    stack = await build_stack(ledger)

    hedge = await open_btc(stack)

    assert hedge is not None and hedge.state is HedgeState.OPEN
    spot, short = await exposure(stack)
    assert short == D("0.02")
    assert spot == D("0.02003") - D("0.00002003")  # the buy is grossed up for the BTC fee
    assert abs(spot - short) <= D("0.001")
    assert (hedge.spot_quantity, hedge.perp_quantity) == (spot, short)
    orders = await ledger.orders.for_hedge(hedge.id)
    assert [(o.leg, o.purpose, o.status) for o in orders] == [
        (Leg.SPOT, OrderPurpose.OPEN, OrderStatus.FILLED),
        (Leg.PERP, OrderPurpose.OPEN, OrderStatus.FILLED),
    ]
    assert all(o.sent_at is not None and o.acked_at is not None for o in orders)
    assert len(await ledger.fills.for_hedge(hedge.id)) >= 2
    assert [t.to_state for t in await ledger.hedges.transitions(hedge.id)] == ["opening", "open"]


async def test_one_way_close_sends_reduce_only_and_ends_flat(ledger: Ledger) -> None:
    stack = await build_stack(ledger, mode=PositionMode.ONE_WAY)
    hedge = await open_btc(stack)
    assert hedge is not None

    closed = await stack.executor.close(hedge, kit.pair("BTC"), reason="exit")

    assert closed.state is HedgeState.CLOSED
    spot, short = await exposure(stack)
    assert short == 0 and spot < D("0.00001")
    close_perp = [
        o
        for o in await ledger.orders.for_hedge(hedge.id)
        if o.leg is Leg.PERP and o.purpose is OrderPurpose.CLOSE
    ]
    assert [(o.reduce_only, o.position_side) for o in close_perp] == [(True, None)]


async def test_hedge_mode_opens_and_closes_with_position_side_short_and_no_reduce_only(
    ledger: Ledger,
) -> None:
    stack = await build_stack(ledger, mode=PositionMode.HEDGE)
    hedge = await open_btc(stack)
    assert hedge is not None and hedge.state is HedgeState.OPEN

    closed = await stack.executor.close(hedge, kit.pair("BTC"), reason="exit")

    assert closed.state is HedgeState.CLOSED
    perp_orders = [o for o in await ledger.orders.for_hedge(hedge.id) if o.leg is Leg.PERP]
    assert [(o.purpose, o.reduce_only, o.position_side) for o in perp_orders] == [
        (OrderPurpose.OPEN, False, PositionSide.SHORT),
        (OrderPurpose.CLOSE, False, PositionSide.SHORT),
    ]


async def test_configured_mode_is_set_at_start_up_when_flat(ledger: Ledger) -> None:
    from bot.config import ExchangeConfig

    stack = await build_stack(
        ledger, mode=PositionMode.ONE_WAY, exchange_config=ExchangeConfig(position_mode="hedge")
    )

    assert await stack.exchange.fetch_position_mode() is PositionMode.HEDGE
    assert stack.setup.mode is PositionMode.HEDGE


async def test_partial_fills_at_different_ratios_are_equalised(ledger: Ledger) -> None:
    stack = await build_stack(ledger)
    # depth: spot 20 levels x 0.0006 = 0.012 BTC; perp 20 x 0.00075 = 0.015 BTC fillable
    stack.source.depth_qty = {"BTC/USDT": D("0.0006"), "BTC/USDT:USDT": D("0.00075")}

    hedge = await open_btc(stack)

    assert hedge is not None and hedge.state is HedgeState.OPEN
    spot, short = await exposure(stack)
    assert short == D("0.015")
    assert abs(spot - short) <= D("0.001")
    purposes = [o.purpose for o in await ledger.orders.for_hedge(hedge.id)]
    assert OrderPurpose.TOP_UP in purposes or OrderPurpose.TRIM in purposes


async def test_spot_rejected_unwinds_the_short_and_fails(ledger: Ledger) -> None:
    stack = await build_stack(ledger)
    stale = await quotes(stack, kit.pair("BTC"))
    stack.source.set_price("BTC", "1000000", perp_premium="-950000")  # spot now unaffordable

    hedge = await open_btc(stack, stale=stale)

    assert hedge is not None and hedge.state is HedgeState.FAILED
    assert await exposure(stack) == (D(0), D(0))
    assert "spot leg failed" in (hedge.close_reason or "")
    assert "-2010" in (hedge.close_reason or "")
    unwind = [
        o for o in await ledger.orders.for_hedge(hedge.id) if o.purpose is OrderPurpose.UNWIND
    ]
    assert [(o.leg, o.reduce_only, o.status) for o in unwind] == [
        (Leg.PERP, True, OrderStatus.FILLED)
    ]


async def test_perp_rejected_for_margin_unwinds_the_spot_and_fails(ledger: Ledger) -> None:
    stack = await build_stack(ledger)
    stale = await quotes(stack, kit.pair("BTC"))
    stack.source.set_price("BTC", "50000", perp_premium="1000000")  # short needs far more margin

    hedge = await open_btc(stack, stale=stale)

    assert hedge is not None and hedge.state is HedgeState.FAILED
    assert "-2019" in (hedge.close_reason or "")
    spot, short = await exposure(stack)
    assert short == 0 and spot < D("0.00001")


def test_sizing_btc_uses_the_coarser_step() -> None:
    size = size_hedge(
        kit.pair("BTC"),
        D("1234"),
        spot_ask=D("50000"),
        perp_bid=D("50000"),
        spot_fee=D("0.001"),
        leverage=2,
        spot_free_quote=D(10000),
        futures_available=D(10000),
        balance_buffer=D("0.02"),
        margin_buffer=D("0.25"),
    )

    assert size.step == D("0.001")
    assert size.quantity == D("0.024")
    assert size.spot_order_quantity == D("0.02403")


@pytest.mark.parametrize(
    ("notional", "spot_free", "futures_free", "message"),
    [
        ("60", "10000", "10000", "perp notional 50.00 below perp min notional 100"),
        ("1000", "500", "10000", "spot buy needs"),
        ("1000", "10000", "300", "short needs 625.00 USDT margin at 2x"),
        ("10", "10000", "10000", "buys less than one common step"),
    ],
)
def test_sizing_refuses_with_a_reason_naming_the_leg(
    notional: str, spot_free: str, futures_free: str, message: str
) -> None:
    with pytest.raises(SizingError, match=message):
        size_hedge(
            kit.pair("BTC"),
            D(notional),
            spot_ask=D("50000"),
            perp_bid=D("50000"),
            spot_fee=D("0.001"),
            leverage=2,
            spot_free_quote=D(spot_free),
            futures_available=D(futures_free),
            balance_buffer=D("0.02"),
            margin_buffer=D("0.25"),
        )


async def test_sizing_failure_sends_nothing_and_records_why(ledger: Ledger) -> None:
    stack = await build_stack(ledger, futures_usdt="100")

    hedge = await open_btc(stack)

    assert hedge is None
    assert await ledger.hedges.active() == []
    (event,) = await ledger.events.recent(kind="hedge.sizing_denied")
    assert "margin" in event.message


async def crashed_opening(stack: Stack, uid: str) -> tuple[Hedge, list[NewOrder]]:
    """A hedge whose ledger rows were written before a crash; nothing recorded after."""
    pair = kit.pair("BTC")
    legs = [
        (Leg.SPOT, pair.spot.symbol, Side.BUY, D("0.02003")),
        (Leg.PERP, pair.perp.symbol, Side.SELL, D("0.02")),
    ]
    orders = [
        NewOrder(
            client_order_id(uid, leg, OrderPurpose.OPEN),
            leg,
            OrderPurpose.OPEN,
            symbol,
            side,
            OrderType.MARKET,
            qty,
        )
        for leg, symbol, side, qty in legs
    ]
    hedge, _ = await stack.ledger.hedges.create(
        uid=uid,
        pair=pair.key,
        spot_symbol=pair.spot.symbol,
        perp_symbol=pair.perp.symbol,
        target_quantity=D("0.02"),
        target_notional=D(1000),
        reason="t",
        metrics={},
        at=stack.clock.now(),
        venue="paper",
        orders=orders,
    )
    return hedge, orders


async def test_recover_a_hedge_whose_orders_were_never_sent_fails_it_without_sending(
    ledger: Ledger,
) -> None:
    stack = await build_stack(ledger)
    hedge, _ = await crashed_opening(stack, "crash1")

    recovered = await stack.executor.recover(hedge, kit.pair("BTC"))

    assert recovered.state is HedgeState.FAILED
    assert await exposure(stack) == (D(0), D(0))
    assert await stack.exchange.fetch_my_trades("BTC/USDT") == []


async def test_recover_adopts_legs_sent_before_a_crash(ledger: Ledger) -> None:
    stack = await build_stack(ledger)
    pair = kit.pair("BTC")
    hedge, orders = await crashed_opening(stack, "crash2")
    # the process sent both legs, then died before recording anything
    for o in orders:
        await stack.exchange.create_order(
            OrderRequest(o.symbol, o.side, o.type, o.quantity, o.client_order_id)
        )

    recovered = await stack.executor.recover(hedge, pair)

    assert recovered.state is HedgeState.OPEN
    assert recovered.perp_quantity == D("0.02")
    assert len(await stack.exchange.fetch_my_trades(pair.perp.symbol)) == 1  # nothing re-sent
    assert {o.status for o in await ledger.orders.for_hedge(hedge.id)} == {OrderStatus.FILLED}


async def test_a_leg_difference_below_the_minimum_order_is_within_tolerance(
    ledger: Ledger,
) -> None:
    """XRP-like: 1.5 units apart at 0.5 USDT is below every min notional, so no order is
    sent, no ALERT raised and the ledger untouched, however often it is asked."""
    clock = SimulatedClock(kit.T0)
    source = StaticMarketSource(clock, ["XRP"], prices={"XRP": "0.5"})
    stack = await build_stack(ledger, source=source, clock=clock)
    pair = kit.pair("XRP")
    spot_q, perp_q = await quotes(stack, pair)
    opened = await stack.executor.open(
        pair, D("100"), reason="test", metrics={}, spot_quote=spot_q, perp_quote=perp_q
    )
    assert opened is not None and opened.state is HedgeState.OPEN
    drifted = await ledger.hedges.update(
        opened.id, at=kit.T0, spot_quantity=opened.perp_quantity + D("1.5")
    )
    orders_before = len(await ledger.orders.for_hedge(opened.id))

    for _ in range(3):
        await stack.executor.rebalance(drifted, pair)

    assert len(await ledger.orders.for_hedge(opened.id)) == orders_before
    assert await ledger.events.recent("hedge.imbalanced") == []
    still = await ledger.hedges.get(opened.id)
    assert still is not None and still.spot_quantity == drifted.spot_quantity


async def test_a_tradable_leg_difference_is_still_equalised(ledger: Ledger) -> None:
    clock = SimulatedClock(kit.T0)
    source = StaticMarketSource(clock, ["XRP"], prices={"XRP": "0.5"})
    stack = await build_stack(ledger, source=source, clock=clock)
    pair = kit.pair("XRP")
    spot_q, perp_q = await quotes(stack, pair)
    opened = await stack.executor.open(
        pair, D("100"), reason="test", metrics={}, spot_quote=spot_q, perp_quote=perp_q
    )
    assert opened is not None
    drifted = await ledger.hedges.update(
        opened.id, at=kit.T0, spot_quantity=opened.perp_quantity + D("30")
    )

    done = await stack.executor.rebalance(drifted, pair)

    assert abs(done.spot_quantity - done.perp_quantity) <= D("1")
    purposes = [o.purpose for o in await ledger.orders.for_hedge(opened.id)]
    assert OrderPurpose.TRIM in purposes


async def test_a_rejected_correction_pauses_equalising_instead_of_retrying_every_cycle(
    ledger: Ledger,
) -> None:
    """The ledger holds 300 XRP more spot than the wallet (the fault): the trim is rejected
    (-2010). It is sent once, one ALERT says equalising is paused, and the rebalances of
    the next cycles send nothing until the pause ends; after it one retry, then a pause
    twice as long; legs that change (an adoption) are equalised at once."""
    clock = SimulatedClock(kit.T0)
    source = StaticMarketSource(clock, ["XRP"], prices={"XRP": "0.5"})
    stack = await build_stack(ledger, source=source, clock=clock)
    pair = kit.pair("XRP")
    spot_q, perp_q = await quotes(stack, pair)
    opened = await stack.executor.open(
        pair, D("100"), reason="test", metrics={}, spot_quote=spot_q, perp_quote=perp_q
    )
    assert opened is not None and opened.state is HedgeState.OPEN
    drifted = await ledger.hedges.update(
        opened.id, at=kit.T0, spot_quantity=opened.perp_quantity + D("300")
    )
    before = len(await ledger.orders.for_hedge(opened.id))

    for _ in range(3):  # three cycles within the hour
        drifted = await stack.executor.rebalance(drifted, pair)
        clock.advance(timedelta(minutes=10))

    orders = await ledger.orders.for_hedge(opened.id)
    assert len(orders) == before + 1
    assert orders[-1].status is OrderStatus.REJECTED and orders[-1].purpose is OrderPurpose.TRIM
    paused = await ledger.events.recent("hedge.equalise_paused")
    assert len(paused) == 1 and "1 h" in paused[0].message
    assert stack.executor.equalise_paused(drifted)

    clock.advance(timedelta(hours=1))  # the pause is over: one retry, rejected again
    assert not stack.executor.equalise_paused(drifted)
    drifted = await stack.executor.rebalance(drifted, pair)
    drifted = await stack.executor.rebalance(drifted, pair)
    assert len(await ledger.orders.for_hedge(opened.id)) == before + 2
    paused = await ledger.events.recent("hedge.equalise_paused")
    assert len(paused) == 2 and any("2 h" in e.message for e in paused)

    adopted = await ledger.hedges.update(
        opened.id, at=clock.now(), spot_quantity=opened.perp_quantity + D("30")
    )  # the operator aligned the ledger with the wallet: a tradable difference
    assert not stack.executor.equalise_paused(adopted)
    done = await stack.executor.rebalance(adopted, pair)
    assert abs(done.spot_quantity - done.perp_quantity) <= D("1")
    assert (await ledger.orders.for_hedge(opened.id))[-1].status is OrderStatus.FILLED
