"""Reconciliation over the paper exchange and a real ledger."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bot.domain import HedgeState, MarketKind, OrderRequest, OrderType, PositionSide, Side
from bot.domain.ledger import TradingState
from bot.persistence.repositories import Ledger
from bot.reconcile import Reconciler
from tests import kit
from tests.support.paper_stack import Stack, build_stack

D = Decimal
pytestmark = pytest.mark.postgres


def reconciler(stack: Stack) -> Reconciler:
    pairs = {p.key: p for p in (kit.pair("BTC"), kit.pair("ETH"))}
    return Reconciler(
        stack.exchange, stack.ledger, stack.executor, stack.clock, stack.ledger.events, pairs
    )


async def open_btc(stack: Stack):  # type: ignore[no-untyped-def]
    pair = kit.pair("BTC")
    spot = (await stack.source.fetch_best_quotes(MarketKind.SPOT))[pair.spot.symbol]
    perp = (await stack.source.fetch_best_quotes(MarketKind.PERPETUAL))[pair.perp.symbol]
    hedge = await stack.executor.open(
        pair, D(1001), reason="t", metrics={}, spot_quote=spot, perp_quote=perp
    )
    assert hedge is not None and hedge.state is HedgeState.OPEN
    return hedge


async def test_clean_books_reconcile_ok_and_keep_trading(ledger: Ledger) -> None:
    stack = await build_stack(ledger)
    await open_btc(stack)

    report = await reconciler(stack).run(startup=True)

    assert report.clean and report.unowned_positions == []
    assert await ledger.trading_state.get() is None
    assert [e.kind for e in await ledger.events.recent(kind="reconcile.ok")] == ["reconcile.ok"]


async def test_a_position_carrybot_does_not_own_is_flagged_and_left_alone(ledger: Ledger) -> None:
    stack = await build_stack(ledger)
    await stack.exchange.create_order(
        OrderRequest("ETH/USDT:USDT", Side.SELL, OrderType.MARKET, D("0.5"), "manual-1")
    )

    report = await reconciler(stack).run(startup=True)

    assert report.unowned_positions == ["ETH/USDT:USDT short 0.5"]
    assert report.clean  # not ours: reported, not a disagreement
    (position,) = await stack.exchange.fetch_positions()
    assert position.size == D("0.5")  # untouched
    assert await ledger.events.recent(kind="reconcile.unowned")


async def test_short_closed_by_hand_halts_at_start_up_with_a_report(ledger: Ledger) -> None:
    stack = await build_stack(ledger)
    await open_btc(stack)
    await stack.exchange.create_order(
        OrderRequest(
            "BTC/USDT:USDT",
            Side.BUY,
            OrderType.MARKET,
            D("0.02"),
            "manual-close",
            reduce_only=True,
            position_side=PositionSide.BOTH,
        )
    )

    report = await reconciler(stack).run(startup=True)

    assert report.drift == [
        "BTC/USDT:USDT: ledger holds a 0.02 short, the exchange only 0 (closed outside carrybot?)"
    ]
    status = await ledger.trading_state.get()
    assert status is not None and status.state is TradingState.HALTED
    assert "start-up reconciliation failed" in status.reason


async def test_periodic_drift_alerts_and_switches_to_reducing(ledger: Ledger) -> None:
    stack = await build_stack(ledger)
    await open_btc(stack)
    await stack.exchange.create_order(
        OrderRequest("BTC/USDT", Side.SELL, OrderType.MARKET, D("0.01"), "manual-sell")
    )

    report = await reconciler(stack).run(startup=False)

    assert any(d.startswith("BTC: ledger holds") for d in report.drift)
    status = await ledger.trading_state.get()
    assert status is not None and status.state is TradingState.REDUCING
    (alert,) = await ledger.events.recent(kind="reconcile.drift")
    assert alert.severity.value == "alert"


async def test_fills_missing_from_the_ledger_are_adopted_once(ledger: Ledger) -> None:
    stack = await build_stack(ledger)
    hedge = await open_btc(stack)
    async with ledger.sessions.begin() as session:  # lose the fills, as a crash would
        from sqlalchemy import delete

        from bot.persistence.models import FillRow

        await session.execute(delete(FillRow))

    first = await reconciler(stack).run(startup=True)
    second = await reconciler(stack).run(startup=True)

    assert first.adopted_fills == 2 and second.adopted_fills == 0
    assert len(await ledger.fills.for_hedge(hedge.id)) == 2
