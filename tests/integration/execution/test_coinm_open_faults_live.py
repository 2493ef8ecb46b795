"""Opening a COIN-M hedge over the live adapter while the fake Binance misbehaves.

The COIN-M counterpart of `test_open_faults_live.py`, plus the step the perpetual path does
not have (the coin moved to the COIN-M wallet). Every case ends with the coin in the COIN-M
wallet hedging the short within `max_unhedged_usd`, or everything flat (the coin moved back
and sold) when the hedge failed, and the ledger agreeing with the server order for order.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from bot.domain import FuturesAccount, HedgeState, Leg, OrderStatus, PositionMode
from bot.domain.ledger import TransferStatus
from bot.errors import TemporaryError
from bot.execution.coinm_margin import PENDING, margin_of
from bot.streams.exchange import StreamedExchange
from tests.integration.execution.coinm_rig import (
    DAPI_ORDER,
    SPOT_ORDER,
    TRANSFER,
    CoinmRigFactory,
)

D = Decimal
pytestmark = pytest.mark.postgres
MODES = [PositionMode.ONE_WAY, PositionMode.HEDGE]
INSUFFICIENT = "Account has insufficient balance for requested action."
IN, OUT = "MAIN_CMFUTURE", "CMFUTURE_MAIN"
FILLED, REJECTED = OrderStatus.FILLED, OrderStatus.REJECTED
DONE, BY_BALANCE = TransferStatus.DONE, TransferStatus.DONE_BY_BALANCE


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.value)
async def test_open_buys_moves_the_coin_and_shorts_whole_contracts(
    coinm_rig_factory: CoinmRigFactory, mode: PositionMode
) -> None:
    rig = await coinm_rig_factory(mode=mode)

    hedge = await rig.open("1000")

    assert hedge is not None and hedge.state is HedgeState.OPEN
    (spot_post,) = rig.order_posts(SPOT_ORDER)
    (short_post,) = rig.order_posts(DAPI_ORDER)
    # 1000 USDT of coin (at 50 000) is worth 1020 USD at the future's 51 000: 10 contracts
    assert short_post["quantity"] == "10"
    assert short_post["side"] == "SELL"
    if mode is PositionMode.HEDGE:
        assert short_post["positionSide"] == "SHORT"
    else:
        assert "positionSide" not in short_post and "reduceOnly" not in short_post
    assert spot_post["side"] == "BUY"
    assert rig.transfers() == [IN]
    assert rig.server_short() == 10
    assert margin_of(hedge) == hedge.spot_quantity > 0
    assert 0 <= D(hedge.metrics["unhedged_usd"]) < 100
    events = await rig.ledger.events.recent(kind="hedge.margin_transferred")
    assert events and events[0].data["to"] == "coinm"
    (row,) = await rig.ledger.transfers.for_hedges([hedge.id])
    assert (row.to_wallet, row.status, row.amount) == ("coinm", DONE, margin_of(hedge))
    assert row.exchange_id == "100001" and row.completed_at == rig.clock.now()  # the tranId
    await rig.assert_ledger_matches(hedge)


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.value)
@pytest.mark.parametrize(
    ("code", "msg"),
    [(-2010, INSUFFICIENT), (-1013, "Filter failure: NOTIONAL")],
    ids=["insufficient", "filter"],
)
async def test_open_spot_rejected_sends_nothing_else_and_fails_flat(
    coinm_rig_factory: CoinmRigFactory, mode: PositionMode, code: int, msg: str
) -> None:
    rig = await coinm_rig_factory(mode=mode)
    rig.fake.add_fault("reject", SPOT_ORDER, method="POST", code=code, msg=msg)

    hedge = await rig.open()

    assert hedge is not None and hedge.state is HedgeState.FAILED
    assert "spot leg failed" in (hedge.close_reason or "") and str(code) in (
        hedge.close_reason or ""
    )
    assert rig.transfers() == [] and rig.order_posts(DAPI_ORDER) == []
    rig.assert_flat()
    await rig.assert_ledger_matches(hedge)
    assert await rig.statuses(hedge.id) == [(Leg.SPOT, "open", REJECTED)]


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.value)
@pytest.mark.parametrize(
    ("code", "msg"),
    [
        (-2019, "Margin is insufficient."),
        (-4164, "Order's notional must be no smaller than 100 (unless you choose reduce only)."),
        (-1111, "Precision is over the maximum defined for this asset."),
    ],
    ids=["margin", "min_notional", "precision"],
)
async def test_open_short_rejected_moves_the_coin_back_sells_it_and_fails_flat(
    coinm_rig_factory: CoinmRigFactory, mode: PositionMode, code: int, msg: str
) -> None:
    rig = await coinm_rig_factory(mode=mode)
    rig.fake.add_fault("reject", DAPI_ORDER, method="POST", code=code, msg=msg)

    hedge = await rig.open()

    assert hedge is not None and hedge.state is HedgeState.FAILED
    assert "perp leg failed" in (hedge.close_reason or "")
    assert str(code) in (hedge.close_reason or "")
    assert [p["side"] for p in rig.order_posts(SPOT_ORDER)] == ["BUY", "SELL"]
    assert len(rig.order_posts(DAPI_ORDER)) == 1  # the short is never retried
    assert rig.transfers() == [IN, OUT]
    assert await rig.transfer_rows(hedge.id) == [("coinm", DONE), ("spot", DONE)]
    rig.assert_flat()
    await rig.assert_ledger_matches(hedge)
    assert await rig.statuses(hedge.id) == [
        (Leg.PERP, "open", REJECTED),
        (Leg.SPOT, "open", FILLED),
        (Leg.SPOT, "unwind", FILLED),
    ]
    assert await rig.ledger.events.recent(kind="hedge.unwinding")


@pytest.mark.parametrize(
    ("fault", "options"),
    [
        ("reject", {"code": -5013, "msg": "Asset transfer failed: insufficient balance"}),
        ("server_error", {"status": 503}),
    ],
    ids=["rejected", "unavailable"],
)
async def test_open_transfer_failing_every_retry_sells_the_spot_and_fails_flat(
    coinm_rig_factory: CoinmRigFactory, fault: str, options: dict[str, object]
) -> None:
    rig = await coinm_rig_factory()
    rig.fake.add_fault(fault, TRANSFER, method="POST", times=None, **options)

    hedge = await rig.open()

    assert hedge is not None and hedge.state is HedgeState.FAILED
    assert "margin transfer failed" in (hedge.close_reason or "")
    assert rig.transfers() == [IN] * 5  # close_retry_attempts, each known not done
    rows = await rig.ledger.transfers.for_hedges([hedge.id])
    assert [(t.to_wallet, t.status) for t in rows] == [("coinm", TransferStatus.FAILED)] * 5
    assert all(t.error and t.completed_at for t in rows)
    assert rig.order_posts(DAPI_ORDER) == []  # no short without its margin
    assert [p["side"] for p in rig.order_posts(SPOT_ORDER)] == ["BUY", "SELL"]
    rig.assert_flat()
    await rig.assert_ledger_matches(hedge)
    failed = await rig.ledger.events.recent(kind="hedge.transfer_failed")
    assert failed and failed[0].severity.value == "alert"


async def test_open_transfer_unavailable_once_is_retried_and_opens(
    coinm_rig_factory: CoinmRigFactory,
) -> None:
    rig = await coinm_rig_factory()
    rig.fake.add_fault("server_error", TRANSFER, method="POST", status=503)

    hedge = await rig.open()

    assert hedge is not None and hedge.state is HedgeState.OPEN
    assert rig.transfers() == [IN, IN]
    assert await rig.transfer_rows(hedge.id) == [
        ("coinm", TransferStatus.FAILED),
        ("coinm", DONE),
    ]
    await rig.assert_ledger_matches(hedge)


async def test_open_transfer_response_dropped_is_resolved_by_balance_and_not_resent(
    coinm_rig_factory: CoinmRigFactory,
) -> None:
    rig = await coinm_rig_factory()
    rig.fake.add_fault("drop", TRANSFER, method="POST")  # done, but the answer is lost

    hedge = await rig.open()

    assert hedge is not None and hedge.state is HedgeState.OPEN
    assert rig.transfers() == [IN]  # the balance said it landed: never sent twice
    assert PENDING not in hedge.metrics
    (row,) = await rig.ledger.transfers.for_hedges([hedge.id])
    assert (row.status, row.exchange_id) == (BY_BALANCE, None)  # recorded as resolved
    assert row.error and row.completed_at is not None
    await rig.assert_ledger_matches(hedge)


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.value)
async def test_open_short_response_dropped_is_resolved_by_lookup_and_opens(
    coinm_rig_factory: CoinmRigFactory, mode: PositionMode
) -> None:
    rig = await coinm_rig_factory(mode=mode)
    rig.fake.add_fault("drop", DAPI_ORDER, method="POST")

    hedge = await rig.open()

    assert hedge is not None and hedge.state is HedgeState.OPEN
    (post,) = rig.requests(DAPI_ORDER, "POST")
    assert post.dropped
    lookups = rig.requests(DAPI_ORDER, "GET")
    assert lookups and {r.params["origClientOrderId"] for r in lookups} == {f"cb-{hedge.uid}-po1"}
    assert rig.server_short() == 10
    await rig.assert_ledger_matches(hedge)


async def test_open_spot_timed_out_is_resolved_by_lookup_without_a_second_post(
    coinm_rig_factory: CoinmRigFactory,
) -> None:
    rig = await coinm_rig_factory(timeout_ms=150)
    rig.fake.add_fault("delay", SPOT_ORDER, method="POST", delay_ms=400)

    hedge = await rig.open()

    assert hedge is not None and hedge.state is HedgeState.OPEN
    assert len(rig.requests(SPOT_ORDER, "POST")) == 1
    lookups = rig.requests(SPOT_ORDER, "GET")
    assert lookups and {r.params["origClientOrderId"] for r in lookups} == {f"cb-{hedge.uid}-so1"}
    await rig.assert_ledger_matches(hedge)


@pytest.mark.parametrize(
    ("spot_ratio", "perp_ratio"), [("0.6", "0.8"), ("0.9", "0.5")], ids=["spot_short", "perp_short"]
)
async def test_open_both_legs_partially_filled_top_up_the_short_within_the_limit(
    coinm_rig_factory: CoinmRigFactory, spot_ratio: str, perp_ratio: str
) -> None:
    rig = await coinm_rig_factory()
    rig.fake.add_fault("partial_fill", SPOT_ORDER, method="POST", ratio=spot_ratio)
    rig.fake.add_fault("partial_fill", DAPI_ORDER, method="POST", ratio=perp_ratio)

    hedge = await rig.open()

    assert hedge is not None and hedge.state is HedgeState.OPEN
    await rig.assert_ledger_matches(hedge)
    records = await rig.ledger.orders.for_hedge(hedge.id)
    assert [o for o in records if o.purpose.value == "top_up" and o.leg is Leg.PERP]
    assert abs(rig.unhedged_usd()) <= rig.limit
    assert D(hedge.metrics["unhedged_usd"]) <= rig.limit


async def test_open_short_partially_filled_and_top_up_refused_trims_the_coin(
    coinm_rig_factory: CoinmRigFactory,
) -> None:
    rig = await coinm_rig_factory()
    rig.fake.add_fault("partial_fill", DAPI_ORDER, method="POST", ratio="0.5")  # 5 of 10
    rig.fake.add_fault(
        "reject", DAPI_ORDER, method="POST", code=-2019, msg="Margin is insufficient."
    )

    hedge = await rig.open()

    assert hedge is not None and hedge.state is HedgeState.OPEN
    assert rig.server_short() == 5
    assert rig.transfers() == [IN, OUT]  # the coin beyond 5 contracts came back ...
    assert [p["side"] for p in rig.order_posts(SPOT_ORDER)] == ["BUY", "SELL"]  # ... and sold
    await rig.assert_ledger_matches(hedge)


@pytest.mark.parametrize(
    ("limited", "sent"), [(SPOT_ORDER, []), (DAPI_ORDER, [IN, OUT])], ids=["spot", "short"]
)
async def test_open_leg_rate_limited_is_never_resent_and_fails_flat(
    coinm_rig_factory: CoinmRigFactory, limited: str, sent: list[str]
) -> None:
    rig = await coinm_rig_factory()
    rig.fake.add_fault("rate_limit", limited, method="POST", retry_after=5)

    hedge = await rig.open()

    assert hedge is not None and hedge.state is HedgeState.FAILED
    assert "-1003" in (hedge.close_reason or "") or "429" in (hedge.close_reason or "")
    assert len(rig.requests(limited, "POST")) == 1
    assert rig.transfers() == sent
    rig.assert_flat()
    await rig.assert_ledger_matches(hedge)


async def test_open_short_lost_before_processing_is_confirmed_absent_then_unwound(
    coinm_rig_factory: CoinmRigFactory,
) -> None:
    rig = await coinm_rig_factory()
    rig.fake.add_fault("server_error", DAPI_ORDER, method="POST", status=503)

    hedge = await rig.open()

    assert hedge is not None and hedge.state is HedgeState.FAILED
    (post,) = rig.requests(DAPI_ORDER, "POST")
    lookups = rig.requests(DAPI_ORDER, "GET")
    assert {r.params["origClientOrderId"] for r in lookups} == {f"cb-{hedge.uid}-po1"}
    assert lookups[-1].clock_at - post.clock_at >= 5 + 2
    assert rig.transfers() == [IN, OUT]
    rig.assert_flat()
    await rig.assert_ledger_matches(hedge)
    perp = next(o for o in await rig.ledger.orders.for_hedge(hedge.id) if o.leg is Leg.PERP)
    assert (perp.status, perp.error_code) == (OrderStatus.REJECTED, -2013)


async def test_open_transfer_outcome_unknown_stays_opening_and_recovery_resolves_it(
    coinm_rig_factory: CoinmRigFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = await coinm_rig_factory()
    rig.fake.add_fault("drop", TRANSFER, method="POST")  # done, but the answer is lost
    read = rig.live.fetch_coinm_account
    calls = {"n": 0}

    async def outage_after_the_transfer(asset: str) -> FuturesAccount:
        calls["n"] += 1
        if calls["n"] == 2:  # the read that would tell whether it landed
            raise TemporaryError("HTTP 503")
        return await read(asset)

    monkeypatch.setattr(rig.live, "fetch_coinm_account", outage_after_the_transfer)

    hedge = await rig.open()

    assert hedge is not None and hedge.state is HedgeState.OPENING
    assert PENDING in hedge.metrics
    assert rig.order_posts(DAPI_ORDER) == []  # no short while its margin is unknown
    assert rig.transfers() == [IN]
    assert await rig.ledger.events.recent(kind="hedge.transfer_unresolved")
    (row,) = await rig.ledger.transfers.for_hedges([hedge.id])
    assert (row.status, row.completed_at) == (TransferStatus.UNKNOWN, None)

    recovered = await rig.executor.recover(hedge, rig.pair)

    assert recovered.state is HedgeState.FAILED  # recovered without a short: unwound
    assert rig.transfers() == [IN, OUT]
    assert await rig.transfer_rows(hedge.id) == [("coinm", BY_BALANCE), ("spot", DONE)]
    rig.assert_flat()
    await rig.assert_ledger_matches(recovered)


async def test_open_short_outcome_unknown_stays_opening_and_recovery_opens_it(
    coinm_rig_factory: CoinmRigFactory,
) -> None:
    rig = await coinm_rig_factory()
    rig.fake.add_fault("drop", DAPI_ORDER, method="POST")
    lookups_down = rig.fake.add_fault(
        "server_error", DAPI_ORDER, method="GET", status=503, times=None
    )

    hedge = await rig.open()

    assert hedge is not None and hedge.state is HedgeState.OPENING
    assert await rig.ledger.events.recent(kind="hedge.unresolved")
    lookups_down.times = 0  # the exchange answers again

    recovered = await rig.executor.recover(hedge, rig.pair)

    assert recovered.state is HedgeState.OPEN
    assert len(rig.requests(DAPI_ORDER, "POST")) == 1  # never sent twice
    await rig.assert_ledger_matches(recovered)


async def test_open_with_the_coinm_user_stream_records_a_streamed_fill_once(
    coinm_rig_factory: CoinmRigFactory,
) -> None:
    """The short's POST answer is slow (1.5 s): its fill comes from the dapi user stream
    first (REST abandoned, no look-up), and the ledger records each of its trades once."""
    rig = await coinm_rig_factory(streams=True)
    rig.fake.add_fault("delay", DAPI_ORDER, method="POST", delay_ms=1500)

    hedge = await rig.open("1000")

    assert hedge is not None and hedge.state is HedgeState.OPEN
    assert rig.requests(DAPI_ORDER, "GET") == []  # known from the stream
    assert len(rig.requests(DAPI_ORDER, "POST")) == 1
    streamed = rig.stack.executor._ctx.exchange
    assert isinstance(streamed, StreamedExchange) and streamed.stream_fills >= 1
    shorts = [
        o for o in await rig.ledger.orders.for_hedge(hedge.id) if o.symbol == rig.pair.perp.symbol
    ]
    (short,) = shorts
    fills = await rig.ledger.fills.for_order(short.client_order_id)
    server = [
        f
        for f in rig.fake.account.my_trades(rig.pair.perp.symbol)
        if f.exchange_order_id == short.exchange_order_id
    ]
    assert sorted(f.trade_id for f in fills) == sorted(f.trade_id for f in server)
    await rig.assert_ledger_matches(hedge)
