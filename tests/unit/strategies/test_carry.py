"""Carry maths: hand-computed tables and properties (linearity, monotonicity, caps, exactness)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.domain import funding
from strategies import carry
from tests import kit

D = Decimal
RATES = st.decimals(
    min_value=D("-0.03"), max_value=D("0.03"), places=8, allow_nan=False, allow_infinity=False
)
INTERVALS = st.sampled_from([1, 2, 4, 8])
FRACTIONS = st.decimals(
    min_value=D(0), max_value=D("0.05"), places=6, allow_nan=False, allow_infinity=False
)


@pytest.mark.parametrize(
    ("rate", "interval", "apr"),
    [
        ("0.0001", 8, "0.1095"),  # Binance's baseline: 0.01% / 8 h ≈ 10.95% a year
        ("0.0001", 4, "0.219"),  # a 4 h symbol pays six times a day
        ("0.00005", 4, "0.1095"),  # the baseline of a 4 h symbol since 2025-09-18
        ("-0.0002", 8, "-0.219"),  # negative: the short pays
        ("0.0001", 1, "0.876"),
    ],
)
def test_funding_apr_hand_computed_cases_match(rate: str, interval: int, apr: str) -> None:
    assert funding.funding_apr(D(rate), interval) == D(apr)


def test_funding_apr_zero_interval_raises() -> None:
    with pytest.raises(ValueError, match="interval_hours"):
        funding.funding_apr(D("0.0001"), 0)


@given(RATES, RATES, INTERVALS)
def test_funding_apr_is_linear_in_rate(a: Decimal, b: Decimal, interval: int) -> None:
    assert funding.funding_apr(a + b, interval) == funding.funding_apr(
        a, interval
    ) + funding.funding_apr(b, interval)
    assert funding.funding_apr(3 * a, interval) == 3 * funding.funding_apr(a, interval)


@given(RATES, INTERVALS)
def test_funding_apr_is_inversely_proportional_to_interval(rate: Decimal, interval: int) -> None:
    assert funding.funding_apr(rate, interval) * interval == rate * 8760
    if interval > 1:
        assert funding.funding_apr(rate, interval // 2) == 2 * funding.funding_apr(rate, interval)


@given(RATES, INTERVALS)
def test_funding_apr_round_trips_exactly_in_decimal(rate: Decimal, interval: int) -> None:
    apr = funding.funding_apr(rate, interval)

    assert isinstance(apr, Decimal)
    assert funding.rate_from_apr(apr, interval) == rate


@pytest.mark.parametrize(
    ("bid", "ask", "index", "premium"),
    [
        ("50100", "50110", "50000", "0.002"),  # perp bid above index
        ("49890", "49900", "50000", "-0.002"),  # perp ask below index
        ("49990", "50010", "50000", "0"),  # index inside the spread
    ],
)
def test_premium_index_hand_computed_cases_match(
    bid: str, ask: str, index: str, premium: str
) -> None:
    assert funding.premium_index(D(bid), D(ask), D(index)) == D(premium)


@pytest.mark.parametrize(
    ("premium", "interval", "scaled", "expected"),
    [
        ("0", 8, True, "0.0001"),  # |I − P| within 0.05%: F = I
        ("0.0003", 8, True, "0.0001"),
        ("0.002", 8, True, "0.0015"),  # I − P = −0.19% clamped to −0.05%
        ("0.002", 4, True, "0.00075"),  # 4 h symbol since 2025-09-18: divided by 8/4
        ("0.002", 4, False, "0.0015"),  # before 2025-09-18: no scaling
        ("-0.002", 8, True, "-0.0015"),  # negative premium: negative rate
        ("-0.002", 4, True, "-0.00075"),
        ("0.002", 1, True, "0.0001875"),
    ],
)
def test_predicted_funding_rate_follows_binance_formula(
    premium: str, interval: int, scaled: bool, expected: str
) -> None:
    rate = funding.predicted_funding_rate(D(premium), D("0.0001"), interval, scaled=scaled)

    assert rate == D(expected)


def test_predicted_funding_rate_is_clamped_to_the_symbols_cap_and_floor() -> None:
    high = funding.predicted_funding_rate(
        D("0.05"), D("0.0001"), 8, cap=D("0.02"), floor=D("-0.02")
    )
    low = funding.predicted_funding_rate(
        D("-0.05"), D("0.0001"), 8, cap=D("0.02"), floor=D("-0.02")
    )

    assert (high, low) == (D("0.02"), D("-0.02"))


def test_predicted_funding_rate_without_cap_is_not_clamped() -> None:
    assert funding.predicted_funding_rate(D("0.05"), D("0.0001"), 8) == D("0.0495")


@given(RATES, RATES, INTERVALS, FRACTIONS, FRACTIONS, st.booleans())
def test_predicted_funding_rate_clamping_never_exceeds_caps(
    premium: Decimal, interest: Decimal, interval: int, cap: Decimal, floor: Decimal, scaled: bool
) -> None:
    rate = funding.predicted_funding_rate(
        premium, interest, interval, cap=cap, floor=-floor, scaled=scaled
    )

    assert -floor <= rate <= cap


@given(RATES, RATES, INTERVALS)
def test_predicted_funding_rate_stays_within_the_interest_clamp_of_premium(
    premium: Decimal, interest: Decimal, interval: int
) -> None:
    rate = funding.predicted_funding_rate(premium, interest, interval)
    scale = D(interval) / 8

    assert abs(rate - premium * scale) <= D("0.0005") * scale


def test_basis_and_annualised_basis_hand_computed() -> None:
    basis = carry.perp_basis(D("50050"), D("50000"))

    assert basis == D("0.001")
    assert carry.annualised_basis(basis, 720) == D("0.001") * 8760 / 720
    assert carry.annualised_basis(D("0.001"), 8760) == D("0.001")


def test_dated_basis_apr_thirty_days_from_expiry() -> None:
    expiry = kit.T0 + timedelta(days=30)

    apr = carry.dated_basis_apr(D("50100"), D("50000"), expiry, kit.T0)

    assert apr == D("0.73") / 30  # 0.2% × 365 / 30 ≈ 2.43% a year


def test_dated_basis_apr_after_expiry_raises() -> None:
    with pytest.raises(ValueError, match="not after"):
        carry.dated_basis_apr(D("50100"), D("50000"), kit.T0, kit.T0)


@pytest.mark.parametrize(
    ("levels", "notional", "buy", "expected"),
    [
        ([("100", "5"), ("101", "5")], "1000", True, D(1) / 201),  # VWAP 100.4975 vs 100
        ([("100", "20")], "1000", True, D(0)),  # fits in the best level
        ([("100", "1")], "200", True, D(1) / 2001),  # runs out: rest at 100 × (1 + 10 bps)
        ([("100", "5"), ("99", "10")], "1000", False, D(1) / 199),  # sell into bids
        ([], "1000", True, D("0.001")),  # no depth: fallback bps
    ],
)
def test_book_slippage_walks_levels_for_the_trade_size(
    levels: list[tuple[str, str]], notional: str, buy: bool, expected: Decimal
) -> None:
    book = [(D(p), D(q)) for p, q in levels]

    cost = carry.book_slippage(book, D(notional), buy=buy, fallback_bps=D(10))

    assert abs(cost - expected) < D("1e-20")


@given(
    st.decimals(min_value=1, max_value=5000, places=2),
    st.decimals(min_value=1, max_value=5000, places=2),
)
def test_book_slippage_never_decreases_with_size(a: Decimal, b: Decimal) -> None:
    asks = [(D("100"), D("3")), (D("100.5"), D("4")), (D("102"), D("10"))]
    small, large = sorted((a, b))

    assert (
        D(0)
        <= carry.book_slippage(asks, small, buy=True, fallback_bps=D(5))
        <= (carry.book_slippage(asks, large, buy=True, fallback_bps=D(5)))
    )


def test_net_carry_and_breakeven_hand_computed() -> None:
    # Baseline 10.95% over 30 days = 0.9%; fees 0.3% and slippage 0.08% round trip.
    net = carry.net_carry(D("0.1095"), 720, D(0), D("0.003"), D("0.0008"))

    assert net == D("0.0052")
    assert carry.breakeven_hours(D("0.0038"), D("0.1095")) == D("304")


def test_breakeven_hours_without_positive_funding_is_none() -> None:
    assert carry.breakeven_hours(D("0.0038"), D("-0.05")) is None
    assert carry.breakeven_hours(D("-0.001"), D("-0.05")) == D(0)


@given(RATES, FRACTIONS, FRACTIONS, FRACTIONS, st.integers(min_value=1, max_value=8760))
def test_net_carry_is_monotone_decreasing_in_fees(
    apr: Decimal, basis: Decimal, fee_a: Decimal, fee_b: Decimal, horizon: int
) -> None:
    low, high = sorted((fee_a, fee_b))

    cheap = carry.net_carry(apr, horizon, basis, low, D("0.0004"))
    dear = carry.net_carry(apr, horizon, basis, high, D("0.0004"))

    assert cheap >= dear
    assert abs((cheap - dear) - (high - low)) < D("1e-20")  # one unit of fee, one of carry


def test_ewma_weighs_the_value_one_halflife_old_half() -> None:
    # Weights oldest first: 0.5 and 1, normalised to 1/3 and 2/3.
    assert abs(funding.ewma([D(0), D(3)], D(1)) - D(2)) < D("1e-25")


@given(
    st.lists(RATES, min_size=1, max_size=30),
    st.decimals(min_value=D("0.5"), max_value=50, places=1),
)
def test_ewma_stays_within_the_range_of_its_values(
    values: list[Decimal], halflife: Decimal
) -> None:
    mean = funding.ewma(values, halflife)

    assert min(values) - D("1e-20") <= mean <= max(values) + D("1e-20")


def test_settled_aprs_follow_an_interval_change_from_8h_to_4h() -> None:
    rows = kit.settled("X/USDT:USDT", ["0.0001"] * 3, kit.T0, 8) + kit.settled(
        "X/USDT:USDT", ["0.0001"] * 2, kit.T0 + timedelta(hours=8), 4
    )

    aprs = funding.settled_aprs(rows, 4)

    assert aprs == [D("0.1095")] * 3 + [D("0.219")] * 2


def test_settled_aprs_gap_in_history_uses_current_interval() -> None:
    rows = kit.settled("X/USDT:USDT", ["0.0001", "0.0001", "0.0001", "0.0001"], kit.T0, 8)
    gappy = [rows[0], rows[1], rows[3]]  # 16 h between the last two

    assert funding.settled_aprs(gappy, 4)[-1] == D("0.219")


@given(st.lists(RATES, min_size=1, max_size=25), INTERVALS)
def test_settled_ewma_apr_shortcut_equals_the_general_path(
    rates: list[Decimal], interval: int
) -> None:
    rows = kit.settled("X/USDT:USDT", [str(r) for r in rates], kit.T0, interval)

    fast = funding.settled_ewma_apr(rows, interval, D(9))
    general = funding.ewma(funding.settled_aprs(rows, interval), D(9))

    assert abs(fast - general) < D("1e-20")


@pytest.mark.parametrize(
    ("rates", "run"),
    [(["0.0001", "-0.0001", "-0.0002"], 2), (["-0.0001", "0.0001"], 0), (["-1", "-1"], 2), ([], 0)],
)
def test_trailing_negative_counts_the_latest_negative_run(rates: list[str], run: int) -> None:
    assert funding.trailing_negative(kit.settled("X/USDT:USDT", rates)) == run


def test_hours_between_is_exact() -> None:
    later = kit.T0 + timedelta(hours=1, minutes=30, microseconds=36)

    assert funding.hours_between(kit.T0, later) == D("1.50000001")
