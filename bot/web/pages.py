"""The HTML pages (Jinja2, rendered on the server; the charts are inline SVG)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.templating import Jinja2Templates

from bot.web import api
from bot.web.context import context_of
from bot.web.svg import Series, line_chart

TEMPLATES = Path(__file__).resolve().parent / "templates"


def templates() -> Jinja2Templates:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        enable_async=False,
    )
    env.filters["money"] = money
    env.filters["pct"] = pct
    env.filters["age"] = age
    return Jinja2Templates(env=env)


def money(value: Any) -> str:
    """'1234.5' -> '1,234.50'; None -> '-'."""
    if value is None or value == "":
        return "-"
    try:
        return f"{Decimal(str(value)):,.2f}"
    except InvalidOperation:
        return str(value)


def pct(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    return f"{Decimal(str(value)) * 100:.{digits}f}%"


def age(seconds: Any) -> str:
    if seconds is None:
        return "never"
    s = float(seconds)
    if s < 120:
        return f"{s:.0f}s ago"
    if s < 7200:
        return f"{s / 60:.0f} min ago"
    return f"{s / 3600:.1f} h ago"


def _render(request: Request, name: str, **context: Any) -> Response:
    ctx = context_of(request)
    page: Response = request.app.state.templates.TemplateResponse(
        request, name, {"source": ctx.source, "path": request.url.path, **context}
    )
    return page


async def overview(request: Request) -> Response:
    ctx = context_of(request)
    data = await api.overview_data(request)
    async with ctx.read.batch():
        equity = await ctx.read.equity_series()
        funding = await ctx.read.cumulative_funding()
        recent = await ctx.read.events(limit=15)
    chart = line_chart(
        "Equity and cumulative funding (USDT)",
        [
            Series("equity", "#2563eb", [(p.at, p.value) for p in equity]),
        ],
    )
    funding_chart = line_chart(
        "Cumulative funding received (USDT)",
        [Series("funding", "#16a34a", [(p.at, p.value) for p in funding])],
    )
    return _render(
        request,
        "overview.html",
        data=data,
        s=data["status"],
        chart=chart,
        funding_chart=funding_chart,
        events=recent,
    )


async def hedges(request: Request) -> Response:
    ctx = context_of(request)
    report = (await ctx.read.status(ctx.clock.now())).to_json()
    payments = await ctx.read.funding_by_hedge()
    return _render(request, "hedges.html", s=report, payments=payments)


async def market(request: Request) -> Response:
    ctx = context_of(request)
    return _render(request, "market.html", rows=await ctx.read.scan())


async def events(request: Request) -> Response:
    ctx = context_of(request)
    limit, severity, kind = api.event_filters(request)
    rows = await ctx.read.events(limit=limit, severity=severity, kind=kind)
    return _render(
        request,
        "events.html",
        events=rows,
        severity=severity.value if severity else "",
        kind=kind or "",
    )


def error_page(request: Request, status: int, detail: str) -> Response:
    return HTMLResponse(
        f"<!doctype html><title>{status}</title><h1>{status}</h1><p>{_escape(detail)}</p>"
        '<p><a href="/">overview</a></p>',
        status_code=status,
    )


def _escape(text: str) -> str:
    from html import escape

    return escape(text)
