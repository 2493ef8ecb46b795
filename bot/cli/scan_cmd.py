"""`carrybot scan`: one market-wide snapshot, pairs ranked by net carry. No API keys needed."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from bot.cli.common import console, load_context
from bot.cli.scan_venues import row_venue_json, venue_view
from bot.clock import Clock, SystemClock
from bot.config import Config
from bot.errors import UserError
from bot.exchange.port import MarketDataSource
from bot.marketdata import MarketData
from bot.strategy_host import strategy_params as composed_params
from strategies.expected_carry import ExpectedCarryParams
from strategies.funding_carry import FundingCarryParams
from strategies.scan import (
    TABLE_COLUMNS,
    ScanParams,
    ScanRow,
    row_json,
    scan_rows,
    table_cells,
    taken_at_text,
)

ConfigOption = Annotated[Path | None, typer.Option("--config", "-c", help="TOML config file.")]


def register(app: typer.Typer) -> None:
    @app.command("scan")
    def scan(
        config: ConfigOption = None,
        top: Annotated[int, typer.Option("--top", min=1, help="Show the best N pairs.")] = 20,
        min_volume: Annotated[
            float,
            typer.Option("--min-volume", min=0.0, help="Skip pairs under this 24h USDT volume."),
        ] = 0.0,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = (
            False
        ),
    ) -> None:
        """Rank pairs by net carry from one market-wide snapshot."""
        ctx = load_context(config)
        params = strategy_params(ctx.config)
        clock = SystemClock()
        source = public_source(ctx.config, clock)
        rows, taken_at, scanned = asyncio.run(
            run_scan(source, clock, ctx.config, params, Decimal(str(min_volume)))
        )
        shown = rows[:top]
        venues = venue_view(source, ctx.config.fees)
        if as_json:
            report: dict[str, Any] = {
                "taken_at": taken_at.isoformat(),
                "pairs_scanned": scanned,
                "rows": [
                    row_json(r) | (row_venue_json(r, venues) if venues else {}) for r in shown
                ],
            }
            if venues is not None:
                report["venues"] = venues.to_json()
            console.print_json(json.dumps(report))
            return
        console.print(render_table(shown, taken_at_text(taken_at), scanned))
        if venues is not None:
            console.print(venues.caption())


async def run_scan(
    source: MarketDataSource,
    clock: Clock,
    config: Config,
    params: ScanParams,
    min_volume: Decimal,
) -> tuple[list[ScanRow], datetime, int]:
    """Take one snapshot from `source` (closed afterwards); return rows, its time, pair count."""
    market = MarketData(
        source,
        clock,
        universe=config.universe,
        schedule=config.schedule,
        history_periods=params.history_periods,
        dated=params.trades_dated,
    )
    try:
        snapshot = await market.snapshot()
    finally:
        await source.close()
    return (
        scan_rows(snapshot, params, min_volume=min_volume),
        snapshot.taken_at,
        len(snapshot.pairs),
    )


def strategy_params(config: Config) -> ScanParams:
    """Return the strategy's parameters as the bot runs it; scan ranks with its model."""
    params = composed_params(config)
    if not isinstance(params, FundingCarryParams | ExpectedCarryParams):
        raise UserError(
            f"strategy.name = {params.name!r}: scan knows funding_carry and expected_carry"
        )
    return params


def public_source(config: Config, clock: Clock) -> MarketDataSource:
    """Return the keyless live data source (`bot.exchange.factory.public_source`)."""
    from bot.exchange.factory import public_source as keyless  # ccxt loads only when scanning

    return keyless(config, clock)


def render_table(rows: list[ScanRow], caption: str, scanned: int) -> Table:
    """Return the scan table: one line per row, in the order given."""
    table = Table(
        title=f"carry scan at {caption}: {len(rows)} of {scanned} pairs by net APR",
        title_justify="left",
    )
    for i, column in enumerate(TABLE_COLUMNS):
        table.add_column(column, justify="left" if i in (0, len(TABLE_COLUMNS) - 1) else "right")
    for row in rows:
        table.add_row(*table_cells(row))
    return table
