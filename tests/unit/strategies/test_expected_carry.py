"""`expected_carry`: enter, stay, rotate and exit by forecast carry net of the real costs."""

from __future__ import annotations

import math
from dataclasses import replace
from decimal import Decimal

from bot.domain import CloseHedge, Intent, OpenHedge, ResizeHedge
from bot.domain.params import SizingParams, UniverseParams
from strategies.carry_value import MIN_VARIANCE_SAMPLES, log_price_variance
from strategies.expected_carry import (
    ExpectedCarry,
    ExpectedCarryParams,
    resize_life_hours,
    settled_carry_over,
    value_of,
)
from tests.kit import pair as kit_pair
from tests.unit.strategies.scenario import Market, hedge, market_snapshot, portfolio
from tests.unit.strategies.scenario import evaluate as evaluate_threshold_strategy
from tests.unit.strategies.scenario import params as threshold_params

D = Decimal
ANCHOR = "0.0001"


def ev_params(**overrides: object) -> ExpectedCarryParams:
    universe = UniverseParams(symbols=(), min_quote_volume_24h=D("1000000"))
    sizing = overrides.pop("sizing", SizingParams())
    return ExpectedCarryParams.model_validate({"universe": universe, "sizing": sizing, **overrides})


def evaluate(
    snapshot: object, book: object = None, p: ExpectedCarryParams | None = None
) -> list[Intent]:
    return list(ExpectedCarry().evaluate(snapshot, book or portfolio(), p or ev_params()))  # type: ignore[arg-type]


def low_steady(base: str = "BTC") -> Market:
    """A low but positive regime: 0.003% per 8 h (3.3% APR) for 200 settlements."""
    return Market(base, rate="0.00003", history=["0.00003"] * 200)


def test_low_but_positive_funding_is_entered_where_the_apr_threshold_sits_out() -> None:
    snap = market_snapshot(low_steady())

    (intent,) = evaluate(snap)

    assert isinstance(intent, OpenHedge) and intent.pair == "BTC/USDT"
    m = intent.metrics
    # A regime that never moved back toward the 0.01% anchor fits the highest persistence.
    assert m["forecast_persistence"] == D("0.999") and m["forecast_fitted"] == 1
    assert m["round_trip"] == D("0.0038")  # 2 x (0.1% + 0.05%) fees + 4 x 2 bps slippage
    assert m["net_entry"] == m["expected_carry"] - m["round_trip"] > D("0.002")
    assert "forecast carry" in intent.reason
    # The threshold strategy (entry_apr 10%) does not enter the same market.
    assert evaluate_threshold_strategy(snap, p=threshold_params(entry_apr=D("0.10"))) == []


def test_entry_needs_the_carry_to_beat_the_round_trip_by_the_margin() -> None:
    snap = market_snapshot(low_steady())

    assert evaluate(snap, p=ev_params(entry_margin=D("0.05"))) == []  # 5% of notional: too much


def test_a_short_dip_that_does_not_pay_a_round_trip_is_sat_through() -> None:
    history = [ANCHOR] * 200 + ["-0.0002"] * 3
    snap = market_snapshot(Market("BTC", rate="-0.0002", history=history))

    assert evaluate(snap, portfolio(hedge("BTC", age_hours=200))) == []


def test_sustained_negative_funding_forecast_closes_with_its_numbers() -> None:
    history = [ANCHOR] * 150 + ["-0.0006"] * 18
    snap = market_snapshot(Market("BTC", rate="-0.0006", history=history))

    (close,) = evaluate(snap, portfolio(hedge("BTC", age_hours=200)))

    assert isinstance(close, CloseHedge) and close.reason.startswith("expected_loss")
    m = close.metrics
    assert -m["worst_carry"] > m["round_trip"]
    assert m["forecast_level"] < 0 and m["worst_hours"] > 0
    # The same dip does not let a new hedge in either.
    assert evaluate(snap) == []


def test_hard_exit_after_a_run_of_negative_settlements_even_when_young() -> None:
    history = [ANCHOR] * 100 + ["-0.00001"] * 4
    snap = market_snapshot(Market("BTC", rate="-0.00001", history=history))

    (close,) = evaluate(
        snap, portfolio(hedge("BTC", age_hours=1)), ev_params(negative_periods_to_exit=4)
    )

    assert isinstance(close, CloseHedge) and close.reason.startswith("negative_funding")


