"""The ccxt Bitstamp client carrybot uses: URL override, pacing, error tagging, translation.

`CarryBitstamp` is ccxt's `bitstamp` with four hooks:
- `fetch2` waits on our pacer before every request (ccxt's own limiter is off);
- `handle_errors` tags the raised exception with the HTTP status and Bitstamp's reason, and
  feeds 429s to the pacer;
- `sign` signs what Bitstamp verifies (host + path + query, no scheme) also on an http://
  base, where ccxt's signer would keep the `http://` prefix in the signed text;
- currencies are not fetched at load (markets carry everything the bot needs).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import ccxt.async_support as ccxt

from bot.clock import Clock
from bot.config import ExchangeConfig, VenuesConfig
from bot.errors import CarrybotError, ClockSkewError, RateLimitedError
from bot.exchange.throttle import WeightThrottler
from bot.exchange.translate import HTTP_INFO_ATTR, HttpInfo, translate

PRODUCTION_URL = "https://www.bitstamp.net"
TEN_MINUTES = 600.0
RATE_LIMIT_PAUSE_SECONDS = 60.0
TIMESTAMP_REASON = "Timestamp is outside of the allowed window"


class BitstampPacer:
    """Bitstamp's budget: requests per 10 minutes per account, and a pause after a 429.

    Market data and account reads wait for room in the window; orders only count in it
    (a hedge's second leg must not queue behind a poll). After a 429 nothing is sent
    before the pause ends: reads wait, orders raise RateLimitedError.
    """

    def __init__(self, requests_per_10_min: int, headroom: float, clock: Clock) -> None:
        self._clock = clock
        self._window = WeightThrottler(
            max(1, int(requests_per_10_min * headroom)), TEN_MINUTES, clock
        )
        self._blocked_until = float("-inf")

    @property
    def used(self) -> int:
        return self._window.used()

    async def before(self, path: str, *, order: bool) -> None:
        wait = self._blocked_until - self._clock.monotonic()
        if wait > 0:
            if order:
                raise RateLimitedError(
                    f"bitstamp rate-limited (HTTP 429); retry in {wait:.1f} s", retry_after=wait
                )
            await self._clock.sleep(wait)
        if order:
            self._window.record(1)
        else:
            await self._window.acquire(1)

    def after(self, status: int) -> None:
        if status == 429:
            self._blocked_until = self._clock.monotonic() + RATE_LIMIT_PAUSE_SECONDS


_ORDER_PATHS = ("buy/", "sell/", "cancel_order/")


class CarryBitstamp(ccxt.bitstamp):  # type: ignore[misc]
    """ccxt's Bitstamp with carrybot's pacing, error tagging and scheme-free signatures."""

    pacer: BitstampPacer | None = None

    async def fetch2(
        self,
        path: str,
        api: Any = "public",
        method: str = "GET",
        params: dict[str, Any] | None = None,
        config: dict[str, Any] | None = None,
    ) -> Any:
        params = params if params is not None else {}
        if self.pacer is not None:
            await self.pacer.before(path, order=path.startswith(_ORDER_PATHS))
        return await super().fetch2(path, api, method, params, config or {})

    def sign(
        self,
        path: str,
        api: Any = "public",
        method: str = "GET",
        params: dict[str, Any] | None = None,
        headers: Any = None,
        body: Any = None,
    ) -> dict[str, Any]:
        signed: dict[str, Any] = super().sign(path, api, method, params or {})
        request_headers = signed.get("headers")
        url = str(signed["url"])
        if request_headers and url.startswith("http://"):
            # Bitstamp signs host + path + query; ccxt strips only "https://".
            text = (
                request_headers["X-Auth"]
                + method
                + url.removeprefix("http://")
                + request_headers.get("Content-Type", "")
                + request_headers["X-Auth-Nonce"]
                + request_headers["X-Auth-Timestamp"]
                + request_headers["X-Auth-Version"]
                + (signed.get("body") or "")
            )
            request_headers["X-Auth-Signature"] = self.hmac(
                self.encode(text), self.encode(self.secret), hashlib.sha256
            )
        return signed

    def handle_errors(
        self,
        code: int,
        reason: str,
        url: str,
        method: str,
        headers: Mapping[str, Any],
        body: str,
        response: Any,
        request_headers: Any,
        request_body: Any,
    ) -> Any:
        if self.pacer is not None:
            self.pacer.after(code)
        try:
            return super().handle_errors(
                code, reason, url, method, headers, body, response, request_headers, request_body
            )
        except ccxt.BaseError as exc:
            _tag(exc, code, response)
            raise

    def handle_http_status_code(
        self, code: int, reason: str, url: str, method: str, body: str
    ) -> Any:
        try:
            return super().handle_http_status_code(code, reason, url, method, body)
        except ccxt.BaseError as exc:
            _tag(exc, code, None)
            raise


def bitstamp_reason(response: Any) -> str | None:
    """Return Bitstamp's error text from an error body (`reason` a string or a field map)."""
    if not isinstance(response, dict):
        return None
    reason = response.get("reason")
    if isinstance(reason, str):
        return reason
    if isinstance(reason, dict):
        parts = []
        for field, value in reason.items():
            texts = value if isinstance(value, list) else [value]
            for text in texts:
                if text:
                    parts.append(str(text) if field == "__all__" else f"{field}: {text}")
        return "; ".join(parts) or None
    error = response.get("error")
    return str(error) if error else None


def _tag(exc: BaseException, status: int, response: Any) -> None:
    if getattr(exc, HTTP_INFO_ATTR, None) is not None:
        return
    retry_after = RATE_LIMIT_PAUSE_SECONDS if status == 429 else None
    setattr(exc, HTTP_INFO_ATTR, HttpInfo(status, None, bitstamp_reason(response), retry_after))


def translate_bitstamp(exc: BaseException, now: datetime) -> CarrybotError:
    """Return the taxonomy error of a Bitstamp failure (HTTP status first, then ccxt class)."""
    error = translate(exc, now)
    if TIMESTAMP_REASON.lower() in str(error).lower():
        return ClockSkewError(str(error))
    return error


def build_bitstamp_client(
    venues: VenuesConfig,
    exchange: ExchangeConfig,
    *,
    clock: Clock,
    api_key: str | None = None,
    api_secret: str | None = None,
    cls: type[CarryBitstamp] = CarryBitstamp,
) -> CarryBitstamp:
    """Create the ccxt Bitstamp client for the configured base URL, keys and pacing."""
    params: dict[str, Any] = {"enableRateLimit": False, "timeout": venues.bitstamp_timeout_ms}
    if api_key and api_secret:
        params["apiKey"] = api_key
        params["secret"] = api_secret
    client = cls(params)
    client.has = {**client.has, "fetchCurrencies": False}
    client.pacer = BitstampPacer(
        venues.bitstamp_requests_per_10_min, float(exchange.weight_headroom), clock
    )
    client.exceptions["exact"][TIMESTAMP_REASON] = ccxt.InvalidNonce
    base = str(venues.bitstamp_api_url or PRODUCTION_URL).rstrip("/")
    ws = client.urls["api"].get("ws")
    client.urls["api"] = {"public": f"{base}/api", "private": f"{base}/api"}
    if ws is not None:  # ccxt.pro's client: keep (or replace) its WebSocket URL
        client.urls["api"]["ws"] = venues.bitstamp_ws_url or ws
    if base.startswith("http://"):
        client.timeout_on_exit = 0
    return client
