"""What every dashboard request handler gets: the injected context, and the 400 it raises."""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.exceptions import HTTPException
from starlette.requests import Request

from bot.clock import Clock
from bot.persistence.repositories import Ledger
from bot.web.live import LiveProbe
from bot.web.metrics import Metrics
from bot.web.readmodel import ReadModel


@dataclass
class WebContext:
    read: ReadModel
    clock: Clock
    token: str | None = None
    live: LiveProbe | None = None
    metrics: Metrics = field(default_factory=Metrics)
    source: str = "ledger"

    @property
    def ledger(self) -> Ledger:
        return self.read.ledger

    @property
    def control_enabled(self) -> bool:
        return bool(self.token)


class BadRequest(HTTPException):
    """A 400 with one line naming the field and the fix."""

    def __init__(self, detail: str) -> None:
        super().__init__(400, detail)


def context_of(request: Request) -> WebContext:
    ctx: WebContext = request.app.state.ctx
    return ctx