def test_max_holding_closes_a_hedge_whose_forecast_carry_is_no_longer_positive() -> None:
    # Slightly negative funding, broken by zero prints (no hard-exit run): over H the
    # forecast carry is below zero, so the old hedge is not renewed.
    fading = market_snapshot(Market("BTC", rate="0", history=(["-0.00003"] * 10 + ["0"]) * 18))
    old = hedge("BTC", age_hours=9000)

    (close,) = evaluate(fading, portfolio(old))

    assert isinstance(close, CloseHedge) and close.reason.startswith("max_holding")
    assert close.metrics["expected_carry"] < 0
    assert evaluate(fading, portfolio(hedge("BTC", age_hours=200))) == []  # young: kept


def test_max_holding_renews_a_hedge_whose_forecast_carry_is_positive() -> None:
    # Closing and reopening the same pair would pay four legs for nothing; its open is paid,
    # so a held hedge is renewed on a positive carry even where a new one would not be opened.
    steady = market_snapshot(low_steady())
    flat = market_snapshot(Market("BTC", rate="0", history=["0"] * 200))
    old = portfolio(hedge("BTC", age_hours=9000))

    assert evaluate(steady, old) == []
    assert evaluate(flat, old) == []
    assert evaluate(flat) == []  # the entry test fails there: carry does not pay a round trip
    (intent,) = evaluate(steady)
    assert isinstance(intent, OpenHedge)


def test_entry_waits_while_negative_funding_is_expected_ahead() -> None:
    # Slightly negative funding so far (45 settlements, so the default persistence 0.99; no
    # run long enough for the hard exit): over H the reversion to the anchor pays the round
    # trip by far, and the loss expected first is less than a round trip, but entering after
    # it costs the same round trip.
    negative = (["-0.00005"] * 14 + ["0"]) * 3
    dipping = market_snapshot(Market("BTC", rate="-0.00005", history=negative))
    recovered = market_snapshot(Market("BTC", rate=ANCHOR, history=negative + [ANCHOR] * 14))
    (value,) = [value_of(p, dipping, ev_params(), D(1000)) for p in dipping.pairs]
    assert value is not None and value.net_entry > D("0.002")
    assert 0 < -value.worst_carry < value.round_trip

    assert evaluate(dipping) == []
    (intent,) = evaluate(recovered)
    assert isinstance(intent, OpenHedge) and intent.metrics["worst_carry"] == 0


def test_a_forecast_loss_the_settlements_do_not_bear_out_is_sat_through() -> None:
    # A deep negative regime whose run just broke (a positive print), then started again:
    # the forecast still expects a loss larger than a round trip, but the current run of
    # negative settlements has cost 3 x 0.06% = 0.18% < the 0.38% round trip.
    base = [ANCHOR] * 150 + ["-0.0006"] * 15 + ["0.00001"]
    young_run = market_snapshot(Market("BTC", rate="-0.0006", history=[*base, *["-0.0006"] * 3]))
    long_run = market_snapshot(Market("BTC", rate="-0.0006", history=[*base, *["-0.0006"] * 7]))
    held = portfolio(hedge("BTC", age_hours=200))

    assert evaluate(young_run, held) == []
    (close,) = evaluate(long_run, held)

    assert isinstance(close, CloseHedge) and close.reason.startswith("expected_loss")
    assert close.metrics["run_loss"] == D("0.0042") >= close.metrics["round_trip"]
    assert -close.metrics["worst_carry"] > close.metrics["round_trip"]


def test_rotation_only_when_the_gain_beats_four_legs() -> None:
    held = Market("BTC", rate=ANCHOR, history=[ANCHOR] * 200)
    slightly = Market("ETH", rate="0.00011", history=["0.00011"] * 200)
    much = Market("ETH", rate="0.001", history=["0.001"] * 200)
    one = ev_params(sizing=SizingParams(max_hedges=1))

    assert (
        evaluate(market_snapshot(held, slightly), portfolio(hedge("BTC", age_hours=200)), one) == []
    )
    close, open_ = evaluate(
        market_snapshot(held, much), portfolio(hedge("BTC", age_hours=200)), one
    )

    assert isinstance(close, CloseHedge) and close.reason.startswith("rotation")
    assert close.metrics["rotation_gain"] > 0
    assert isinstance(open_, OpenHedge) and open_.pair == "ETH/USDT"
    assert close.metrics["settled_rotation_gain"] > 0


