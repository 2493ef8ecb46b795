"""The fee model: VIP tiers, the BNB discount, paper fills and costs at the rates paid,
and BNB fees valued in USDT in the ledger's P&L."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest
from pydantic import ValidationError

from bot.clock import SimulatedClock
from bot.domain import Fill, OrderRequest, OrderType, Side
from bot.domain.params import FeeParams
from bot.exchange.simulator import SimulatedExchange
from bot.execution.legs import FeePrices, fees_in_usdt
from bot.pnl import fee_usdt
from strategies.funding_carry import FundingCarryParams
from strategies.signals import carry_signal
from tests import kit

D = Decimal
SPOT, PERP = "BTC/USDT", "BTC/USDT:USDT"


def test_vip_tier_sets_the_four_rates_and_explicit_rates_win() -> None:
    vip = FeeParams.model_validate({"vip_tier": 4})
    assert (vip.spot_maker, vip.spot_taker, vip.futures_maker, vip.futures_taker) == (
        D("0.00042"),
        D("0.00054"),
        D("0.0001"),
        D("0.0003"),
    )
    mixed = FeeParams.model_validate({"vip_tier": 4, "spot_taker": "0.0005"})
    assert (mixed.spot_taker, mixed.futures_taker) == (D("0.0005"), D("0.0003"))


@pytest.mark.parametrize("tier", [10, -1, True])
def test_an_unknown_vip_tier_is_refused_naming_the_field(tier: object) -> None:
    with pytest.raises(ValidationError, match="vip_tier"):
        FeeParams.model_validate({"vip_tier": tier})


def test_bnb_discount_takes_25_percent_off_spot_and_10_off_futures() -> None:
    paid = FeeParams(bnb_discount=True).effective()
    assert (paid.spot_taker, paid.spot_maker) == (D("0.00075"), D("0.00075"))
    assert (paid.futures_taker, paid.futures_maker) == (D("0.00045"), D("0.00018"))
    assert not paid.bnb_discount and paid.effective() == paid  # applied once only
    assert FeeParams().effective() == FeeParams()


def _sim(fees: FeeParams) -> SimulatedExchange:
    sim = SimulatedExchange(
        {SPOT: kit.spot(), PERP: kit.perp()}, clock=SimulatedClock(kit.T0), fees=fees
    )
    sim.deposit("spot", "USDT", D("10000"))
    sim.deposit("futures", "USDT", D("10000"))
    sim.set_book(kit.book(SPOT, [("49999", "1")], [("50000", "1")]))
    sim.set_book(kit.book(PERP, [("50000", "5")], [("50000.1", "5")]))
    sim.set_mark(PERP, D("50000"))
    return sim


def test_paper_fills_with_bnb_pay_the_discounted_fee_in_usdt_and_none_in_the_base() -> None:
    sim = _sim(FeeParams(vip_tier=0, bnb_discount=True))

    buy = sim.create_order(OrderRequest(SPOT, Side.BUY, OrderType.MARKET, D("0.01"), "b1"))
    short = sim.create_order(OrderRequest(PERP, Side.SELL, OrderType.MARKET, D("0.01"), "s1"))

    assert (buy.fee, buy.fee_asset) == (D("0.375"), "USDT")  # 500 x 0.075%
    assert sim.spot_balances()["BTC"].free == D("0.01")
    assert (short.fee, short.fee_asset) == (D("0.225"), "USDT")  # 500 x 0.045%


def _fill(fee: str, asset: str, trade_id: str = "1") -> Fill:
    return Fill(trade_id, SPOT, "9", Side.BUY, D("50000"), D("0.01"), D(fee), asset, kit.T0)


def test_a_bnb_fee_is_valued_at_the_bnb_price_when_recorded() -> None:
    prices = FeePrices()
    fills = [_fill("0.000625", "BNB", "1"), _fill("0.00001", "BTC", "2"), _fill("0.5", "USDT", "3")]
    assert fees_in_usdt(fills, prices) == {"2": D("0.50000"), "3": D("0.5")}  # no BNB price yet

    prices.observe({"BNB/USDT": kit.quote("BNB/USDT", "600", "600.1")})
    converted = fees_in_usdt(fills, prices)

    assert converted["1"] == D("0.375000")  # 0.000625 BNB x 600
    recorded = _fill("0.000625", "BNB")
    assert fee_usdt(replace(recorded, fee_usdt=converted["1"])) == D("0.375")
    assert fee_usdt(recorded) == 0  # never converted: reported as 0, with a warning then


def test_scan_signal_costs_and_break_even_use_the_rates_paid() -> None:
    snap = kit.snapshot(["BTC"], rate="0.0001")
    pair = kit.pair("BTC")
    base = FundingCarryParams()
    bnb = base.model_copy(update={"fees": FeeParams(bnb_discount=True)})

    plain = carry_signal(pair, snap, base, D("1000"))
    cheaper = carry_signal(pair, snap, bnb, D("1000"))

    assert plain is not None and cheaper is not None
    assert plain.breakeven_hours is not None and cheaper.breakeven_hours is not None
    assert cheaper.breakeven_hours < plain.breakeven_hours
    assert cheaper.net_apr > plain.net_apr
