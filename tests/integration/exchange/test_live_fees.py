"""The account's fees over real ccxt and the fake Binance: rates, VIP tier, BNB burn, refresh."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from bot.clock import SimulatedClock
from bot.domain import ListEventSink
from bot.domain.fee_schedule import AccountFees
from bot.domain.params import FeeParams
from bot.exchange.ccxt_live import LiveExchange
from bot.fee_watch import FeeWatch
from tests import kit
from tests.fakes.binance_server import FakeBinance
from tests.fakes.faults import Fault, FaultKind
from tests.fakes.fixtures import live_for, seed, standard_instruments

D = Decimal
PAIRS = [kit.pair("BTC"), kit.pair("ETH")]
FEE_PATHS = [
    "/sapi/v1/asset/tradeFee",
    "/fapi/v1/commissionRate",
    "/fapi/v1/accountConfig",
    "/sapi/v1/bnbBurn",
    "/fapi/v1/feeBurn",
]


async def test_the_account_fees_are_read_from_every_fee_endpoint(
    live_exchange: LiveExchange, fake_binance: FakeBinance
) -> None:
    fees = await live_exchange.fetch_account_fees(PAIRS)

    assert fees == AccountFees(D("0.001"), D("0.001"), D("0.0002"), D("0.0005"), 0, False, False)
    assert all(fake_binance.requests_to(path, "GET") for path in FEE_PATHS)
    rates = fake_binance.requests_to("/fapi/v1/commissionRate", "GET")
    assert sorted(r.params["symbol"] for r in rates) == ["BTCUSDT", "ETHUSDT"]


async def test_a_vip_account_paying_in_bnb_pays_its_tier_less_the_bnb_discount() -> None:
    schedule = FeeParams(vip_tier=3, bnb_discount=True)
    async with FakeBinance(standard_instruments(), fees=schedule) as fake:
        seed(fake)
        exchange = live_for(fake)
        try:
            account = await exchange.fetch_account_fees(PAIRS)
        finally:
            await exchange.close()

    assert account == AccountFees(
        D("0.00042"), D("0.0006"), D("0.00012"), D("0.00032"), 3, True, True
    )
    paid = FeeParams.of_account(account)
    assert (paid.spot_taker, paid.futures_taker) == (D("0.00045"), D("0.000288"))
    assert paid == schedule.effective()  # the config can say the same as the account


async def test_fee_watch_applies_the_account_rates_daily_and_keeps_them_on_failure(
    fake_binance: FakeBinance,
) -> None:
    clock = SimulatedClock(kit.T0)
    events = ListEventSink()
    exchange = live_for(fake_binance)
    applied: list[tuple[FeeParams, AccountFees]] = []
    watch = FeeWatch(
        exchange, clock, events, lambda f, a: applied.append((f, a)), every_seconds=86400
    )
    try:
        first = await watch.tick(PAIRS)
        clock.advance(timedelta(hours=23))
        assert await watch.tick(PAIRS) is None  # not due: no request sent
        fake_binance.fees = FeeParams(vip_tier=1)
        fake_binance.faults.add(
            Fault(FaultKind.SERVER_ERROR, "/sapi/v1/asset/tradeFee", status=503)
        )
        clock.advance(timedelta(hours=1))
        failed = await watch.tick(PAIRS)
        clock.advance(timedelta(minutes=5))
        second = await watch.tick(PAIRS)
    finally:
        await exchange.close()

    assert first == FeeParams(vip_tier=0)
    assert failed is None and len(applied) == 2
    assert second is not None and second.futures_taker == D("0.0004")  # VIP 1
    assert [e.kind for e in events.events] == ["fees.updated", "fees.updated"]
    assert "VIP 1" in events.events[-1].message
