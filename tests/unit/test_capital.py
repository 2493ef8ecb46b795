"""Capital on two venues: which venue cannot carry one hedge, and one alert per change."""

from __future__ import annotations

from decimal import Decimal

from bot.capital import CapitalWatch, capital_shortfalls
from bot.clock import SimulatedClock
from bot.config import config_from_dict
from bot.domain import Balance, FuturesAccount, ListEventSink
from tests import kit

D = Decimal
CONFIG = config_from_dict(
    {"venues": {"spot": "bitstamp"}, "sizing": {"notional_per_hedge": 1000},
     "exchange": {"leverage": 2}}
)  # fmt: skip


def _futures(available: str) -> FuturesAccount:
    a = D(available)
    return FuturesAccount(a, D(0), a, a, D(0), D(0))


def _check(spot: dict[str, str], futures: str) -> list[str]:
    balances = {k: Balance(k, D(v), D(0)) for k, v in spot.items()}
    found = capital_shortfalls(
        CONFIG, spot_venue="bitstamp", futures_venue="binance", spot=balances,
        futures=_futures(futures), spot_quotes={"USD", "USDT"}, usd_per_usdt=D("0.999"),
    )  # fmt: skip
    return [s.venue for s in found]


def test_the_best_quote_asset_of_the_spot_venue_counts() -> None:
    assert _check({"USD": "100", "USDT": "2000"}, "1000") == []
    assert _check({"USD": "1100"}, "1000") == []


def test_each_venue_is_named_when_it_cannot_carry_a_hedge() -> None:
    # spot: 1000 × 1.004 fee, after the 2 % buffer; futures: 1000 / 2 × 1.25 margin buffer
    assert _check({"USD": "1000"}, "1000") == ["bitstamp"]
    assert _check({"USDT": "5000"}, "600") == ["binance"]
    assert _check({}, "0") == ["bitstamp", "binance"]


async def test_one_alert_per_change_and_one_when_it_recovers() -> None:
    sink = ListEventSink()
    watch = CapitalWatch(sink, SimulatedClock(kit.T0))
    balances = {"USD": Balance("USD", D("10"), D(0))}
    short = capital_shortfalls(
        CONFIG, spot_venue="bitstamp", futures_venue="binance", spot=balances,
        futures=_futures("5000"), spot_quotes={"USD"},
    )  # fmt: skip

    await watch.observe(short)
    await watch.observe(short)
    await watch.observe([])

    assert [e.kind for e in sink.events] == ["capital.insufficient", "capital.sufficient"]
    assert sink.events[0].data["venue"] == "bitstamp"
