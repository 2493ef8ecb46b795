"""`carrybot halt [--reducing]`, `carrybot resume` and `carrybot close HEDGE_ID`: operator
control through the database.

A running bot reads the state and the close requests at the start of every cycle, so it
obeys within one cycle.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from bot.cli.common import console, load_context
from bot.clock import SystemClock
from bot.control import request_close, set_trading_state
from bot.domain.ledger import TradingState
from bot.persistence import migrate
from bot.persistence.db import create_engine, session_factory
from bot.persistence.repositories import CycleReads, Ledger
from bot.persistence.startup_checks import database_errors

ConfigOption = Annotated[Path | None, typer.Option("--config", "-c", help="TOML config file.")]
DatabaseOption = Annotated[str | None, typer.Option("--database", help="Database URL.")]


def set_state(state: TradingState, reason: str, config: Path | None, database: str | None) -> None:
    """Write the trading state to the ledger the bot reads."""
    ctx = load_context(config, database)

    async def go() -> None:
        engine = create_engine(ctx.database_url)
        try:
            with database_errors(ctx.database_url):
                await migrate.ensure_current(engine)
                ledger = Ledger(session_factory(engine), CycleReads())
                await set_trading_state(
                    ledger, state, reason=reason, source="cli", at=SystemClock().now()
                )
        finally:
            await engine.dispose()

    asyncio.run(go())
    console.print(f"trading state is now {state.value.upper()}: {reason}", markup=False)


def close_hedge(hedge_id: int, reason: str, config: Path | None, database: str | None) -> str:
    """Store a close request for the running bot; return what was done (one line)."""
    ctx = load_context(config, database)

    async def go() -> str:
        engine = create_engine(ctx.database_url)
        try:
            with database_errors(ctx.database_url):
                await migrate.ensure_current(engine)
                ledger = Ledger(session_factory(engine), CycleReads())
                request = await request_close(
                    ledger, hedge_id, reason=reason, source="cli", at=SystemClock().now()
                )
                status = await ledger.trading_state.get()
        finally:
            await engine.dispose()
        line = (
            f"close of hedge {hedge_id} requested (request {request.id}): the running bot "
            "closes both legs in its next cycle"
        )
        if status is not None and status.state is TradingState.HALTED:
            line += "; trading is HALTED, so it waits for `carrybot halt --reducing` or `resume`"
        return line

    return asyncio.run(go())


def register(app: typer.Typer) -> None:
    @app.command("halt")
    def halt(
        reducing: Annotated[
            bool, typer.Option("--reducing", help="Allow closes only, instead of no orders.")
        ] = False,
        reason: Annotated[str, typer.Option("--reason", help="Why (recorded).")] = "operator",
        config: ConfigOption = None,
        database: DatabaseOption = None,
    ) -> None:
        """Stop opening positions: HALTED sends no orders (hedges stay hedged); --reducing
        allows closes only."""
        state = TradingState.REDUCING if reducing else TradingState.HALTED
        set_state(state, reason, config, database)

    @app.command("resume")
    def resume(
        reason: Annotated[str, typer.Option("--reason", help="Why (recorded).")] = "operator",
        config: ConfigOption = None,
        database: DatabaseOption = None,
    ) -> None:
        """Return to ACTIVE trading after a halt."""
        set_state(TradingState.ACTIVE, reason, config, database)

    @app.command("close")
    def close(
        hedge_id: Annotated[
            int, typer.Argument(help="The OPEN hedge to close (`carrybot status`).")
        ],
        reason: Annotated[str, typer.Option("--reason", help="Why (recorded).")] = "operator",
        config: ConfigOption = None,
        database: DatabaseOption = None,
    ) -> None:
        """Close an OPEN hedge now: the running bot sends both legs at once within one cycle
        (Freqtrade's forceexit)."""
        console.print(close_hedge(hedge_id, reason, config, database), markup=False)
