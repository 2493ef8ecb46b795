"""Cross-venue hedges over real ccxt: spot on the fake Bitstamp, short on the fake Binance.

The executor's fault matrix (reject, lost response, timeout, partial fill, venue down) is
injected on either venue; every case ends with no naked leg on the two servers' own
accounts and a ledger that matches both venues order for order, by REST alone and with
Bitstamp's user stream on (which then reports each outcome twice: duplicates must not count).
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from bot.config import RiskConfig
from bot.domain import HedgeState, Leg, OrderPurpose, OrderRequest, OrderType, Side
from bot.pnl import fee_usdt
from tests.fakes.bitstamp_ohlc import seed_ohlc
from tests.integration.execution.cross_rig import (
    PERP_ORDER,
    CrossRig,
    CrossRigFactory,
    spot_order_path,
)

D = Decimal
pytestmark = pytest.mark.postgres
VENUES = ["bitstamp", "binance"]
STREAM = pytest.mark.parametrize("stream", [False, True], ids=["rest", "user-stream"])
NO_USDT = "You have only 0.00 USDT available. Check your account balance for details."


async def test_open_then_funding_then_close_across_venues(
    cross_rig_factory: CrossRigFactory,
) -> None:
    rig = await cross_rig_factory()

    hedge = await rig.open("1000")

    assert hedge is not None and hedge.state is HedgeState.OPEN
    (buy,) = [r.params for r in rig.bitstamp.requests_to(spot_order_path(rig.pair), "POST")]
    (sell,) = [r.params for r in rig.binance.requests_to(PERP_ORDER, "POST")]
    assert buy["amount"] == "0.019"  # not grossed up: Bitstamp takes its fee in USDT
    assert buy["client_order_id"] == sell["newClientOrderId"].replace("po", "so")
    assert rig.server_spot() == rig.server_short() == D("0.019")
    await rig.assert_ledger_matches(hedge)
    records = await rig.ledger.orders.for_hedge(hedge.id)
    assert {r.venue for r in records} == {"bitstamp+binance"}

    payment = rig.binance.settle_funding(rig.pair.perp.symbol)
    assert payment is not None and payment.amount > 0
    received = await rig.router.fetch_funding_payments(rig.clock.now() - timedelta(hours=1))
    assert [p.amount for p in received] == [payment.amount]

    closed = await rig.executor.close(hedge, rig.pair, reason="exit")

    assert closed.state is HedgeState.CLOSED
    assert rig.bitstamp.requests_to(spot_order_path(rig.pair, "sell"), "POST")
    await rig.assert_ledger_matches(closed)


async def test_usd_spot_leg_is_priced_in_usdt_terms(cross_rig_factory: CrossRigFactory) -> None:
    rig = await cross_rig_factory(spot_symbol="BTC/USD")

    hedge = await rig.open("1000")

    assert hedge is not None and hedge.state is HedgeState.OPEN
    assert rig.pair.spot.quote == "USD" and rig.router.usd_per_usdt == D("0.999")
    assert hedge.entry_spot_price is not None  # 50001.0 USDT, not 49951 USD
    assert abs(hedge.entry_spot_price - D("49951") / D("0.999")) < D("1e-9")
    usd = rig.bitstamp.account.spot_balances()["USD"].free
    assert usd == D("10000") - D("0.019") * D("49951") * D("1.004")
    await rig.assert_ledger_matches(hedge)
    (spot_fill,) = [f for f in await rig.ledger.fills.for_hedge(hedge.id) if f.symbol == "BTC/USD"]
    assert spot_fill.fee_asset == "USDT"  # Bitstamp's USD fee, in USDT terms
    assert abs(fee_usdt(spot_fill) - D("0.019") * D("49951") * D("0.004") / D("0.999")) < D("1e-9")
    closed = await rig.executor.close(hedge, rig.pair, reason="exit")
    assert closed.state is HedgeState.CLOSED
    await rig.assert_ledger_matches(closed)


async def test_usd_fill_keeps_the_usd_price_and_the_rate_of_the_book_at_the_fill(
    cross_rig_factory: CrossRigFactory,
) -> None:
    rig = await cross_rig_factory(spot_symbol="BTC/USD")

    def rate_moves_after_the_poll() -> None:  # the last poll saw 0.999; the book is now 1.001
        rig.clock.advance(timedelta(seconds=30))
        rig.bitstamp.set_quote("USDT/USD", D("1.00099"), D("1.00101"))

    hedge = await rig.open("1000", inject=rate_moves_after_the_poll)

    assert hedge is not None and hedge.state is HedgeState.OPEN
    (fill,) = [f for f in await rig.ledger.fills.for_hedge(hedge.id) if f.symbol == "BTC/USD"]
    assert (fill.venue_price, fill.usd_per_usdt) == (D("49951"), D("1.001"))
    assert abs(fill.price - D("49951") / D("1.001")) < D("1e-9")  # USDT at the fill's rate
    assert abs(fee_usdt(fill) - D("0.019") * D("49951") * D("0.004") / D("1.001")) < D("1e-9")
    assert hedge.entry_spot_price is not None
    assert abs(hedge.entry_spot_price - fill.price) < D("1e-9")
    (perp,) = [f for f in await rig.ledger.fills.for_hedge(hedge.id) if f.symbol != "BTC/USD"]
    assert (perp.venue_price, perp.usd_per_usdt) == (None, None)  # nothing converted
    report = await rig.reconcile()  # reading the fills again converts them the same way
    assert report.adopted_fills == 0
    (again,) = [
        f for f in await rig.router.fetch_my_trades("BTC/USD", rig.clock.now() - timedelta(hours=1))
    ]
    assert again.usd_per_usdt == fill.usd_per_usdt and abs(again.price - fill.price) < D("1e-9")


async def test_a_fill_made_while_the_bot_was_down_takes_bitstamps_rate_of_that_minute(
    cross_rig_factory: CrossRigFactory,
) -> None:
    rig = await cross_rig_factory(spot_symbol="BTC/USD")
    made_at = rig.clock.now()
    seed_ohlc(rig.bitstamp, "USDT/USD", made_at - timedelta(minutes=5), 10, "1.002", step=60)
    rig.bitstamp.account.create_order(
        OrderRequest("BTC/USD", Side.BUY, OrderType.MARKET, D("0.01"), "cb-x-sbo1")
    )  # sent before a crash: the bot never saw its answer
    rig.clock.advance(timedelta(hours=1))
    await rig.quotes()  # the bot is back: the USDT/USD it sees now is 0.999

    (fill,) = await rig.router.fetch_my_trades("BTC/USD", made_at - timedelta(minutes=1))

    assert fill.usd_per_usdt == D("1.002")  # Bitstamp's 1-minute bar of the fill's minute
    assert fill.venue_price == D("49951") and fill.price == D("49951") / D("1.002")
    (minute,) = rig.bitstamp.requests_to("/api/v2/ohlc/usdtusd/")
    assert minute.params["step"] == "60"


def _inject(rig: CrossRig, venue: str, fault: str) -> None:
    spot_path = spot_order_path(rig.pair)
    if venue == "bitstamp":
        if fault == "reject":
            rig.bitstamp.add_fault("reject", spot_path, method="POST", msg=NO_USDT)
        elif fault == "down":  # its order and order-status endpoints answer 503
            rig.bitstamp.add_fault("server_error", spot_path, times=None)
            rig.bitstamp.add_fault("server_error", "/api/v2/order_status/", times=None)
        elif fault == "timeout":
            rig.bitstamp.add_fault("delay", spot_path, method="POST", delay_ms=2500)
        elif fault == "lost":
            rig.bitstamp.add_fault("drop", spot_path, method="POST")
        else:
            rig.bitstamp.add_fault("partial_fill", spot_path, method="POST", ratio="0.5")
        return
    if fault == "reject":
        rig.binance.add_fault("reject", PERP_ORDER, method="POST", code=-2019,
                              msg="Margin is insufficient.")  # fmt: skip
    elif fault == "down":
        rig.binance.add_fault("server_error", PERP_ORDER, times=None)
    elif fault == "timeout":
        rig.binance.add_fault("delay", PERP_ORDER, method="POST", delay_ms=2500)
    elif fault == "lost":
        rig.binance.add_fault("drop", PERP_ORDER, method="POST")
    else:
        rig.binance.add_fault("partial_fill", PERP_ORDER, method="POST", ratio="0.5")


@pytest.mark.parametrize("venue", VENUES)
async def test_a_venue_down_before_the_open_sends_nothing_anywhere(
    cross_rig_factory: CrossRigFactory, venue: str
) -> None:
    rig = await cross_rig_factory()

    def down() -> None:
        if venue == "bitstamp":
            rig.bitstamp.down = True
        else:
            rig.binance.add_fault("server_error", "/fapi/v3/account", times=None)
            rig.binance.add_fault("server_error", "/fapi/v2/account", times=None)

    assert await rig.open("1000", inject=down) is None
    assert rig.bitstamp.requests_to(spot_order_path(rig.pair), "POST") == []
    assert rig.binance.requests_to(PERP_ORDER, "POST") == []


def _venue_back(rig: CrossRig) -> None:
    rig.bitstamp.down = False
    rig.bitstamp.faults.clear()
    rig.binance.faults.clear()


async def _rig(factory: CrossRigFactory, stream: bool, **options: object) -> CrossRig:
    rig = await factory(bitstamp_stream=stream, **options)
    rig.bitstamp.streams.duplicate_user_events = True
    return rig


@STREAM
@pytest.mark.parametrize("venue", VENUES)
@pytest.mark.parametrize("fault", ["reject", "lost", "timeout", "partial", "down"])
async def test_every_fault_on_either_venue_ends_without_a_naked_leg(
    cross_rig_factory: CrossRigFactory, venue: str, fault: str, stream: bool
) -> None:
    timeouts = {"bitstamp_timeout_ms": 1000, "timeout_ms": 1000} if fault == "timeout" else {}
    rig = await _rig(cross_rig_factory, stream, **timeouts)

    hedge = await rig.open("1000", inject=lambda: _inject(rig, venue, fault))

    assert hedge is not None
    if fault == "reject":
        assert hedge.state is HedgeState.FAILED
        failed = "spot" if venue == "bitstamp" else "perp"
        assert f"{failed} leg failed" in (hedge.close_reason or "")
        records = await rig.ledger.orders.for_hedge(hedge.id)
        unwinds = [r for r in records if r.purpose is OrderPurpose.UNWIND]
        # the unwind is on the venue that filled
        assert [r.leg for r in unwinds] == [Leg.PERP if venue == "bitstamp" else Leg.SPOT]
    elif fault in ("lost", "timeout", "partial"):
        assert hedge.state is HedgeState.OPEN
    else:  # down: the order's fate is unknown until the venue is back
        assert hedge.state is HedgeState.OPENING
        _venue_back(rig)
        await rig.reconcile()
        hedge = await rig.ledger.hedges.get(hedge.id)
        assert hedge is not None and hedge.state in (HedgeState.FAILED, HedgeState.OPEN)
    if fault in ("lost", "timeout"):
        posts = (
            rig.bitstamp.requests_to(spot_order_path(rig.pair), "POST") if venue == "bitstamp"
            else rig.binance.requests_to(PERP_ORDER, "POST")
        )  # fmt: skip
        assert len(posts) == 1, "an order whose response was lost was sent again"
    if rig.stream is not None and venue == "bitstamp" and fault == "timeout":
        assert rig.stream.stream_fills == 1  # the stream told the outcome; REST still waited
    rig.assert_no_naked_leg()
    await rig.assert_ledger_matches(hedge)


def _inject_close(rig: CrossRig, venue: str, fault: str) -> None:
    sell = spot_order_path(rig.pair, "sell")
    server, path = (rig.bitstamp, sell) if venue == "bitstamp" else (rig.binance, PERP_ORDER)
    if fault == "reject":
        server.add_fault("reject", path, method="POST", status=503 if venue == "bitstamp" else 400)
    elif fault == "lost":
        server.add_fault("drop", path, method="POST")
    elif fault == "partial":
        server.add_fault("partial_fill", path, method="POST", ratio="0.5")
    else:  # down: orders and their lookups answer 503 until the venue is back
        server.add_fault("server_error", path, times=None)
        lookup = "/api/v2/order_status/" if venue == "bitstamp" else PERP_ORDER
        server.add_fault("server_error", lookup, times=None)


@STREAM
@pytest.mark.parametrize("venue", VENUES)
@pytest.mark.parametrize("fault", ["reject", "lost", "partial", "down"])
async def test_every_close_fault_on_either_venue_ends_flat(
    cross_rig_factory: CrossRigFactory, venue: str, fault: str, stream: bool
) -> None:
    rig = await _rig(cross_rig_factory, stream, risk=RiskConfig(close_retry_backoff_seconds=0.01))
    hedge = await rig.open("1000")
    assert hedge is not None and hedge.state is HedgeState.OPEN
    _inject_close(rig, venue, fault)

    closed = await rig.executor.close(hedge, rig.pair, reason="exit")

    if fault == "down":
        assert closed.state is HedgeState.CLOSING  # the other leg is closed, this one waits
        _venue_back(rig)
        closed = await rig.executor.close(closed, rig.pair, reason="exit")
    assert closed.state is HedgeState.CLOSED
    rig.assert_flat()
    await rig.assert_ledger_matches(closed)
