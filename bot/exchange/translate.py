"""Translate ccxt exceptions into the taxonomy of `bot.errors`.

The Binance `code` of the response body decides first, so the result does not depend on
which ccxt class a given URL or ccxt version maps it to; the HTTP status comes next (418,
429, 5xx); ccxt's class is the fallback for errors without a body (timeouts, lost
connections, missing credentials).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

import ccxt.async_support as ccxt

from bot.errors import (
    AuthError,
    BadResponseError,
    BannedError,
    CarrybotError,
    ClockSkewError,
    ExchangeError,
    FatalExchangeError,
    InsufficientFunds,
    OrderNotFound,
    OrderRejected,
    PositionSideMismatch,
    RateLimitedError,
    ReduceOnlyRejected,
    TemporaryError,
)

HTTP_INFO_ATTR = "carrybot_http"
DEFAULT_RETRY_AFTER = 60.0
_BODY = re.compile(r'\{\s*"code"\s*:\s*(-?\d+)\s*,\s*"msg"\s*:\s*"((?:[^"\\]|\\.)*)"')

_TEMPORARY_CODES = {-1000, -1001, -1006, -1007, -1008, -1016}
_AUTH_CODES = {-1002, -1022, -2014, -2015}
_NOT_FOUND_CODES = {-2011, -2013}
_INSUFFICIENT_CODES = {-2018, -2019, -5013}  # -5013: transfer without the balance
_RATE_LIMIT_CODES = {-1003, -1015}
NO_CHANGE_MARGIN = -4046
NO_CHANGE_POSITION_MODE = -4059


@dataclass(frozen=True, slots=True)
class HttpInfo:
    """What the HTTP response behind a ccxt exception said."""

    status: int | None = None
    code: int | None = None
    msg: str | None = None
    retry_after: float | None = None


def body_error(body: object) -> tuple[int | None, str | None]:
    """Return Binance's (code, msg) from a parsed or raw response body."""
    if isinstance(body, str):
        text = body
        try:
            body = json.loads(text)
        except ValueError:
            match = _BODY.search(text)
            return (int(match.group(1)), match.group(2)) if match else (None, None)
    if isinstance(body, dict) and "code" in body:
        try:
            code = int(body["code"])
        except (TypeError, ValueError):
            return None, None
        msg = body.get("msg")
        return code, str(msg) if msg is not None else None
    return None, None


def http_info(exc: BaseException) -> HttpInfo:
    """Return what the exception carries about its response (tagged by the client, or parsed)."""
    tagged = getattr(exc, HTTP_INFO_ATTR, None)
    if isinstance(tagged, HttpInfo):
        return tagged
    code, msg = body_error(str(exc))
    return HttpInfo(code=code, msg=msg)


def _by_code(code: int, reason: str, info: HttpInfo) -> ExchangeError:
    if code in _RATE_LIMIT_CODES:
        return RateLimitedError(
            reason, retry_after=info.retry_after or DEFAULT_RETRY_AFTER, code=code
        )
    if code == -1021:
        return ClockSkewError(reason, code=code)
    if code in _TEMPORARY_CODES:
        return TemporaryError(reason, code=code)
    if code in _AUTH_CODES:
        return AuthError(reason, code=code)
    if code in _NOT_FOUND_CODES:
        return OrderNotFound(reason, code=code)
    if code in _INSUFFICIENT_CODES or (code == -2010 and "insufficient" in reason.lower()):
        return InsufficientFunds(reason, code=code)
    if code == -2022 or (code == -1106 and "reduceonly" in reason.lower()):
        return ReduceOnlyRejected(reason, code=code)
    if code == -4061:
        return PositionSideMismatch(reason, code=code)
    return OrderRejected(reason, code=code)


def _by_class(exc: BaseException, reason: str) -> ExchangeError:
    if isinstance(exc, ccxt.InvalidNonce):
        return ClockSkewError(reason)
    if isinstance(exc, ccxt.DDoSProtection | ccxt.RateLimitExceeded):
        return RateLimitedError(reason, retry_after=DEFAULT_RETRY_AFTER)
    if isinstance(exc, ccxt.OperationFailed) and not isinstance(exc, ccxt.BadResponse):
        return TemporaryError(reason)
    if isinstance(exc, ccxt.AuthenticationError):
        return AuthError(reason)
    if isinstance(exc, ccxt.InsufficientFunds):
        return InsufficientFunds(reason)
    if isinstance(exc, ccxt.OrderNotFound):
        return OrderNotFound(reason)
    if isinstance(exc, ccxt.InvalidOrder | ccxt.BadRequest | ccxt.OperationRejected):
        return OrderRejected(reason)
    if isinstance(exc, ccxt.BadResponse):
        return BadResponseError(reason)
    if isinstance(exc, ccxt.BaseError):
        return FatalExchangeError(reason)
    # Not a ccxt error: ccxt choked on the payload (KeyError, TypeError, bad JSON...).
    return BadResponseError(f"malformed response: {type(exc).__name__}: {exc}")


def translate(exc: BaseException, now: datetime) -> CarrybotError:
    """Return the taxonomy error for `exc` (unchanged when it already is one)."""
    if isinstance(exc, CarrybotError):
        return exc
    info = http_info(exc)
    reason = info.msg or str(exc) or type(exc).__name__
    if info.status == 418:
        retry_after = info.retry_after or DEFAULT_RETRY_AFTER
        return BannedError(
            reason, until=now + timedelta(seconds=retry_after), retry_after=retry_after
        )
    if info.status == 429:
        return RateLimitedError(
            reason, retry_after=info.retry_after or DEFAULT_RETRY_AFTER, code=info.code
        )
    if info.code is not None:
        return _by_code(info.code, reason, info)
    if info.status is not None and info.status >= 500:
        return TemporaryError(f"HTTP {info.status}: {reason}")
    return _by_class(exc, reason)


def may_have_executed(error: CarrybotError) -> bool:
    """Tell whether an order POST that failed this way may still have created the order.

    Timeouts, lost connections, 5xx and Binance's "execution status unknown" codes may have;
    rate limits and clock skew are refused before processing; everything else is a refusal.
    """
    return isinstance(error, TemporaryError) and not isinstance(
        error, RateLimitedError | ClockSkewError
    )
