"""Dashboard fixtures: a seeded ledger and an HTTP client on the ASGI app (no socket)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import httpx
import pytest

from bot.persistence.repositories import Ledger
from bot.web import WebContext, create_app
from bot.web.readmodel import ReadModel
from tests.support.seeded_ledger import Seeded, seed_ledger

TOKEN = "s3cret-web-token-for-tests"


@dataclass
class Dash:
    ledger: Ledger
    seeded: Seeded
    ctx: WebContext
    client: httpx.AsyncClient


@pytest.fixture
async def seeded(ledger: Ledger) -> Seeded:
    return await seed_ledger(ledger)


@pytest.fixture
def make_dash(ledger: Ledger, seeded: Seeded) -> Callable[..., AsyncIterator[Dash]]:
    async def make(token: str | None = TOKEN) -> AsyncIterator[Dash]:
        read = ReadModel(ledger, leverage=2, clock=seeded.clock)
        ctx = WebContext(read, seeded.clock, token=token)
        transport = httpx.ASGITransport(app=create_app(ctx))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield Dash(ledger, seeded, ctx, client)

    return make


@pytest.fixture
async def dash(make_dash: Callable[..., AsyncIterator[Dash]]) -> AsyncIterator[Dash]:
    async for d in make_dash():
        yield d


@pytest.fixture
async def readonly_dash(make_dash: Callable[..., AsyncIterator[Dash]]) -> AsyncIterator[Dash]:
    async for d in make_dash(None):
        yield d
