"""The forecast's fast fit gives the very floats of the plain loop it replaced.

`fit_persistence` sums with numpy and `settled_rates` converts only the rows new since the
last history of a symbol; a backtest's summary.json must not move by a digit for it. The
reference below is the loop the module ran before (kept verbatim as the oracle): every
result must be equal bit for bit, on random histories and on windows sliding over one.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain import SettledFunding
from strategies import forecast as fc
from strategies.forecast import FIT_PERIODS, ewma_levels, fit_persistence, settled_rates

T0 = datetime(2020, 1, 1, tzinfo=UTC)


def reference_levels(rates: Sequence[float], halflife: float) -> list[float]:
    decay = 0.5 ** (1 / halflife)
    out: list[float] = []
    level = rates[0] if rates else 0.0
    for rate in rates:
        level = decay * level + (1 - decay) * rate
        out.append(level)
    return out


def reference_fit(
    rates: Sequence[float], levels: Sequence[float], anchor: float, periods: int
) -> float | None:
    count = len(rates) - periods
    if count < fc.MIN_FIT_SAMPLES:
        return None
    window = sum(rates[1 : periods + 1])
    sxy = sxx = 0.0
    for t in range(count):
        x = levels[t] - anchor
        y = window / periods - anchor
        sxy += x * y
        sxx += x * x
        if t + 1 < count:
            window += rates[t + periods + 1] - rates[t + 1]
    if sxx <= 0:
        return None
    return fc._invert_weight(sxy / sxx, periods)


def reference_forecast(
    history: Sequence[SettledFunding], halflife: Decimal, anchor: Decimal
) -> tuple[Decimal, Decimal | None]:
    """(level, fitted persistence) as `forecast` worked them out before."""
    rates = [float(row.rate) for row in history]
    levels = reference_levels(rates, float(halflife))
    phi = reference_fit(rates, levels, float(anchor), FIT_PERIODS)
    return Decimal(str(levels[-1])), None if phi is None else Decimal(str(round(phi, 6)))


def history(rates: Sequence[Decimal], symbol: str = "X/USDT:USDT") -> list[SettledFunding]:
    return [
        SettledFunding(symbol, T0 + timedelta(hours=8 * i), rate) for i, rate in enumerate(rates)
    ]


def funding_rates(rng: random.Random, count: int) -> list[Decimal]:
    """Funding-like rates: long runs at the anchor, regimes, spikes, 8 decimals as Binance."""
    out, dev = [], 0.0
    for _ in range(count):
        dev = 0.97 * dev + rng.gauss(0, 0.0002)
        rate = 0.0001 if rng.random() < 0.4 else 0.0001 + dev
        out.append(Decimal(f"{rate:.8f}"))
    return out


rate_lists = st.lists(
    st.decimals(min_value=Decimal("-0.003"), max_value=Decimal("0.003"), places=8),
    min_size=1,
    max_size=300,
)


@settings(max_examples=200, deadline=None)
@given(rates=rate_lists, halflife=st.sampled_from([1.0, 3.0, 9.0, 21.0, 50.5]))
def test_levels_and_fit_equal_the_plain_loop_bit_for_bit(
    rates: list[Decimal], halflife: float
) -> None:
    floats = [float(r) for r in rates]
    levels = ewma_levels(floats, halflife)
    assert levels == reference_levels(floats, halflife)
    for anchor in (0.0001, 0.0, -0.00005):
        for periods in (1, FIT_PERIODS, 40):
            assert fit_persistence(floats, levels, anchor, periods) == reference_fit(
                floats, levels, anchor, periods
            )


def test_fit_equals_the_plain_loop_on_long_funding_like_histories() -> None:
    rng = random.Random(15)
    for count in (81, 82, 200, 500, 1000):
        floats = [float(r) for r in funding_rates(rng, count)]
        levels = ewma_levels(floats, 21.0)
        fitted = fit_persistence(floats, levels, 0.0001, FIT_PERIODS)
        assert fitted is not None
        assert fitted == reference_fit(floats, levels, 0.0001, FIT_PERIODS)


def test_every_window_of_a_sliding_history_forecasts_as_the_full_fit() -> None:
    """Settlement by settlement, as the market data hands them: growing, then sliding by
    one row (sometimes by two, a late settlement), each window a new tuple of the same rows."""
    rng = random.Random(7)
    rows = history(funding_rates(rng, 900))
    end, window = 1, 500
    while end <= len(rows):
        shown = tuple(rows[max(0, end - window) : end])
        got = fc.forecast(
            shown,
            interest_rate=Decimal("0.0001"),
            interval_hours=8,
            halflife=Decimal(21),
            default_persistence=Decimal("0.99"),
        )
        level, phi = reference_forecast(shown, Decimal(21), Decimal("0.0001"))
        assert got is not None
        assert got.level == level
        assert got.fitted is (phi is not None)
        if phi is not None:
            assert got.persistence == phi
        end += 2 if rng.random() < 0.05 else 1


@settings(max_examples=100, deadline=None)
@given(
    first=rate_lists,
    dropped=st.integers(min_value=0, max_value=5),
    added=st.lists(
        st.decimals(min_value=Decimal("-0.003"), max_value=Decimal("0.003"), places=8),
        max_size=10,
    ),
    replace_at=st.one_of(st.none(), st.integers(min_value=0, max_value=400)),
)
def test_settled_rates_of_the_next_history_are_its_own_floats(
    first: list[Decimal], dropped: int, added: list[Decimal], replace_at: int | None
) -> None:
    """Whatever the next history of a symbol is (slid, extended, a row replaced by another
    with a different rate, or unrelated), its floats are those of its own rows."""
    before = history(first, symbol="H/USDT:USDT")
    settled_rates(tuple(before))
    start = len(before)
    after = before[dropped:] + [
        SettledFunding("H/USDT:USDT", T0 + timedelta(hours=8 * (start + i)), r)
        for i, r in enumerate(added)
    ]
    if replace_at is not None and after:
        at = replace_at % len(after)
        old = after[at]
        after[at] = SettledFunding(old.symbol, old.funding_time, old.rate + Decimal("0.0001"))
    if not after:
        return
    assert list(settled_rates(tuple(after))) == [float(r.rate) for r in after]
    assert list(settled_rates(after)) == [float(r.rate) for r in after]  # a list as well
