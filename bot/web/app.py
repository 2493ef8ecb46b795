"""The dashboard's Starlette application: HTML pages, JSON API, control and /metrics.

`create_app` takes everything injected (ledger read model, clock, token, and the running
bot's `LiveProbe` and `Metrics` when served by `carrybot run`), so the same app serves a
live bot and a ledger alone (`carrybot web`).
"""

from __future__ import annotations

import logging

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from bot.web import api, pages
from bot.web.context import WebContext
from bot.web.readmodel import ReadModel

log = logging.getLogger(__name__)


def create_app(ctx: WebContext) -> Starlette:
    """Build the ASGI app over `ctx`."""
    routes = [
        Route("/", pages.overview),
        Route("/hedges", pages.hedges),
        Route("/market", pages.market),
        Route("/events", pages.events),
        Route("/api/status", api.status),
        Route("/api/overview", api.overview),
        Route("/api/hedges", api.hedges),
        Route("/api/events", api.events),
        Route("/api/halt", api.halt, methods=["POST"]),
        Route("/api/resume", api.resume, methods=["POST"]),
        Route("/api/adopt", api.adopt, methods=["POST"]),
        Route("/api/hedges/{hedge_id}/close", api.close_hedge, methods=["POST"]),
        Route("/metrics", api.metrics),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
    )
    app.state.ctx = ctx
    app.state.templates = pages.templates()
    app.add_middleware(_OneVersionCheck, read=ctx.read)
    return app


class _OneVersionCheck:
    """Read the ledger's version once per request, however many views the request uses."""

    def __init__(self, app: ASGIApp, read: ReadModel) -> None:
        self.app = app
        self.read = read

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        async with self.read.request():
            await self.app(scope, receive, send)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers or {})
    if request.url.path.startswith("/api/") or exc.status_code != 404:
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=headers)
    return pages.error_page(request, exc.status_code, exc.detail)


async def _server_error(request: Request, exc: Exception) -> Response:
    # The traceback goes to the log (redacted there); the client only learns that it failed.
    log.exception("Dashboard request %s %s failed", request.method, request.url.path)
    return JSONResponse({"error": "internal error; see the bot's log"}, status_code=500)
