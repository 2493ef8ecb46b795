"""`carrybot sweep`: backtests over a grid of parameters, ranked; optional walk-forward."""

from __future__ import annotations

import csv
import hashlib
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from bot.cli.common import console, load_context, progress_bar
from bot.cli.replay_options import (
    ConfigOption,
    DataOption,
    FromOption,
    ToOption,
    parse_when,
    quiet_bot_logs,
)

GridOption = Annotated[
    Path, typer.Option("--grid", help="TOML grid: [strategy|sizing|risk] key = [values].")
]


def register(app: typer.Typer) -> None:
    @app.command("sweep")
    def sweep(
        data: DataOption,
        grid: GridOption,
        config: ConfigOption = None,
        metric: Annotated[str, typer.Option("--metric", help="Figure to rank by.")] = "net_apr",
        workers: Annotated[
            int | None, typer.Option("--workers", min=1, help="Local processes (default: CPUs).")
        ] = None,
        dask_scheduler: Annotated[
            str | None,
            typer.Option("--dask-scheduler", help="Run on this Dask cluster (tcp://host:port)."),
        ] = None,
        train_until: Annotated[
            str | None,
            typer.Option("--train-until", help="Walk-forward: pick on data before this time."),
        ] = None,
        from_: FromOption = None,
        to: ToOption = None,
        out: Annotated[
            Path | None, typer.Option("--out", help="Output directory (default out/sweep-…).")
        ] = None,
        resume: Annotated[
            bool,
            typer.Option(
                "--resume",
                help="Keep the combinations already finished in runs/ (after Ctrl-C or a "
                "lost Dask worker) and run only the others.",
            ),
        ] = False,
    ) -> None:
        """Run backtests over a grid of parameters and rank them."""
        from bot.backtest import grid as grids
        from bot.backtest import sweep as sweeps
        from bot.backtest.engine import BacktestSpec

        ctx = load_context(config)
        quiet_bot_logs()
        metric = sweeps.check_metric(metric)
        axes = grids.load_grid(grid, ctx.config.strategy.name)
        base = grids.read_toml(ctx.config_path) if ctx.config_path else {}
        combos = grids.combinations(base, axes)
        start, end = parse_when(from_, "--from"), parse_when(to, "--to")
        split = parse_when(train_until, "--train-until")
        target = out or Path("out") / f"sweep-{_hash(ctx.config.fingerprint(), grid)}"
        target.mkdir(parents=True, exist_ok=True)
        train_stop = sweeps.train_end(split) if split is not None else end
        tasks = sweeps.tasks_for(combos, data, target, start=start, end=train_stop)
        sweeps.preload(BacktestSpec(ctx.config, data, "sqlite+aiosqlite://"))
        n_workers = workers or sweeps.default_workers()
        began = time.perf_counter()

        def run(batch: list[sweeps.SweepTask], what: str) -> list[sweeps.SweepRow]:
            with progress_bar() as bar:
                task = bar.add_task(what, total=len(batch))

                def done(_: sweeps.SweepRow) -> None:
                    bar.advance(task)

                if dask_scheduler:
                    return sweeps.run_dask(batch, dask_scheduler, done)
                return sweeps.run_local(batch, n_workers, done)

        kept: list[sweeps.SweepRow] = []
        if resume:
            from bot.backtest.resume import split_finished

            kept, tasks = split_finished(tasks)
            console.print(
                f"--resume: {len(kept)} combination(s) already finished in {target / 'runs'}, "
                f"{len(tasks)} to run",
                markup=False,
            )
        rows = sweeps.with_overrides(kept + run(tasks, "combinations"), combos)
        ranked = sweeps.rank(rows + sweeps.invalid_rows(combos), metric)
        _save_ranking(target, ranked, metric)
        title = "training period" if split else "sweep"
        console.print(ranking_table(ranked, metric, f"{title}: {len(combos)} combinations"))
        if split is not None:
            _walk_forward(target, ranked, combos, metric, split, end, data, run)
        where = f"Dask {dask_scheduler}" if dask_scheduler else f"{n_workers} process(es)"
        console.print(
            f"{len(tasks)} backtest(s) on {where} in {time.perf_counter() - began:.1f} s; "
            f"results in {target}",
            markup=False,
        )


def _walk_forward(
    target: Path,
    ranked: list[Any],
    combos: list[Any],
    metric: str,
    split: datetime,
    end: datetime | None,
    data: Path,
    run: Any,
) -> None:
    """Run the combination that ranked best on the training period over the test period."""
    from bot.backtest import sweep as sweeps
    from bot.backtest.outputs import write_json

    best = next((r for r in ranked if r.error is None and r.value(metric) is not None), None)
    if best is None:
        console.print("walk-forward: no combination produced the metric; nothing to test")
        return
    combo = next(c for c in combos if c.index == best.index)
    (test,) = sweeps.tasks_for([combo], data, target, start=split, end=end)
    (row,) = sweeps.with_overrides(run([sweeps.test_task(test, target)], "test period"), combos)
    write_json(
        target / "walk_forward.json",
        {
            "metric": metric,
            "train_until": split.isoformat(),
            "chosen_on_train": best.to_json(),
            "test": row.to_json(),
        },
    )
    console.print(
        ranking_table([row], metric, f"test period from {split:%Y-%m-%d %H:%M} (chosen on train)")
    )


def ranking_table(rows: list[Any], metric: str, title: str) -> Table:
    """Return the ranked combinations as a rich table."""
    table = Table(title=f"{title}, ranked by {metric}")
    for name in ("#", "params", metric, "net P&L", "net APR", "funding", "fees", "hedges"):
        table.add_column(name, justify="left" if name == "params" else "right")
    for position, row in enumerate(rows, start=1):
        if row.error is not None:
            table.add_row("-", row.label, "error", row.error, "", "", "", "")
            continue
        bot = row.bot
        table.add_row(
            str(position),
            row.label,
            str(bot.get(metric)),
            _money(bot.get("net_pnl")),
            _pct(bot.get("net_apr")),
            _money(bot.get("funding")),
            _money(bot.get("fees")),
            str(bot.get("hedges")),
        )
    return table


def _save_ranking(target: Path, ranked: list[Any], metric: str) -> None:
    from bot.backtest import sweep as sweeps
    from bot.backtest.outputs import write_json

    with (target / "ranking.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(sweeps.RANKING_COLUMNS)
        writer.writerows(sweeps.ranking_csv_rows(ranked, metric))
    write_json(target / "ranking.json", {"metric": metric, "rows": [r.to_json() for r in ranked]})


def _hash(config_hash: str, grid: Path) -> str:
    digest = hashlib.sha256(config_hash.encode() + grid.read_bytes()).hexdigest()
    return digest[:16]


def _money(value: object) -> str:
    return "-" if value is None else f"{float(str(value)):,.2f}"


def _pct(value: object) -> str:
    return "-" if value is None else f"{float(str(value)) * 100:.2f}%"
