"""A fake Telegram Bot API (aiohttp): `POST /bot<token>/sendMessage` as Telegram answers it,
plus a JSON webhook receiver at `POST /hook`. Modes per test: ok, down (HTTP 502), hang
(no answer until released), flood (429 with `retry_after`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

TOKEN = "123456:TEST-telegram-token"
CHAT_ID = "-1001234"


class FakeTelegram:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.hooks: list[dict[str, Any]] = []
        self.attempts = 0
        self.mode = "ok"
        self.flood_left = 0
        self.release = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/bot{token}/sendMessage", self._send)
        app.router.add_post("/hook", self._hook)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        self.release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    def texts(self) -> list[str]:
        return [m["text"] for m in self.messages]

    async def _send(self, request: web.Request) -> web.Response:
        self.attempts += 1
        if request.match_info["token"] != TOKEN:
            return web.json_response(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401
            )
        if self.mode == "hang":
            await self.release.wait()
        if self.mode == "down":
            return web.Response(status=502, text="Bad Gateway")
        if self.flood_left > 0:
            self.flood_left -= 1
            return web.json_response(
                {
                    "ok": False,
                    "error_code": 429,
                    "description": "Too Many Requests: retry after 3",
                    "parameters": {"retry_after": 3},
                },
                status=429,
            )
        body = await request.json()
        if str(body.get("chat_id")) != CHAT_ID or not body.get("text"):
            return web.json_response(
                {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"},
                status=400,
            )
        self.messages.append(body)
        return web.json_response(
            {"ok": True, "result": {"message_id": len(self.messages), "text": body["text"]}}
        )

    async def _hook(self, request: web.Request) -> web.Response:
        if self.mode == "down":
            return web.Response(status=503)
        self.hooks.append(await request.json())
        return web.json_response({"ok": True})
