"""Walk-forward error of the funding forecast (`strategies.forecast`) against simple forecasts.

For every settlement t of every perpetual in `--data` (after `--warmup` settlements), each
forecaster sees only the settlements up to t (the last `--window` of them, as the strategy
does) and predicts the mean rate of the next n settlements, n = 3, 21, 90 (1, 7, 30 days at
8 h). Forecasters:
- persistence: the last settled rate (what the replay's funding estimate is);
- EWMA: `funding_carry`'s EWMA of the last 21 settled rates (half-life 9), today's default;
- anchor: the interest anchor alone (0.01% per 8 h);
- model: mean reversion toward the anchor with persistence fitted on the past window.
Errors are in APR percentage points (rate × 3 × 365 × 100): RMSE, MAE, and the bias
(forecast − realised, mean). `--from/--to` restrict the settlements t that are scored (the
fit still uses everything before t).

    .venv/bin/python bench/bench_funding_forecast.py --data ../shared/data [--from 2023-01-01]
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from bot.backtest.history import load_history
from bot.backtest.series import from_ms
from bot.domain import SettledFunding, funding
from strategies import forecast

HORIZONS = (3, 21, 90)
APR_POINTS = 3 * 365 * 100
Forecaster = Callable[[Sequence[SettledFunding], int], float]


def forecasters(window: int, halflife: Decimal, persistence: Decimal) -> dict[str, Forecaster]:
    def last(rows: Sequence[SettledFunding], n: int) -> float:
        return float(rows[-1].rate)

    def ewma(rows: Sequence[SettledFunding], n: int) -> float:
        return float(funding.ewma([r.rate for r in rows[-21:]], Decimal(9)))

    def anchor(rows: Sequence[SettledFunding], n: int) -> float:
        return 0.0001

    def model(rows: Sequence[SettledFunding], n: int) -> float:
        f = forecast.forecast(
            rows[-window:],
            interest_rate=Decimal("0.0001"),
            interval_hours=8,
            halflife=halflife,
            default_persistence=persistence,
        )
        assert f is not None
        return float(f.mean_rate(8 * n))

    return {"persistence": last, "EWMA (today)": ewma, "anchor": anchor, "model": model}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--window", type=int, default=500, help="settlements the fit sees")
    parser.add_argument("--halflife", type=Decimal, default=Decimal(9))
    parser.add_argument("--persistence", type=Decimal, default=Decimal("0.99"))
    parser.add_argument("--warmup", type=int, default=90)
    parser.add_argument("--from", dest="start", type=_date, default=None)
    parser.add_argument("--to", dest="end", type=_date, default=None)
    args = parser.parse_args()

    began = time.perf_counter()
    history = load_history(args.data)
    kinds = forecasters(args.window, args.halflife, args.persistence)
    totals: dict[tuple[str, int], list[float]] = {}
    span = f"{args.start or 'start'} → {args.end or 'end'}"
    print(
        f"Funding forecast, walk-forward, scored {span}; window {args.window}, "
        f"level half-life {args.halflife}; APR points (rate x 1095 x 100)\n"
    )
    print(f"| pair | horizon | n | {' | '.join(f'{k} RMSE / MAE / bias' for k in kinds)} |")
    print("|---|---|---|" + "---|" * len(kinds))
    for sym in sorted(history.symbols.values(), key=lambda s: s.exchange_symbol):
        rows = [
            SettledFunding(sym.perp_symbol, from_ms(t), r)
            for t, r in zip(sym.funding.times, sym.funding.rates, strict=True)
        ]
        for n in HORIZONS:
            errors = {k: [] for k in kinds}  # type: dict[str, list[float]]
            for t in range(args.warmup, len(rows) - n):
                at = rows[t].funding_time
                if (args.start and at < args.start) or (args.end and at >= args.end):
                    continue
                past = rows[max(0, t + 1 - args.window) : t + 1]
                realised = sum(float(r.rate) for r in rows[t + 1 : t + 1 + n]) / n
                for name, fn in kinds.items():
                    errors[name].append(fn(past, n) - realised)
            if not errors["model"]:
                continue
            cells = []
            for name, errs in errors.items():
                totals.setdefault((name, n), []).extend(errs)
                cells.append(_stats(errs))
            print(
                f"| {sym.spot_symbol} | {n * 8} h | {len(errors['model'])} | {' | '.join(cells)} |"
            )
    for n in HORIZONS:
        cells = [_stats(totals.get((name, n), [])) for name in kinds]
        print(f"| all | {n * 8} h | {len(totals.get(('model', n), []))} | {' | '.join(cells)} |")
    print(f"\n{time.perf_counter() - began:.1f} s")


def _stats(errors: Sequence[float]) -> str:
    if not errors:
        return "-"
    rmse = math.sqrt(sum(e * e for e in errors) / len(errors)) * APR_POINTS
    mae = sum(abs(e) for e in errors) / len(errors) * APR_POINTS
    bias = sum(errors) / len(errors) * APR_POINTS
    return f"{rmse:.1f} / {mae:.1f} / {bias:+.1f}"


def _date(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


if __name__ == "__main__":
    main()
