"""`carrybot web`: the dashboard over a ledger alone (a stopped bot's, or a backtest's)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path
from typing import Annotated

import typer

from bot.cli.common import console, load_context
from bot.clock import SystemClock
from bot.errors import UserError
from bot.persistence import migrate
from bot.persistence.db import create_engine, session_factory
from bot.persistence.repositories import CycleReads, Ledger
from bot.web import DashboardServer, WebContext, check_binding, create_app
from bot.web.config import WebConfig
from bot.web.readmodel import ReadModel

ConfigOption = Annotated[Path | None, typer.Option("--config", "-c", help="TOML config file.")]


def register(app: typer.Typer) -> None:
    @app.command("web")
    def web(
        database: Annotated[
            str | None,
            typer.Option("--database", help="Ledger URL, e.g. sqlite+aiosqlite:///out/…/ledger.db"),
        ] = None,
        host: Annotated[str | None, typer.Option("--host", help="Listen address.")] = None,
        port: Annotated[
            int | None, typer.Option("--port", min=0, max=65535, help="Listen port.")
        ] = None,
        config: ConfigOption = None,
    ) -> None:
        """Serve the dashboard, JSON API and /metrics from a ledger (no bot needed)."""
        ctx = load_context(config, database)
        settings = ctx.config.web.model_copy(
            update={k: v for k, v in (("host", host), ("port", port)) if v is not None}
        )
        token = ctx.settings.web_token.get_secret_value() if ctx.settings.web_token else None
        check_binding(settings, token, source="--host" if host else "web.host")
        asyncio.run(_serve(ctx.database_url, settings, token, ctx.config.exchange.leverage))


async def _serve(url: str, web: WebConfig, token: str | None, leverage: int) -> None:
    engine = create_engine(url)
    try:
        await migrate.ensure_current(engine)
        read = ReadModel(Ledger(session_factory(engine), CycleReads()), leverage=leverage)
        server = DashboardServer(
            create_app(WebContext(read, SystemClock(), token=token, source="ledger")),
            web.host,
            web.port,
        )
        try:
            await server.start()
        except OSError as exc:
            raise UserError(
                f"--port {web.port}: cannot listen on {web.host}:{web.port} "
                f"({exc.strerror or exc}); choose another port"
            ) from None
        control = "on (bearer token)" if token else "off (read-only)"
        console.print(f"dashboard on {server.url}  control {control}; Ctrl-C stops", markup=False)
        stop = asyncio.Event()
        running = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                running.add_signal_handler(sig, stop.set)
        try:
            await server.serve_until(stop)
        finally:
            await server.stop()
    finally:
        await engine.dispose()
