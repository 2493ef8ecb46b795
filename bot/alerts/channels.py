"""Where alerts go: Telegram's Bot API `sendMessage` and a generic JSON webhook (aiohttp).

Error strings never contain the URL (Telegram's carries the bot token): only the HTTP status
or the exception's type.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp


class DeliveryError(Exception):
    """A channel did not accept a message; `retry_after` when the channel said when to retry."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Message:
    key: str
    kind: str
    text: str
    at: str


class Channel(Protocol):
    name: str

    async def send(self, session: aiohttp.ClientSession, message: Message) -> None: ...


class TelegramChannel:
    """POST {api}/bot<token>/sendMessage with chat_id and text."""

    name = "telegram"

    def __init__(self, api_url: str, token: str, chat_id: str) -> None:
        self._url = f"{api_url.rstrip('/')}/bot{token}/sendMessage"
        self._chat_id = chat_id

    async def send(self, session: aiohttp.ClientSession, message: Message) -> None:
        body = {"chat_id": self._chat_id, "text": f"carrybot: {message.text}"}
        await _post(session, self._url, body, telegram=True)


class WebhookChannel:
    """POST the alert as JSON: {"key", "kind", "text", "at"}."""

    name = "webhook"

    def __init__(self, url: str) -> None:
        self._url = url

    async def send(self, session: aiohttp.ClientSession, message: Message) -> None:
        body = {"key": message.key, "kind": message.kind, "text": message.text, "at": message.at}
        await _post(session, self._url, body, telegram=False)


async def _post(
    session: aiohttp.ClientSession, url: str, body: dict[str, Any], *, telegram: bool
) -> None:
    try:
        async with session.post(url, json=body) as response:
            if response.status < 300:
                return
            retry_after = None
            if telegram and response.status == 429:
                try:
                    data = await response.json(content_type=None)
                    retry_after = float(data.get("parameters", {}).get("retry_after"))
                except (ValueError, TypeError, aiohttp.ContentTypeError):
                    retry_after = None
            elif response.headers.get("Retry-After", "").isdigit():
                retry_after = float(response.headers["Retry-After"])
            raise DeliveryError(f"HTTP {response.status}", retry_after)
    except aiohttp.ClientError as exc:
        raise DeliveryError(type(exc).__name__) from None
    except TimeoutError:
        raise DeliveryError("timeout") from None
