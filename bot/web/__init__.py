"""The web dashboard: Starlette + Jinja2 pages, JSON API, control with a token, /metrics.

`start_dashboard` is what `carrybot run` calls; `carrybot web` serves a ledger alone.
"""

from __future__ import annotations

import logging

from bot.clock import Clock
from bot.persistence.repositories import Ledger
from bot.web.app import create_app
from bot.web.config import WebConfig
from bot.web.context import WebContext
from bot.web.live import LiveProbe
from bot.web.metrics import Metrics
from bot.web.readmodel import ReadModel
from bot.web.server import DashboardServer, check_binding

log = logging.getLogger(__name__)

__all__ = [
    "DashboardServer",
    "Metrics",
    "WebContext",
    "check_binding",
    "create_app",
    "start_dashboard",
]


async def start_dashboard(
    web: WebConfig,
    ledger: Ledger,
    clock: Clock,
    *,
    token: str | None,
    leverage: int,
    live: LiveProbe | None = None,
    metrics: Metrics | None = None,
    source: str = "bot",
) -> DashboardServer | None:
    """Serve the dashboard of a running bot; a port in use is logged and the bot goes on."""
    if not web.enabled:
        return None
    ctx = WebContext(
        ReadModel(ledger, leverage=leverage, clock=clock, owns_ledger=True),
        clock,
        token=token,
        live=live,
        metrics=metrics or Metrics(),
        source=source,
    )
    server = DashboardServer(create_app(ctx), web.host, web.port)
    try:
        await server.start()
    except OSError as exc:
        log.error(
            "Dashboard not started: cannot listen on %s:%d (%s); the bot trades on without "
            "it. Set [web] port to a free port, or [web] enabled = false",
            web.host,
            web.port,
            exc.strerror or exc,
        )
        return None
    log.info(
        "Dashboard on %s (control %s)",
        server.url,
        "on, bearer token required" if token else "off: read-only, no CARRYBOT_WEB_TOKEN",
    )
    return server
