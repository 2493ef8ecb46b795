"""The ccxt Binance client carrybot uses: environment, URL overrides, pacing hooks.

`CarryBinance` is ccxt's `binance` with three hooks:
- `fetch2` waits on our pacer before every request (ccxt's own limiter is off);
- `handle_errors` feeds every response's weight headers, 429 and 418 to the pacer and tags
  the raised exception with the HTTP status, Retry-After and Binance code (translate.py);
- `get_exceptions_by_url` maps by path, so per-market error classes survive local URLs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import ccxt.async_support as ccxt

from bot.config import ExchangeConfig
from bot.exchange.throttle import Pacer
from bot.exchange.translate import HTTP_INFO_ATTR, HttpInfo, body_error

_SPOT_KEYS = {
    "public": "/api/v3",
    "private": "/api/v3",
    "v1": "/api/v1",
    "sapi": "/sapi/v1",
    "sapiV2": "/sapi/v2",
    "sapiV3": "/sapi/v3",
    "sapiV4": "/sapi/v4",
}
_FUTURES_KEYS = {
    "fapiPublic": "/fapi/v1",
    "fapiPublicV2": "/fapi/v2",
    "fapiPublicV3": "/fapi/v3",
    "fapiPrivate": "/fapi/v1",
    "fapiPrivateV2": "/fapi/v2",
    "fapiPrivateV3": "/fapi/v3",
    "fapiData": "/futures/data",
    "dapiPublic": "/dapi/v1",
    "dapiPrivate": "/dapi/v1",
    "dapiPrivateV2": "/dapi/v2",
    "dapiData": "/futures/data",
    "eapiPublic": "/eapi/v1",
    "eapiPrivate": "/eapi/v1",
    "papi": "/papi/v1",
    "papiV2": "/papi/v2",
}


def _header(headers: Mapping[str, Any] | None, name: str) -> str | None:
    if not headers:
        return None
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return str(value)
    return None


def _float(raw: str | None) -> float | None:
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None


class CarryBinance(ccxt.binance):  # type: ignore[misc]
    """ccxt's Binance with carrybot's pacing and error tagging."""

    pacer: Pacer | None = None

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
            await self.pacer.before(api, method, path, params)
        return await super().fetch2(path, api, method, params, config or {})

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
        retry_after = _float(_header(headers, "Retry-After"))
        if self.pacer is not None:
            self.pacer.after(
                urlsplit(url).path,
                code,
                used_weight=_float(_header(headers, "X-MBX-USED-WEIGHT-1M")),
                order_count=_float(
                    _header(headers, "X-MBX-ORDER-COUNT-1M")
                    or _header(headers, "X-MBX-ORDER-COUNT-10S")
                ),
                retry_after=retry_after,
            )
        try:
            return super().handle_errors(
                code, reason, url, method, headers, body, response, request_headers, request_body
            )
        except ccxt.BaseError as exc:
            _tag(exc, code, response if response is not None else body, retry_after)
            raise

    def handle_http_status_code(
        self, code: int, reason: str, url: str, method: str, body: str
    ) -> Any:
        try:
            return super().handle_http_status_code(code, reason, url, method, body)
        except ccxt.BaseError as exc:
            _tag(exc, code, body, None)
            raise

    def get_exceptions_by_url(self, url: str, exactOrBroad: str) -> dict[str, Any]:
        path = urlsplit(url or "").path
        if "/fapi/" in path:
            kind = "linear"
        elif "/dapi/" in path:
            kind = "inverse"
        elif "/api/" in path or "/sapi/" in path:
            kind = "spot"
        else:
            return {}
        by_kind = self.safe_dict(self.exceptions, kind, {})
        result: dict[str, Any] = self.safe_dict(by_kind, exactOrBroad, {})
        return result


def _tag(exc: BaseException, status: int, body: Any, retry_after: float | None) -> None:
    if getattr(exc, HTTP_INFO_ATTR, None) is not None:
        return
    code, msg = body_error(body)
    setattr(exc, HTTP_INFO_ATTR, HttpInfo(status, code, msg, retry_after))


def _base(url: object) -> str:
    return str(url).rstrip("/")


def build_client(
    config: ExchangeConfig,
    *,
    api_key: str | None = None,
    api_secret: str | None = None,
    pacer: Pacer | None = None,
    cls: type[CarryBinance] = CarryBinance,
    coinm: bool = False,
) -> CarryBinance:
    """Create the ccxt client for the configured environment and URL overrides.

    `cls` may be a subclass that also derives from `ccxt.pro.binance` (the stream client).
    Markets: spot and USDⓈ-M (perpetual and dated), plus COIN-M (dapi) when `coinm`.
    """
    options: dict[str, Any] = {
        "defaultType": "spot",
        "fetchMarkets": {"types": ["spot", "linear", "inverse"] if coinm else ["spot", "linear"]},
        "fetchCurrencies": False,
        "fetchMargins": False,
        "recvWindow": config.recv_window_ms,
        "adjustForTimeDifference": True,
    }
    params: dict[str, Any] = {
        "enableRateLimit": False,
        "timeout": config.timeout_ms,
        "options": options,
    }
    if api_key and api_secret:
        params["apiKey"] = api_key
        params["secret"] = api_secret
    client = cls(params)
    client.pacer = pacer
    if config.environment == "testnet":
        client.set_sandbox_mode(True)
        if config.futures_api_url is not None:
            client.options["disableFuturesSandboxWarning"] = True
    elif config.environment == "demo":
        client.enable_demo_trading(True)
    urls = dict(client.urls["api"])
    if config.spot_api_url is not None:
        urls.update({k: _base(config.spot_api_url) + p for k, p in _SPOT_KEYS.items()})
    if config.futures_api_url is not None:
        urls.update({k: _base(config.futures_api_url) + p for k, p in _FUTURES_KEYS.items()})
    client.urls["api"] = urls
    if all(str(u).startswith("http://") for u in urls.values() if isinstance(u, str)):
        client.timeout_on_exit = 0  # ccxt's 250 ms close delay only lets TLS sessions wind down
    return client
