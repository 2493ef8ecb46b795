"""The dashboard on a real socket: start, serve, stop; binding rules; `carrybot web` errors."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import httpx
import pytest

from bot.errors import UserError
from bot.persistence.repositories import CycleReads, Ledger
from bot.web import DashboardServer, WebContext, check_binding, create_app, start_dashboard
from bot.web.config import WebConfig
from bot.web.readmodel import ReadModel
from tests.e2e.cli import run_cli
from tests.kit import T0


class _Clock:
    def now(self):  # type: ignore[no-untyped-def]
        return T0

    def monotonic(self) -> float:
        return 0.0


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.5", "example.org", "::"])
def test_a_non_loopback_host_needs_a_token(host: str) -> None:
    with pytest.raises(UserError, match="CARRYBOT_WEB_TOKEN"):
        check_binding(WebConfig(host=host), None)
    check_binding(WebConfig(host=host), "token")
    check_binding(WebConfig(host="127.0.0.1"), None)
    check_binding(WebConfig(host="::1"), None)


async def test_server_serves_on_a_free_port_and_stops(sqlite_url: str, tmp_path: Path) -> None:
    from bot.persistence import migrate
    from bot.persistence.db import create_engine, session_factory

    engine = create_engine(sqlite_url)
    await migrate.upgrade(engine)
    try:
        ctx = WebContext(ReadModel(Ledger(session_factory(engine), CycleReads())), _Clock())  # type: ignore[arg-type]
        server = DashboardServer(create_app(ctx), "127.0.0.1", 0)
        await server.start()
        async with httpx.AsyncClient() as client:
            response = await client.get(f"{server.url}/api/status")
        assert response.status_code == 200
        assert response.json()["open_hedges"] == []
        port = server.port
        await server.stop()
        with pytest.raises(OSError):  # nothing listens there any more
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
    finally:
        await engine.dispose()


async def test_a_port_in_use_is_logged_and_the_bot_goes_on(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    from bot.persistence.db import create_engine, session_factory

    engine = create_engine(sqlite_url)
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        with caplog.at_level(logging.ERROR):
            server = await start_dashboard(
                WebConfig(port=taken.getsockname()[1]),
                Ledger(session_factory(engine), CycleReads()),
                _Clock(),  # type: ignore[arg-type]
                token=None,
                leverage=1,
            )
        assert server is None
        assert "Dashboard not started" in caplog.text and "[web] port" in caplog.text
    finally:
        taken.close()
        await engine.dispose()


def test_carrybot_web_refuses_a_public_host_without_a_token_in_one_line(tmp_path: Path) -> None:
    result = run_cli(
        "web",
        "--database",
        f"sqlite+aiosqlite:///{tmp_path / 'x.db'}",
        "--host",
        "0.0.0.0",
        cwd=tmp_path,
    )
    assert result.code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--host" in lines[0] and "CARRYBOT_WEB_TOKEN" in lines[0]


def test_carrybot_web_with_an_unmigrated_database_says_so(tmp_path: Path) -> None:
    result = run_cli("web", "--database", f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", cwd=tmp_path)
    assert result.code == 2
    assert "db upgrade" in result.stderr
