"""JSON endpoints: status (= `carrybot status --json`), hedges, events, control, /metrics."""

from __future__ import annotations

import hmac
import json
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bot.adopt import request_adopt
from bot.control import CloseRefused, request_close, set_trading_state
from bot.domain import Severity
from bot.domain.ledger import TradingState
from bot.errors import UserError
from bot.web import context as web_app

MAX_EVENTS = 1000
MAX_REASON = 200
CONTENT_TYPE_METRICS = "text/plain; version=0.0.4; charset=utf-8"


async def status(request: Request) -> Response:
    ctx = web_app.context_of(request)
    report = await ctx.read.status(ctx.clock.now())
    return JSONResponse(report.to_json())


async def overview(request: Request) -> Response:
    return JSONResponse(await overview_data(request))


async def overview_data(request: Request) -> dict[str, Any]:
    """The overview page's figures: status, mode, equity, P&L split, data health, controls."""
    ctx = web_app.context_of(request)
    now = ctx.clock.now()
    report = (await ctx.read.status(now)).to_json()
    async with ctx.read.batch():
        run = await ctx.read.latest_run()
        equity = await ctx.read.equity_series(limit=1)
        closes = await ctx.read.close_requests()
    live = ctx.live.facts() if ctx.live is not None else None
    data: dict[str, Any] = {
        "status": report,
        "source": ctx.source,
        "mode": live.mode if live else (run.mode if run else None),
        "run": None
        if run is None
        else {
            "id": run.id,
            "mode": run.mode,
            "environment": run.exchange_environment,
            "version": run.version,
            "started_at": run.started_at.isoformat(),
            "stopped_at": run.stopped_at.isoformat() if run.stopped_at else None,
            "stop_reason": run.stop_reason,
        },
        "equity": str(live.equity)
        if live and live.equity is not None
        else (str(equity[-1].value) if equity else None),
        "control_enabled": ctx.control_enabled,
        "close_requests": [
            {
                "hedge_id": r.hedge_id,
                "reason": r.reason,
                "source": r.source,
                "requested_at": r.requested_at.isoformat(),
            }
            for r in closes.values()
        ],
        "market_data": market_data_health(report, live),
        "alert_channels": [
            {"name": c.name, "ok": c.ok, "sent": c.sent, "failed": c.failed, "error": c.last_error}
            for c in (live.alert_channels if live else [])
        ],
    }
    return data


def market_data_health(report: dict[str, Any], live: Any) -> dict[str, Any]:
    """Poll or stream health: the status JSON's own entries (e.g. `streams`) where present."""
    health: dict[str, Any] = {"snapshot_age_seconds": report.get("snapshot_age_seconds")}
    for key in ("streams", "market_data", "stream_health"):
        if key in report:
            health[key] = report[key]
    if live is not None:
        health["snapshot_age_seconds"] = live.market_data_age_seconds
        health["poll_failures"] = live.poll_failures
        health["database_up"] = live.database_up
        if live.streams:
            health["streams"] = {
                str(h.get("name")): f"{h.get('state')}, last message {h.get('age_seconds')}s ago, "
                f"{h.get('reconnects')} reconnects"
                for h in live.streams
            }
        health["request_weight"] = {
            venue: {"used": used, "limit": cap}
            for venue, (used, cap) in live.request_weight.items()
        }
    return health


async def hedges(request: Request) -> Response:
    ctx = web_app.context_of(request)
    report = (await ctx.read.status(ctx.clock.now())).to_json()
    payments = await ctx.read.funding_by_hedge()
    for line in report["open_hedges"] + report["closed_hedges"]:
        line["funding_payments"] = payments.get(line["id"], [])
    return JSONResponse(
        {
            "open": report["open_hedges"],
            "closed": report["closed_hedges"],
            "totals": report["totals"],
        }
    )


def event_filters(request: Request) -> tuple[int, Severity | None, str | None]:
    """Parse ?limit=&severity=&kind=; raise a 400 naming the bad parameter."""
    params = request.query_params
    unknown = sorted(set(params) - {"limit", "severity", "kind"})
    if unknown:
        raise web_app.BadRequest(
            f"unknown query parameter {unknown[0]!r}; allowed: limit, severity, kind"
        )
    raw = params.get("limit", "100")
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_EVENTS:
        raise web_app.BadRequest(f"limit = {raw!r}: must be an integer from 1 to {MAX_EVENTS}")
    severity = None
    if params.get("severity"):
        try:
            severity = Severity(params["severity"])
        except ValueError:
            allowed = ", ".join(s.value for s in Severity)
            raise web_app.BadRequest(
                f"severity = {params['severity']!r}: must be one of {allowed}"
            ) from None
    kind = params.get("kind") or None
    return limit, severity, kind


async def events(request: Request) -> Response:
    ctx = web_app.context_of(request)
    limit, severity, kind = event_filters(request)
    rows = await ctx.read.events(limit=limit, severity=severity, kind=kind)
    return JSONResponse(
        {
            "events": [
                {
                    "id": event_id,
                    "at": e.at.isoformat(),
                    "kind": e.kind,
                    "severity": e.severity.value,
                    "message": e.message,
                    "hedge_id": e.hedge_id,
                    "data": dict(e.data),
                }
                for event_id, e in rows
            ]
        }
    )


