"""Turnover of constant-notional resizing policies on a simulated driftless price walk.

A hedge of notional N whose short drifts with the price is resized when it is more than the
band b off N: back to N, or only part of the way (to N (1 ± g)). Prints, per policy, the
notional traded a year (in units of N: the resize fees are this x both legs' fee rate), the
resizes a year and the mean notional held, for a log price with hourly Gaussian steps of
the given annual volatility (seeded, so the figures repeat). The README's constant-notional
rule cites the band 0.2, volatility 0.7 row.

    .venv/bin/python bench/bench_resize_policy.py [--vol 0.7] [--band 0.2] [--years 50]
"""

from __future__ import annotations

import argparse
import math
import os
import random
import time

HOURS_PER_YEAR = 8760


def simulate(band: float, back_to: float, vol: float, years: int, seed: int) -> tuple[float, ...]:
    """Return (notional traded a year / N, resizes a year, mean held / N)."""
    rng = random.Random(seed)
    step = vol / math.sqrt(HOURS_PER_YEAR)
    log_held = 0.0
    traded = 0.0
    resizes = 0
    held_sum = 0.0
    hours = years * HOURS_PER_YEAR
    for _ in range(hours):
        log_held += rng.gauss(0.0, step)
        drift = math.exp(log_held) - 1
        if abs(drift) > band:
            target = back_to if drift > 0 else -back_to
            traded += abs(drift - target)
            resizes += 1
            log_held = math.log(1 + target)
        held_sum += math.exp(log_held)
    return traded / years, resizes / years, held_sum / hours


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vol", type=float, default=0.7, help="annual volatility")
    parser.add_argument("--band", type=float, default=0.2)
    parser.add_argument("--years", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    began = time.process_time()
    b = args.band
    print(f"band {b}, volatility {args.vol} a year, {args.years} simulated years")
    print("| resized back to | notional traded a year (x N) | resizes a year | mean held (x N) |")
    print("|---|---|---|---|")
    for label, back in (("N", 0.0), ("N (1 ± b/4)", b / 4), ("N (1 ± b/2)", b / 2)):
        traded, resizes, held = simulate(b, back, args.vol, args.years, args.seed)
        print(f"| {label} | {traded:.2f} | {resizes:.1f} | {held:.3f} |")
    print(f"cpu {time.process_time() - began:.1f} s, load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
