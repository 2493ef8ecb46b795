"""`carrybot status`: open and closed hedges, P&L, trading state, data age (database only)."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from bot.cli.common import console, load_context
from bot.clock import SystemClock
from bot.persistence import migrate
from bot.persistence.db import create_engine, session_factory
from bot.persistence.repositories import CycleReads, Ledger
from bot.persistence.startup_checks import database_errors
from bot.reporting import HedgeLine, StatusReport, build_status
from bot.streams.status import StreamStateStore, StreamStatus, status_lines, status_section

ConfigOption = Annotated[Path | None, typer.Option("--config", "-c", help="TOML config file.")]


def register(app: typer.Typer) -> None:
    @app.command("status")
    def status(
        config: ConfigOption = None,
        database: Annotated[
            str | None,
            typer.Option("--database", help="Ledger URL, e.g. a backtest's sqlite+aiosqlite:///…"),
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """Show hedges, P&L, the trading state and the last snapshot's age (reads the DB only)."""
        ctx = load_context(config, database)

        async def go() -> tuple[StatusReport, list[StreamStatus]]:
            engine = create_engine(ctx.database_url)
            try:
                with database_errors(ctx.database_url, write=False):
                    await migrate.ensure_current(engine)
                    report = await build_status(
                        Ledger(session_factory(engine), CycleReads()),
                        now=SystemClock().now(),
                        leverage=ctx.config.exchange.leverage,
                    )
                    return report, await StreamStateStore(session_factory(engine)).read()
            finally:
                await engine.dispose()

        report, streams = asyncio.run(go())
        if as_json:
            data = report.to_json() | status_section(streams, ctx.config.streams, report.now)
            console.print_json(json.dumps(data))
            return
        render(report)
        for line in status_lines(streams, ctx.config.streams, report.now):
            console.print(line, markup=False)


def render(report: StatusReport) -> None:
    """Print the report as rich tables."""
    age = report.snapshot_age_seconds
    state = report.trading_state.value.upper()
    reason = f" ({report.trading.reason})" if report.trading else ""
    console.print(f"trading state: [bold]{state}[/bold]{reason}")
    console.print("last snapshot: " + ("never" if age is None else f"{age:.0f}s ago"))
    console.print(_table("Open hedges", report.open))
    console.print(_table("Closed hedges", report.closed))
    t = report.totals
    totals = Table(title="Totals (USDT)")
    for col in ("hedges", "funding", "fees", "basis P&L", "net", "capital"):
        totals.add_column(col, justify="right")
    totals.add_row(
        str(t.hedges), _m(t.funding), _m(t.fees), _m(t.basis_pnl), _m(t.net), _m(t.capital)
    )
    console.print(totals)
    if report.balances:
        console.print(_balances_table(report))
    if report.transfers:
        console.print(_transfers_table(report))
    for line in report.drift_lines():
        console.print(line, markup=False)
    if report.alerts:
        console.print("recent alerts:")
        for e in report.alerts:
            console.print(f"  {e.at:%Y-%m-%d %H:%M:%S} {e.kind}: {e.message}", markup=False)


def _table(title: str, lines: list[HedgeLine]) -> Table:
    table = Table(title=title)
    for col in (
        "id",
        "pair",
        "state",
        "qty",
        "notional",
        "held h",
        "funding",
        "fees",
        "basis",
        "net",
        "APR",
    ):
        table.add_column(col, justify="right" if col not in {"pair", "state"} else "left")
    for line in lines:
        h, p = line.hedge, line.pnl
        table.add_row(
            str(h.id),
            h.pair,
            h.state.value,
            f"{h.perp_quantity.normalize():f}",
            _m(h.target_notional),
            f"{p.holding_hours:.1f}",
            _m(p.funding),
            _m(p.fees),
            _m(p.basis_pnl),
            _m(p.net),
            "-" if p.apr is None else f"{p.apr * 100:.2f}%",
        )
    return table


def _balances_table(report: StatusReport) -> Table:
    """The latest balance snapshot, one row per wallet and asset (per venue across venues)."""
    table = Table(title="Balances (last snapshot)")
    for col in ("wallet", "asset", "free", "locked", "value USDT"):
        table.add_column(col, justify="left" if col in {"wallet", "asset"} else "right")
    for b in report.balances:
        value = "-" if b.value_usdt is None else _m(b.value_usdt)
        table.add_row(b.wallet, b.asset, f"{b.free:,.8f}".rstrip("0").rstrip("."),
                      f"{b.locked:,.8f}".rstrip("0").rstrip("."), value)  # fmt: skip
    return table


def _transfers_table(report: StatusReport) -> Table:
    """The wallet transfers of the open hedges (COIN-M margin in and out), oldest first."""
    table = Table(title="Transfers of open hedges")
    widest = max(len(f"{t.amount:f}") for t in report.transfers)
    for col in ("id", "hedge", "asset", "amount", "from", "to", "status", "tran id", "at"):
        table.add_column(
            col,
            justify="right" if col in {"id", "hedge", "amount"} else "left",
            min_width=widest if col == "amount" else None,  # every digit of the coin shown
            no_wrap=col == "amount",
            overflow="fold",
        )
    for t in report.transfers:
        table.add_row(
            str(t.id),
            str(t.hedge_id),
            t.asset,
            f"{t.amount:f}",
            t.from_wallet,
            t.to_wallet,
            t.status.value + (f" ({t.error})" if t.error else ""),
            t.exchange_id or "-",
            f"{t.requested_at:%m-%d %H:%M:%S}",
        )
    return table


def _m(value: Decimal) -> str:
    return f"{value:,.2f}"
