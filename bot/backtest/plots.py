"""The backtest's charts (matplotlib, Agg backend: files only, no display)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import matplotlib
from matplotlib.figure import Figure

from bot.backtest.report import BacktestReport
from bot.backtest.series import EPOCH, from_ms, to_ms

EQUITY_PNG = "equity.png"
FUNDING_PNG = "funding_apr.png"
PERIODS_PER_YEAR = 3 * 365  # 8h settlements; the README says all five symbols settle 8-hourly
SMOOTHING = 21  # settlements in the rolling mean drawn (one week)
_METADATA = {"Software": None}  # no version string: same inputs, same bytes


def write_charts(report: BacktestReport, out: Path) -> list[Path]:
    """Draw the equity and funding charts into `out`; return their paths.

    Figures are drawn without pyplot (no global state, safe in worker threads) and saved
    with the Agg renderer.
    """
    matplotlib.use("Agg")
    return [_equity_chart(report, out / EQUITY_PNG), _funding_chart(report, out / FUNDING_PNG)]


def _equity_chart(report: BacktestReport, path: Path) -> Path:
    days = date2num([datetime.fromisoformat(d.day).replace(tzinfo=UTC) for d in report.days])
    equity = [float(d.equity) for d in report.days]
    funding = [float(d.funding) for d in report.days]
    fees = [-float(d.fees) for d in report.days]
    fig = Figure(figsize=(11, 7))
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    top.plot(days, equity, color="tab:blue", linewidth=1.2, label="equity")
    top.axhline(float(report.run.initial_equity), color="grey", linewidth=0.8, linestyle=":")
    top.set_ylabel("USDT")
    top.set_title(f"Equity, {report.days[0].day} to {report.days[-1].day}" if days else "Equity")
    top.legend(loc="upper left")
    bottom.stackplot(days, funding, labels=["funding earned"], colors=["tab:green"], alpha=0.6)
    bottom.stackplot(days, fees, labels=["fees paid"], colors=["tab:red"], alpha=0.6)
    bottom.axhline(0, color="black", linewidth=0.6)
    bottom.set_ylabel("cumulative USDT")
    bottom.legend(loc="upper left")
    for axes in fig.axes:
        axes.xaxis_date()
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata=_METADATA)
    return path


def _funding_chart(report: BacktestReport, path: Path) -> Path:
    run = report.run
    lo, hi = to_ms(run.start), to_ms(run.end)
    fig = Figure(figsize=(11, 5))
    ax = fig.subplots()
    for name in sorted(run.history.symbols):
        sym = run.history.symbols[name]
        points = [
            (t, float(r) * PERIODS_PER_YEAR * 100)
            for t, r in zip(sym.funding.times, sym.funding.rates, strict=True)
            if lo <= t <= hi
        ]
        if not points:
            continue
        times = [from_ms(t) for t, _ in points]
        rolling = _rolling_mean([v for _, v in points], SMOOTHING)
        (line,) = ax.plot(
            date2num(times), rolling, linewidth=1.0, label=f"{sym.spot_symbol} (7-day mean)"
        )
        opens = [h.hedge for h in report.hedges if h.hedge.pair == sym.spot_symbol]
        for when, marker in (("opened_at", "^"), ("closed_at", "v")):
            marks = [getattr(h, when) for h in opens if getattr(h, when) is not None]
            ax.scatter(
                date2num(marks),
                [_value_at(times, rolling, m) for m in marks],
                marker=marker,
                color=line.get_color(),
                edgecolors="black",
                linewidths=0.5,
                s=36,
                zorder=3,
            )
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_ylabel("funding APR, % (rate × 3 × 365)")
    ax.set_title("Funding APR per pair; ▲ hedge opened, ▼ hedge closed")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", fontsize="small")
    for axes in fig.axes:
        axes.xaxis_date()
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata=_METADATA)
    return path


def date2num(when: list[datetime]) -> list[float]:
    """Return matplotlib's date numbers (days since 1970-01-01 UTC, its default epoch)."""
    return [(t - EPOCH).total_seconds() / 86400 for t in when]


def _rolling_mean(values: list[float], window: int) -> list[float]:
    out: list[float] = []
    total = 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def _value_at(times: list[datetime], values: list[float], when: datetime) -> float:
    """Return the series value in force at `when` (the last point at or before it)."""
    from bisect import bisect_right

    i = bisect_right(times, when) - 1
    return values[max(i, 0)]