def require_token(request: Request) -> None:
    """401 without the right bearer token; 403 when no token is configured (read-only)."""
    ctx = web_app.context_of(request)
    if not ctx.token:
        raise HTTPException(
            403, "control is off: set CARRYBOT_WEB_TOKEN for the bot to enable halt/resume"
        )
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise HTTPException(
            401,
            "missing token: send the header 'Authorization: Bearer <CARRYBOT_WEB_TOKEN>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not hmac.compare_digest(given.strip().encode(), ctx.token.encode()):
        raise HTTPException(401, "wrong token", headers={"WWW-Authenticate": "Bearer"})


async def json_body(request: Request, allowed: set[str]) -> dict[str, Any]:
    """The request's JSON object (empty body = {}); 400 on anything else."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise web_app.BadRequest(
            'body: not valid JSON; send an object such as {"reason": "maintenance"}'
        ) from None
    if not isinstance(body, dict):
        raise web_app.BadRequest("body: must be a JSON object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise web_app.BadRequest(
            f"body.{unknown[0]}: unknown field; allowed: {', '.join(sorted(allowed))}"
        )
    return body


def _reason(body: dict[str, Any]) -> str:
    reason = body.get("reason", "operator")
    if not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_REASON:
        raise web_app.BadRequest(f"body.reason: must be a non-empty string of at most {MAX_REASON}")
    return reason.strip()


async def halt(request: Request) -> Response:
    require_token(request)
    body = await json_body(request, {"reducing", "reason"})
    reducing = body.get("reducing", False)
    if not isinstance(reducing, bool):
        raise web_app.BadRequest(f"body.reducing = {reducing!r}: must be true or false")
    state = TradingState.REDUCING if reducing else TradingState.HALTED
    return await _set(request, state, _reason(body))


async def resume(request: Request) -> Response:
    require_token(request)
    body = await json_body(request, {"reason"})
    return await _set(request, TradingState.ACTIVE, _reason(body))


async def _set(request: Request, state: TradingState, reason: str) -> Response:
    ctx = web_app.context_of(request)
    status = await set_trading_state(
        ctx.ledger, state, reason=reason, source="web", at=ctx.clock.now()
    )
    ctx.read.invalidate()
    return JSONResponse(
        {
            "trading_state": status.state.value,
            "reason": status.reason,
            "changed_by": status.changed_by,
            "changed_at": status.changed_at.isoformat(),
        }
    )


async def adopt(request: Request) -> Response:
    """`carrybot adopt [--hedge ID] [--close]` from the page: a request the next start applies."""
    require_token(request)
    body = await json_body(request, {"hedge_id", "close", "reason"})
    _reason(body)  # the page sends one; checked like halt's, not stored (the event says it)
    hedge_id = body.get("hedge_id")
    if hedge_id is not None and (isinstance(hedge_id, bool) or not isinstance(hedge_id, int)):
        raise web_app.BadRequest(
            f"body.hedge_id = {hedge_id!r}: must be a hedge id (integer), or null for every "
            "drifted hedge"
        )
    close = body.get("close", False)
    if not isinstance(close, bool):
        raise web_app.BadRequest(f"body.close = {close!r}: must be true or false")
    ctx = web_app.context_of(request)
    try:
        message = await request_adopt(
            ctx.ledger, hedge_id, close=close, at=ctx.clock.now(), source="web"
        )
    except UserError as exc:
        raise web_app.BadRequest(str(exc).replace("--hedge", "body.hedge_id =", 1)) from None
    ctx.read.invalidate()
    return JSONResponse({"requested": message, "hedge_id": hedge_id, "close": close})


async def close_hedge(request: Request) -> Response:
    """Close an OPEN hedge from the page: a request the running bot obeys within one cycle.

    202 once stored; 404 for an unknown hedge, 409 for one that is not OPEN.
    """
    require_token(request)
    raw_id = request.path_params["hedge_id"]
    try:
        hedge_id = int(raw_id)
    except ValueError:
        raise web_app.BadRequest(f"hedge id {raw_id!r}: must be an integer") from None
    body = await json_body(request, {"reason"})
    reason = _reason(body)
    ctx = web_app.context_of(request)
    try:
        close = await request_close(
            ctx.ledger, hedge_id, reason=reason, source="web", at=ctx.clock.now()
        )
    except CloseRefused as exc:
        raise HTTPException(404 if exc.not_found else 409, str(exc)) from None
    ctx.read.invalidate()
    return JSONResponse(
        {
            "request_id": close.id,
            "hedge_id": close.hedge_id,
            "reason": close.reason,
            "source": close.source,
            "requested_at": close.requested_at.isoformat(),
        },
        status_code=202,
    )


async def metrics(request: Request) -> Response:
    ctx = web_app.context_of(request)
    live = ctx.live.facts() if ctx.live is not None else None
    text = await ctx.metrics.scrape(ctx.read, ctx.clock.now(), live)
    return Response(text, media_type=CONTENT_TYPE_METRICS)
