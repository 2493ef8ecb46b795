"""The `carrybot` command line (typer). `python -m bot` runs the same app."""

from __future__ import annotations

import logging
import sys
from typing import NoReturn

import typer

from bot import __version__
from bot.cli import (
    adopt_cmd,
    backtest_cmd,
    config_cmd,
    control_cmd,
    data_cmd,
    db_cmd,
    run_cmd,
    scan_cmd,
    status_cmd,
    sweep_cmd,
    web_cmd,
)
from bot.cli.common import err_console
from bot.errors import CarrybotError, DatabaseBehindError, UserError

app = typer.Typer(
    name="carrybot",
    help="Spot–futures cash-and-carry on Binance: long spot, short the perpetual, collect funding.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(config_cmd.app, name="config")
app.add_typer(db_cmd.app, name="db")
app.add_typer(data_cmd.app, name="data")
run_cmd.register(app)
scan_cmd.register(app)
control_cmd.register(app)
adopt_cmd.register(app)
status_cmd.register(app)
backtest_cmd.register(app)
sweep_cmd.register(app)
web_cmd.register(app)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"carrybot {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Spot–futures cash-and-carry on Binance."""


def main(argv: list[str] | None = None) -> NoReturn:
    """Run the CLI; user errors print one line each and exit 2, never a traceback."""
    try:
        app(args=argv, prog_name="carrybot")  # standalone: usage errors exit 2 by themselves
    except UserError as exc:
        for problem in exc.problems:
            err_console.print(f"error: {problem}", markup=False, highlight=False)
        sys.exit(2)
    except DatabaseBehindError as exc:
        err_console.print(f"error: {exc}", markup=False)
        sys.exit(2)
    except CarrybotError as exc:
        logging.getLogger("bot.cli").debug("command failed", exc_info=True)
        err_console.print(f"error: {exc}", markup=False)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(0)
