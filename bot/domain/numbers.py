"""Decimal helpers: every quantity, price, fee and balance is a `Decimal`."""

from __future__ import annotations

import math
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_UP, Decimal, InvalidOperation

ZERO = Decimal(0)
ONE = Decimal(1)


def to_decimal(value: object, *, field: str = "value") -> Decimal:
    """Convert an exchange or config value to a finite Decimal, or raise ValueError naming `field`.

    Floats go through `repr` so 0.1 becomes Decimal('0.1'), not its binary expansion.
    """
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, bool) or value is None:
        raise ValueError(f"{field}: expected a number, got {value!r}")
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{field}: expected a finite number, got {value!r}")
        result = Decimal(repr(value))
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"{field}: expected a number, got {value!r}") from None
    else:
        raise ValueError(f"{field}: expected a number, got {type(value).__name__}")
    if not result.is_finite():
        raise ValueError(f"{field}: expected a finite number, got {value!r}")
    return result


def floor_to_step(value: Decimal, step: Decimal) -> Decimal:
    """Round `value` down to a multiple of `step` (Binance LOT_SIZE truncation)."""
    if step <= 0:
        return value
    return (value / step).to_integral_value(rounding=ROUND_DOWN) * step


def ceil_to_step(value: Decimal, step: Decimal) -> Decimal:
    """Round `value` up to a multiple of `step`."""
    if step <= 0:
        return value
    return (value / step).to_integral_value(rounding=ROUND_UP) * step


def round_to_tick(value: Decimal, tick: Decimal) -> Decimal:
    """Round a price to the nearest multiple of `tick` (Binance PRICE_FILTER)."""
    if tick <= 0:
        return value
    return (value / tick).to_integral_value(rounding=ROUND_HALF_EVEN) * tick


def is_multiple(value: Decimal, step: Decimal) -> bool:
    """Tell whether `value` is an exact multiple of `step`."""
    if step <= 0:
        return True
    return (value % step) == 0


def coarser_step(a: Decimal, b: Decimal) -> Decimal:
    """Return the step that is valid on both markets: the coarser of two step sizes.

    Binance step sizes are powers of ten, so the coarser one is a multiple of the finer.
    When they are not, the least common multiple is returned.
    """
    if a <= 0:
        return b
    if b <= 0:
        return a
    big, small = (a, b) if a >= b else (b, a)
    if is_multiple(big, small):
        return big
    exp = max(-big.as_tuple().exponent, -small.as_tuple().exponent, 0)  # type: ignore[operator]
    scale = Decimal(10) ** exp
    ia, ib = int(big * scale), int(small * scale)
    return Decimal(ia * ib // math.gcd(ia, ib)) / scale
