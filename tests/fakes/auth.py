"""Binance SIGNED endpoint checks: API key, HMAC-SHA256 signature, timestamp vs recvWindow."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping


class BinanceError(Exception):
    """A Binance error answer: HTTP `status` with body {"code": code, "msg": msg}."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        self.code = code
        self.msg = msg
        self.status = status
        super().__init__(f"{code} {msg}")


def signed_payload(query: str, body: str) -> tuple[str, str | None]:
    """Split Binance's totalParams (query + body) into the signed text and the signature."""
    total = query + body if not (query and body) else f"{query}&{body}"
    head, sep, signature = total.rpartition("&signature=")
    if not sep:
        if total.startswith("signature="):
            return "", total[len("signature=") :]
        return total, None
    return head, signature.split("&", 1)[0]


def check_signed(
    *,
    api_key: str | None,
    keys: Mapping[str, str],
    query: str,
    body: str,
    params: Mapping[str, str],
    server_ms: int,
) -> str:
    """Validate one SIGNED request and return its API key, or raise BinanceError."""
    if not api_key:
        raise BinanceError(-2014, "API-key format invalid.", 401)
    secret = keys.get(api_key)
    if secret is None:
        raise BinanceError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
    payload, signature = signed_payload(query, body)
    if signature is None:
        raise BinanceError(
            -1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed."
        )
    expected = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        raise BinanceError(-1022, "Signature for this request is not valid.")
    raw_ts = params.get("timestamp")
    if raw_ts is None or not raw_ts.isdigit():
        raise BinanceError(
            -1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed."
        )
    recv_window = int(params.get("recvWindow", "5000"))
    if recv_window > 60000:
        raise BinanceError(-1131, "recvWindow must be less than 60000")
    ts = int(raw_ts)
    if ts >= server_ms + 1000:
        raise BinanceError(
            -1021, "Timestamp for this request was 1000ms ahead of the server's time."
        )
    if server_ms - ts > recv_window:
        raise BinanceError(-1021, "Timestamp for this request is outside of the recvWindow.")
    return api_key
