"""Serve the dashboard with uvicorn inside the caller's event loop (the bot's, or `carrybot web`).

The socket is bound here, so a port in use is an error this module reports, and uvicorn's
own signal handling is off: the bot's SIGINT/SIGTERM handlers stay in charge.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator

import uvicorn
from starlette.applications import Starlette

from bot.errors import UserError
from bot.web.config import WebConfig, is_loopback

log = logging.getLogger(__name__)

STOP_TIMEOUT_SECONDS = 5.0
TICK_SECONDS = 1.0


def check_binding(web: WebConfig, token: str | None, *, source: str = "web.host") -> None:
    """Refuse to serve beyond this machine without a token (UserError: one line)."""
    if not is_loopback(web.host) and not token:
        raise UserError(
            f"{source} = {web.host!r}: serving the dashboard beyond this machine needs "
            "CARRYBOT_WEB_TOKEN in the environment; set it, or use host 127.0.0.1"
        )


class _EmbeddedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the host process handles signals

    async def main_loop(self) -> None:
        # uvicorn wakes up every 0.1 s to look for a stop request; measured in bench_soak.py
        # that alone cost an idle bot ~12% more CPU. Once a second is enough (it also
        # refreshes the Date header, which uvicorn updates once a second anyway).
        while not await self.on_tick(0):  # noqa: ASYNC110 - uvicorn signals by a flag
            await asyncio.sleep(TICK_SECONDS)


class DashboardServer:
    """One uvicorn server on a socket bound at `start` (port 0 picks a free port)."""

    def __init__(self, app: Starlette, host: str, port: int) -> None:
        self._app = app
        self._host = host
        self._port = port
        self._socket: socket.socket | None = None
        self._server: _EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        assert self._socket is not None
        return int(self._socket.getsockname()[1])

    @property
    def url(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        """Bind and start serving; raise OSError when the address cannot be bound."""
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self._host, self._port))
        except OSError:
            sock.close()
            raise
        sock.listen(128)
        sock.setblocking(False)
        self._socket = sock
        config = uvicorn.Config(
            self._app,
            log_config=None,
            access_log=False,
            lifespan="off",
            log_level="warning",
            timeout_graceful_shutdown=2,
        )
        self._server = _EmbeddedServer(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="dashboard")
        while not self._server.started:
            if self._task.done():
                self._task.result()
                raise OSError(f"dashboard on {self.url} stopped at start-up")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            try:
                await asyncio.wait_for(self._task, timeout=STOP_TIMEOUT_SECONDS)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()
            except Exception:
                log.exception("Dashboard server failed while stopping")
        if self._socket is not None:
            self._socket.close()
        self._server = self._task = None
        self._socket = None

    async def serve_until(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set or the server task ends by itself."""
        assert self._task is not None
        waiter = asyncio.create_task(stop.wait())
        await asyncio.wait({waiter, self._task}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
