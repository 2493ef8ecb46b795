"""`carrybot backtest`: replay history through the bot's own loop and report the figures."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from bot.cli.common import console, load_context, progress_bar
from bot.cli.replay_options import (
    ConfigOption,
    DatabaseOption,
    DataOption,
    FromOption,
    OutOption,
    ToOption,
    database_url,
    parse_when,
    quiet_bot_logs,
)

FIGURES = (
    ("net P&L", "net_pnl", "money"),
    ("net APR on capital", "net_apr", "pct"),
    ("net APR on notional", "net_apr_notional", "pct"),
    ("funding earned", "funding", "money"),
    ("fees", "fees", "money"),
    ("basis P&L", "basis_pnl", "money"),
    ("capital used", "capital_used", "money"),
    ("max drawdown", "max_drawdown", "money"),
    ("time in market", "time_in_market", "pct"),
    ("hedges", "hedges", "int"),
    ("avg holding (h)", "avg_holding_hours", "hours"),
)


def register(app: typer.Typer) -> None:
    @app.command("backtest")
    def backtest(
        data: DataOption,
        config: ConfigOption = None,
        from_: FromOption = None,
        to: ToOption = None,
        out: OutOption = None,
        database: DatabaseOption = None,
        seed: Annotated[int, typer.Option("--seed", help="Seed of hedge uids.")] = 0,
        charts: Annotated[bool, typer.Option("--charts/--no-charts", help="Draw PNGs.")] = True,
    ) -> None:
        """Replay history through the strategy, risk gate and executor; write the results."""
        ctx = load_context(config)
        from bot.backtest.engine import BacktestSpec, load_for
        from bot.backtest.session import backtest as run_one
        from bot.backtest.session import default_database

        quiet_bot_logs()
        target = out or Path("out") / f"backtest-{ctx.config.fingerprint()}"
        url = database_url(database) if database else default_database(target)
        spec = BacktestSpec(
            config=ctx.config,
            data_dir=data,
            database_url=url,
            start=parse_when(from_, "--from"),
            end=parse_when(to, "--to"),
            seed=seed,
            throwaway_database=database is None,
        )
        began = time.perf_counter()
        history = load_for(ctx.config, data)
        with progress_bar() as bar:
            task = bar.add_task("replaying", total=None)

            def step(done: int, total: int) -> None:
                if done % 250 == 0 or done == total:
                    bar.update(task, completed=done, total=total)

            report = asyncio.run(
                run_one(spec, target, history=history, charts=charts, progress=step)
            )
        console.print(summary_table(report.summary_json()))
        console.print(
            f"{report.run.events} events in {time.perf_counter() - began:.1f} s; "
            f"results in {target}; ledger {url}",
            markup=False,
        )


def summary_table(summary: dict[str, object]) -> Table:
    """Return the bot's figures next to the passive baselines' (constant notional first)."""
    bot, passive = summary["bot"], summary["passive"]
    fixed = summary.get("passive_fixed_quantity")
    paying = summary.get("passive_paying_resizes")
    assert isinstance(bot, dict) and isinstance(passive, dict)
    table = Table(
        title=f"Backtest {summary['start']} → {summary['end']} ({', '.join(summary['pairs'])})"  # type: ignore[arg-type]
    )
    table.add_column("figure")
    table.add_column("carrybot", justify="right")
    table.add_column("passive carry\n(constant notional)", justify="right")
    if isinstance(paying, dict):
        table.add_column("passive, paying\nits resizes", justify="right")
    if isinstance(fixed, dict):
        table.add_column("passive, fixed quantity\n(price-inflated)", justify="right")
    for label, key, kind in FIGURES:
        cells = [_cell(bot.get(key), kind), _cell(passive.get(key), kind)]
        if isinstance(paying, dict):
            cells.append(_cell(paying.get(key), kind))
        if isinstance(fixed, dict):
            cells.append(_cell(fixed.get(key), kind))
        table.add_row(label, *cells)
    worst = bot.get("worst_hedge")
    if isinstance(worst, dict):
        table.add_row("worst hedge", f"{worst['pair']} {float(worst['net']):,.2f}")
    return table


def _cell(value: object, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "int":
        return str(value)
    number = float(str(value))
    if kind == "pct":
        return f"{number * 100:.2f}%"
    if kind == "hours":
        return f"{number:.1f}"
    return f"{number:,.2f}"
