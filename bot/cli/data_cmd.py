"""`carrybot data fetch`: download Binance funding and 1h klines into ../shared/data's layout
(and, with `--venue bitstamp`, Bitstamp's spot klines beside them)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import TracebackType
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, TaskID, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgress
from rich.table import Table

from bot.cli.common import console, err_console, load_context
from bot.clock import Clock, SystemClock
from bot.config import Config
from bot.datafetch import (
    BinanceHistory,
    FetchRequest,
    HistorySource,
    Job,
    JobResult,
    Status,
    fetch_history,
    parse_request,
)
from bot.datafetch.bitstamp_source import BitstampHistory
from bot.datafetch.rows import iso
from bot.errors import (
    BadResponseError,
    BannedError,
    CarrybotError,
    ExchangeError,
    OrderRejected,
    RateLimitedError,
    TemporaryError,
)

app = typer.Typer(help="Download historical funding and klines.", no_args_is_help=True)

ConfigOption = Annotated[Path | None, typer.Option("--config", "-c", help="TOML config file.")]


@app.command("fetch")
def fetch(
    symbols: Annotated[
        str, typer.Option("--symbols", help="Comma-separated spot symbols: BTC/USDT,ETH/USDT.")
    ],
    start: Annotated[str, typer.Option("--from", help="Start (UTC): YYYY-MM-DD or ISO time.")],
    out: Annotated[
        Path, typer.Option("--out", help="Root directory: writes OUT/binance/<kind>/...")
    ],
    end: Annotated[
        str | None, typer.Option("--to", help="End, exclusive (UTC); default: now.")
    ] = None,
    kinds: Annotated[
        str | None,
        typer.Option(
            "--kinds",
            help="Any of funding, mark, perp, spot, current_quarter, next_quarter, delivery, "
            "coinm_current_quarter, coinm_next_quarter, coinm_delivery (COIN-M, dapi), "
            "comma-separated (default funding,mark,perp,spot; spot with --venue bitstamp).",
        ),
    ] = None,
    venue: Annotated[
        str,
        typer.Option(
            "--venue",
            help="binance, or bitstamp: its spot klines (USD/USDT pairs, USDT/USD with USD "
            "ones) into OUT/bitstamp/spot/ for a backtest with the spot leg there.",
        ),
    ] = "binance",
    config: ConfigOption = None,
) -> None:
    """Download funding, mark, perp and spot history; only what is missing is fetched."""
    clock = SystemClock()
    default_kinds = "spot" if venue == "bitstamp" else "funding,mark,perp,spot"
    request = parse_request(
        symbols=symbols, start=start, end=end, kinds=kinds or default_kinds, out=out,
        now=clock.now(), venue=venue,
    )  # fmt: skip
    ctx = load_context(config)
    results = asyncio.run(run_fetch(request, ctx.config, clock, err_console))
    console.print(summary_table(results))
    failed = [r for r in results if r.error is not None]
    for result in failed:
        err_console.print(f"error: {failure_line(result)}", markup=False, highlight=False)
    if failed:
        raise typer.Exit(1)


async def run_fetch(
    request: FetchRequest, config: Config, clock: Clock, progress_console: Console
) -> list[JobResult]:
    """Fetch with a progress bar per file; a failure to reach the venue raises CarrybotError."""
    source: HistorySource = (
        BitstampHistory(config.venues, config.exchange, clock)
        if request.venue == "bitstamp"
        else BinanceHistory(config.exchange, clock)
    )
    try:
        with Bars(progress_console) as bars:
            return await fetch_history(request, source, now=clock.now(), progress=bars)
    except ExchangeError as exc:
        where = (
            "[venues] bitstamp_api_url"
            if request.venue == "bitstamp"
            else "[exchange] spot_api_url / futures_api_url"
        )
        raise CarrybotError(
            f"cannot load {request.venue.capitalize()} markets: {exc}; check the network, "
            f"or {where} in the config"
        ) from exc
    finally:
        await source.close()


class Bars:
    """Rich progress bars, one per (symbol, kind) file."""

    def __init__(self, target: Console) -> None:
        self._progress = RichProgress(
            TextColumn("{task.description:<16}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rows]:>8} new rows"),
            TimeElapsedColumn(),
            TextColumn("{task.fields[status]}"),
            console=target,
        )
        self._tasks: dict[Path, TaskID] = {}

    def __enter__(self) -> Bars:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def add(self, job: Job) -> None:
        total = max(job.total_ms, 1)
        self._tasks[job.path] = self._progress.add_task(
            job.label,
            total=total,
            completed=0 if job.segments else total,
            rows=0,
            status="" if job.segments else "up to date",
        )

    def advance(self, job: Job, done_ms: int, added: int) -> None:
        self._progress.update(self._tasks[job.path], completed=done_ms, rows=added)

    def finish(self, result: JobResult) -> None:
        task = self._tasks[result.job.path]
        done = self._progress.tasks[task].completed
        completed = done if result.status is Status.FAILED else max(result.job.total_ms, 1)
        self._progress.update(task, completed=completed, status=result.status.value)


def summary_table(results: list[JobResult]) -> Table:
    """Return one line per file: status, rows added, rows and span on disk."""
    table = Table(title="Historical data", title_justify="left")
    for column in ("file", "status", "new rows", "rows", "first", "last"):
        table.add_column(column, justify="right" if "rows" in column else "left")
    for r in results:
        table.add_row(
            str(r.job.path),
            r.status.value,
            str(r.added),
            str(r.rows),
            iso(r.first_ms) if r.first_ms is not None else "-",
            iso(r.last_ms) if r.last_ms is not None else "-",
        )
    return table


def failure_line(result: JobResult) -> str:
    """Say what failed, why, and what the file keeps."""
    error = result.error
    if isinstance(error, BannedError):
        why = f"Binance banned this IP for {error.retry_after:.0f} s (HTTP 418): {error}"
    elif isinstance(error, RateLimitedError):
        why = f"rate-limited by Binance: {error}"
    elif isinstance(error, TemporaryError):
        why = f"Binance unreachable after retries: {error}"
    elif isinstance(error, BadResponseError):
        why = f"unexpected response from Binance: {error}"
    elif isinstance(error, OrderRejected):
        why = f"Binance refused the request: {error}"
    else:
        why = str(error)
    path = result.job.path
    kept = f"{path} keeps {result.rows} rows" if result.rows else f"{path} not written"
    return f"{result.job.label}: {why}; {kept}, run the same command again to resume"
