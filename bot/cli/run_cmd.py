"""`carrybot run`: the bot, in paper mode unless --live."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from bot.cli.common import Context, load_context
from bot.config import redact_url
from bot.settings import Mode, require_venue_keys, resolve_mode

ConfigOption = Annotated[Path | None, typer.Option("--config", "-c", help="TOML config file.")]


def banner(ctx: Context, mode: Mode) -> str:
    """Return the start-up line saying which mode and which exchange environment."""
    env: str = ctx.config.exchange.environment
    if ctx.config.exchange.spot_api_url or ctx.config.exchange.futures_api_url:
        env += " (URL override)"
    orders = "REAL ORDERS" if mode is Mode.LIVE else "simulated orders, no API keys used"
    return (
        f"carrybot mode={mode.value.upper()} ({orders}); exchange=binance/{env}; "
        f"strategy={ctx.config.strategy.name}; database={redact_url(ctx.database_url)}; "
        f"config={ctx.config_path or '(defaults)'} #{ctx.config.fingerprint()}"
    ) + _venues(ctx)


def _venues(ctx: Context) -> str:
    """Say where the spot leg trades when it is not on Binance (nothing otherwise)."""
    venues = ctx.config.venues
    if not venues.cross_venue:
        return ""
    where = " (URL override)" if venues.bitstamp_api_url else ""
    return f"; spot leg on {venues.spot}{where}, perpetual on binance"


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run(
        config: ConfigOption = None,
        live: Annotated[
            bool, typer.Option("--live", help="Trade for real (needs BINANCE_API_KEY/SECRET).")
        ] = False,
        once: Annotated[
            bool, typer.Option("--once", help="Start up, run one poll + evaluate cycle, exit.")
        ] = False,
        duration: Annotated[
            float | None, typer.Option("--duration", min=0.0, help="Stop after SECONDS.")
        ] = None,
    ) -> None:
        """Run the bot (paper mode unless --live)."""
        ctx = load_context(config)
        mode = resolve_mode(ctx.settings, live)
        if mode is Mode.LIVE:
            require_venue_keys(ctx.settings, ctx.config.venues.spot)
        from bot.app import RunOptions, run_bot

        options = RunOptions(once=once, duration=duration, banner=banner(ctx, mode))
        code = asyncio.run(run_bot(ctx.settings, ctx.config, ctx.database_url, mode, options))
        raise typer.Exit(code)