def test_no_rotation_on_a_forecast_the_settled_funding_does_not_bear_out() -> None:
    # ETH paid below BTC for months and spiked only lately: the forecast favours it by more
    # than four legs, the funding settled over the last H does not.
    held = Market("BTC", rate=ANCHOR, history=[ANCHOR] * 200)
    spike = Market("ETH", rate="0.003", history=["-0.0002"] * 190 + ["0.003"] * 10)
    one = ev_params(sizing=SizingParams(max_hedges=1))

    assert evaluate(market_snapshot(held, spike), portfolio(hedge("BTC", age_hours=200)), one) == []
    # Flat, the same ETH market is entered first: its forecast is the better one.
    (intent,) = evaluate(market_snapshot(held, spike), portfolio(), one)
    assert isinstance(intent, OpenHedge) and intent.pair == "ETH/USDT"


def test_a_hedge_drifted_out_of_the_band_is_resized_to_constant_notional() -> None:
    snap = market_snapshot(low_steady())
    grown = replace(
        hedge("BTC", age_hours=200), perp_quantity=D(13), spot_quantity=D(13)
    )  # 1300 USDT
    inside = replace(
        hedge("BTC", age_hours=200), perp_quantity=D(11), spot_quantity=D(11)
    )  # 1100 USDT

    (resize,) = evaluate(snap, portfolio(grown))

    # Back to half the band above the target (band 20%): 1100, not 1000.
    assert isinstance(resize, ResizeHedge) and resize.notional == D(1100)
    assert resize.metrics["drift"] == D("0.3")
    assert evaluate(snap, portfolio(inside)) == []


def test_a_shrunk_hedge_is_grown_back_only_when_the_added_notional_pays_its_round_trip() -> None:
    shrunk = replace(
        hedge("BTC", age_hours=200), perp_quantity=D(7), spot_quantity=D(7)
    )  # 700 USDT: 30% under the 1000 target
    paying = market_snapshot(low_steady())
    flat = market_snapshot(Market("BTC", rate="0", history=["0"] * 200))

    (resize,) = evaluate(paying, portfolio(shrunk))
    assert isinstance(resize, ResizeHedge) and resize.notional == D(900)  # half the band below
    # Zero funding: the extra 300 USDT would not earn its fees; the hedge is kept as it is.
    assert evaluate(flat, portfolio(shrunk)) == []


def swinging(base: str, rate: str, swing: str) -> Market:
    """200 settlements at `rate`, the mark alternating between 100 and 100 x (1 + swing)."""
    high = str(D(100) * (1 + D(swing)))
    marks = ["100" if i % 2 == 0 else high for i in range(200)]
    return Market(base, rate=rate, history=[rate] * 200, marks=marks)


def test_a_grow_back_is_valued_over_the_added_notionals_expected_life() -> None:
    shrunk = replace(
        hedge("BTC", age_hours=200), perp_quantity=D(7), spot_quantity=D(7)
    )  # 700 USDT: 30% under the 1000 target
    calm = market_snapshot(swinging("BTC", "0.00003", "0.005"))  # ±0.5% a settlement
    wild = market_snapshot(swinging("BTC", "0.00003", "0.05"))  # ±5% a settlement

    (resize,) = evaluate(calm, portfolio(shrunk))
    assert isinstance(resize, ResizeHedge) and resize.notional == D(900)
    # A quiet price: the addition is expected to outlast the holding, valued over H.
    assert resize.metrics["resize_life_hours"] == D(2160)
    assert resize.metrics["resize_net"] > D("0.002")
    assert "expected life" in resize.reason
    # A price that swings 5% a settlement: a rally by the band is expected to cut the
    # addition back within ~2 weeks, too soon for 3.3% APR to pay its four legs of fees.
    assert evaluate(wild, portfolio(shrunk)) == []


