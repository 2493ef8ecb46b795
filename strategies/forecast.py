"""Funding forecast: mean reversion toward Binance's interest anchor, persistence fitted.

Binance's funding is `F = P + clamp(I − P, ±0.05%)`: while the premium sits near the interest
rate I (0.01% per 8 h, scaled by the interval), F prints exactly I, and departures from it
revert while regimes persist for weeks. The model, per perpetual, in rates per period:

    level  x_t = EWMA of the settled rates up to t (half-life h periods)
    E[r_{t+k}] = a + φ^k (x_t − a)          a = the anchor I × interval / 8

so the mean rate over the next n periods is a + (x_t − a) · g(φ, n), with
g(φ, n) = φ (1 − φ^n) / (n (1 − φ)). The persistence φ is fitted on the settled history the
strategy sees (past only, a walk-forward fit): the least-squares slope β of the realised
mean over the next `FIT_PERIODS` periods on (x_t − a), over every t whose next
`FIT_PERIODS` are already settled, then φ solves g(φ, FIT_PERIODS) = β. With too little
history, or a slope outside (0, 1), `default_persistence` (or the nearest bound) is used.

The fit runs on floats (a statistical estimate, not money); the forecast is `Decimal`.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import numpy as np

from bot.domain import SettledFunding

HOURS_PER_YEAR = Decimal(8760)
FIT_PERIODS = 21
"""Horizon (periods) the persistence is fitted at: a week of 8-hour settlements."""
MIN_FIT_SAMPLES = 60
"""Fewer (level, realised mean) pairs than this: the default persistence is used."""
PHI_BOUNDS = (0.5, 0.999)


@dataclass(frozen=True, slots=True)
class FundingForecast:
    """The forecast of one perpetual's funding, per settlement period of `interval_hours`."""

    anchor: Decimal
    level: Decimal
    persistence: Decimal
    interval_hours: int
    fitted: bool
    """True when `persistence` was fitted on the history, False when it is the default."""

    def mean_rate(self, hours: Decimal | int) -> Decimal:
        """Return the expected mean rate per period over the next `hours`."""
        n = max(Decimal(hours) / self.interval_hours, Decimal(1))
        return self.anchor + (self.level - self.anchor) * reversion_weight(self.persistence, n)

    def mean_apr(self, hours: Decimal | int) -> Decimal:
        """Return `mean_rate(hours)` annualised."""
        return self.mean_rate(hours) * HOURS_PER_YEAR / self.interval_hours

    def carry(self, hours: Decimal | int) -> Decimal:
        """Return the expected funding over the next `hours`, as a fraction of notional."""
        return self.mean_rate(hours) * Decimal(hours) / self.interval_hours

    def next_rate(self) -> Decimal:
        """Return the expected rate of the next settlement."""
        return self.anchor + (self.level - self.anchor) * self.persistence

    def worst_carry(self, limit_hours: Decimal | int) -> tuple[Decimal, Decimal]:
        """Return (the lowest expected cumulative funding over any horizon up to
        `limit_hours`, that horizon in hours): what closing now could save at best.

        The expected rate a + φ^k (x − a) changes sign at most once, so the lowest
        cumulative sum is at the last period with a negative expected rate (0 when none).
        """
        gap = self.level - self.anchor
        if self.anchor >= 0 and self.level >= 0:
            return Decimal(0), Decimal(0)  # every expected rate lies between the two
        limit = int(Decimal(limit_hours) / self.interval_hours)
        total = Decimal(0)
        worst = (Decimal(0), Decimal(0))
        factor = Decimal(1)
        for k in range(1, limit + 1):
            factor *= self.persistence
            rate = self.anchor + gap * factor
            total += rate
            if total < worst[0]:
                worst = (total, Decimal(k * self.interval_hours))
            if rate >= 0:
                break
        return worst


def reversion_weight(phi: Decimal, periods: Decimal) -> Decimal:
    """g(φ, n) = φ (1 − φ^n) / (n (1 − φ)): the weight of today's deviation in the mean
    over the next n periods (1 when φ = 1)."""
    if phi >= 1:
        return Decimal(1)
    if phi <= 0:
        return Decimal(0)
    return phi * (1 - phi**periods) / (periods * (1 - phi))


def anchor_rate(interest_rate: Decimal, interval_hours: int) -> Decimal:
    """Return the interest anchor per period: the 8-hour interest rate scaled by the interval."""
    return interest_rate * interval_hours / 8