def test_a_grow_back_needs_the_settled_funding_to_pay_it_too() -> None:
    shrunk = replace(hedge("BTC", age_hours=200), perp_quantity=D(7), spot_quantity=D(7))
    # Zero for months, then ten settlements at 0.03%: the forecast (reverting to the 0.01%
    # anchor) pays the addition's round trip; the funding settled over the last H does not.
    history = ["0"] * 290 + ["0.0003"] * 10
    snap = market_snapshot(Market("BTC", rate="0.0003", history=history))
    value = value_of(kit_pair("BTC"), snap, ev_params(), D(1000))
    assert value is not None and value.net_entry > D("0.002")  # an entry would pass
    settled = snap.funding_history["BTC/USDT:USDT"]
    assert settled_carry_over(settled, D(2160), 8) - value.round_trip < D("0.002")

    assert evaluate(snap, portfolio(shrunk)) == []


def test_the_settled_witness_of_a_grow_back_looks_back_as_long_as_its_life() -> None:
    rows = market_snapshot(
        Market("BTC", rate="0.0001", history=["0.0003"] * 100 + ["0.0001"] * 30)
    ).funding_history["BTC/USDT:USDT"]
    # 240 h = 30 settlements of 8 h: only the latest 30, not the older, higher ones.
    assert settled_carry_over(rows, D(240), 8) == 30 * D("0.0001")
    # More hours than settled: the mean settled rate, scaled up to them.
    assert settled_carry_over(rows[-10:], D(160), 8) == 20 * D("0.0001")
    assert settled_carry_over([], D(160), 8) == 0


def test_resize_life_follows_the_random_walks_exit_times() -> None:
    p = ev_params(rebalance_band=D("0.2"))
    value = value_of(
        kit_pair("BTC"), market_snapshot(swinging("BTC", "0.00003", "0.05")), p, D(1000)
    )
    assert value is not None and value.price_variance is not None
    # 3 b² / σ², band 0.2, whatever the shortfall.
    life = resize_life_hours(value, p, D("0.3"))
    assert life == 3 * D("0.2") ** 2 / value.price_variance == resize_life_hours(value, p, D(1))
    assert D(350) < life < D(450)  # ln(1.05)² / 8 h per settlement ≈ 2.98e-4 per hour
    assert resize_life_hours(replace(value, price_variance=None), p, D("0.3")) == D(2160)


def test_a_grown_hedge_is_cut_back_whatever_the_forecast() -> None:
    # The short's margin: a hedge 30% over target is cut back even where a grow-back
    # would not pay (zero funding, a price swinging 5% a settlement).
    grown = replace(hedge("BTC", age_hours=200), perp_quantity=D(13), spot_quantity=D(13))
    snap = market_snapshot(swinging("BTC", "0", "0.05"))

    (resize,) = evaluate(snap, portfolio(grown))

    assert isinstance(resize, ResizeHedge) and resize.notional == D(1100)
    assert resize.metrics["drift"] == D("0.3")


def test_price_variance_needs_settled_marks() -> None:
    rows = market_snapshot(swinging("BTC", "0.0001", "0.05")).funding_history["BTC/USDT:USDT"]
    variance = log_price_variance(rows)
    assert variance is not None
    assert abs(variance - D(str(math.log(1.05) ** 2 / 8))) < D("1e-10")
    assert log_price_variance(rows[:MIN_VARIANCE_SAMPLES]) is None  # one return short
    assert log_price_variance([replace(r, mark_price=None) for r in rows]) is None


def test_a_hedge_younger_than_min_hold_is_not_closed_on_the_forecast() -> None:
    history = [ANCHOR] * 150 + ["-0.0006"] * 18
    snap = market_snapshot(Market("BTC", rate="-0.0006", history=history))

    assert evaluate(snap, portfolio(hedge("BTC", age_hours=100))) == []  # min hold 168 h


def test_min_hold_must_not_exceed_max_holding() -> None:
    try:
        ev_params(min_hold_hours=D(100), max_holding_hours=D(10))
    except ValueError as exc:
        assert "min_hold_hours" in str(exc)
    else:
        raise AssertionError("accepted min_hold_hours > max_holding_hours")


def test_without_settled_history_the_exchange_rate_is_the_level() -> None:
    snap = market_snapshot(Market("NEW", rate="0.0003", history=[]))

    (intent,) = evaluate(snap)

    assert isinstance(intent, OpenHedge)
    assert intent.metrics["forecast_level"] == D("0.0003")
    assert intent.metrics["forecast_fitted"] == 0