def forecast(
    history: Sequence[SettledFunding],
    *,
    interest_rate: Decimal,
    interval_hours: int,
    halflife: Decimal,
    default_persistence: Decimal,
) -> FundingForecast | None:
    """Return the forecast from the settled `history` (oldest first), None without history."""
    if not history:
        return None
    rates = settled_rates(history)
    anchor = anchor_rate(interest_rate, interval_hours)
    levels = ewma_levels(rates, float(halflife))
    phi = fit_persistence(rates, levels, float(anchor), FIT_PERIODS)
    persistence = default_persistence if phi is None else Decimal(str(round(phi, 6)))
    return FundingForecast(
        anchor=anchor,
        level=Decimal(str(levels[-1])),
        persistence=persistence,
        interval_hours=interval_hours,
        fitted=phi is not None,
    )


_RATES_KEPT: dict[str, tuple[tuple[SettledFunding, ...], array[float]]] = {}
_RATES_KEPT_MAX = 512
_NEW_ROWS_LOOKED_FOR = 8


def settled_rates(history: Sequence[SettledFunding]) -> array[float]:
    """Return `float(row.rate)` of every row of `history` (an `array` of doubles, which numpy
    reads without a copy), converting only the rows new since the last call for the same
    symbol.

    A history slides by a settlement at a time (the oldest rows dropped, the new ones
    appended), so the rows it shares with the previous one keep their floats. Shared means
    equal (the tuples compare equal, identical rows at C speed): the floats are then the
    same by construction, and anything else is converted in full.
    """
    rows = tuple(history)
    kept = _RATES_KEPT.get(rows[0].symbol)
    rates: array[float] | None = None
    if kept is not None:
        rates = _reuse(rows, *kept)
    if rates is None:
        rates = array("d", [float(row.rate) for row in rows])
    if len(_RATES_KEPT) >= _RATES_KEPT_MAX:
        _RATES_KEPT.clear()
    _RATES_KEPT[rows[0].symbol] = (rows, rates)
    return rates


def _reuse(
    rows: tuple[SettledFunding, ...], before: tuple[SettledFunding, ...], floats: array[float]
) -> array[float] | None:
    """Return the floats of `rows` from those of `before` where they overlap, None if not."""
    if rows is before:
        return floats
    last = before[-1]
    for end in range(len(rows) - 1, max(len(rows) - 1 - _NEW_ROWS_LOOKED_FOR, -1), -1):
        if rows[end] is last:
            shared = end + 1
            break
    else:
        return None
    if shared > len(before) or rows[:shared] != before[len(before) - shared :]:
        return None
    kept = floats[len(floats) - shared :]
    kept.extend(float(row.rate) for row in rows[shared:])
    return kept


def ewma_levels(rates: Sequence[float], halflife: float) -> list[float]:
    """Return the recursive EWMA after each rate: x_t = λ x_{t−1} + (1 − λ) r_t, x_0 = r_0."""
    decay = 0.5 ** (1 / halflife)
    weight = 1 - decay
    out: list[float] = []
    append = out.append
    level = rates[0] if rates else 0.0
    for rate in rates:
        level = decay * level + weight * rate
        append(level)
    return out


def fit_persistence(
    rates: Sequence[float], levels: Sequence[float], anchor: float, periods: int
) -> float | None:
    """Return φ fitted as the module docstring says, None with too few samples.

    For t = 0 … count−1 (count = len(rates) − periods): x_t = levels[t] − anchor, y_t = the
    mean of rates[t+1 … t+periods] − anchor; slope = Σ x_t y_t / Σ x_t². The sums run left to
    right and the window sum is carried forward (a settlement in, one out) exactly as a loop
    over t would; numpy's `add.accumulate` keeps that order, so the floats are the loop's.
    """
    count = len(rates) - periods
    if count < MIN_FIT_SAMPLES:
        return None
    r = np.asarray(rates, dtype=np.float64)
    first = sum(rates[1 : periods + 1])
    # window_t = window_{t−1} + (rates[t+periods] − rates[t]), carried forward
    windows = np.add.accumulate(
        np.concatenate(([first], r[periods + 1 : periods + count] - r[1:count]))
    )
    y = windows / periods - anchor
    x = np.asarray(levels[:count], dtype=np.float64) - anchor
    sxy = float(np.add.accumulate(np.concatenate(([0.0], x * y)))[-1])
    sxx = float(np.add.accumulate(np.concatenate(([0.0], x * x)))[-1])
    if sxx <= 0:
        return None
    return _invert_weight(sxy / sxx, periods)


def _invert_weight(beta: float, periods: int) -> float:
    """Return φ in PHI_BOUNDS with g(φ, periods) = beta (bisection; g rises with φ)."""
    low, high = PHI_BOUNDS

    def g(phi: float) -> float:
        return phi * (1 - phi**periods) / (periods * (1 - phi))

    if beta <= g(low):
        return low
    if beta >= g(high):
        return high
    for _ in range(50):
        mid = (low + high) / 2
        if g(mid) < beta:
            low = mid
        else:
            high = mid
    return (low + high) / 2
