"""ccxt exceptions → bot.errors: Binance code first, then HTTP status, then ccxt's class."""

from __future__ import annotations

from datetime import timedelta

import ccxt.async_support as ccxt
import pytest

from bot.errors import (
    AuthError,
    BadResponseError,
    BannedError,
    CarrybotError,
    ClockSkewError,
    FatalExchangeError,
    InsufficientFunds,
    OrderNotFound,
    OrderRejected,
    OrderStatusUnknown,
    PositionSideMismatch,
    RateLimitedError,
    ReduceOnlyRejected,
    TemporaryError,
)
from bot.exchange.translate import HTTP_INFO_ATTR, HttpInfo, may_have_executed, translate
from tests import kit


def tagged(exc: Exception, **info: object) -> Exception:
    setattr(exc, HTTP_INFO_ATTR, HttpInfo(**info))  # type: ignore[arg-type]
    return exc


@pytest.mark.parametrize(
    ("code", "msg", "expected"),
    [
        (-1021, "Timestamp for this request is outside of the recvWindow.", ClockSkewError),
        (-1003, "Too many requests.", RateLimitedError),
        (-1015, "Too many new orders.", RateLimitedError),
        (-1001, "Internal error.", TemporaryError),
        (-1007, "Timeout waiting for response from backend server.", TemporaryError),
        (-2014, "API-key format invalid.", AuthError),
        (-2015, "Invalid API-key, IP, or permissions for action.", AuthError),
        (-1022, "Signature for this request is not valid.", AuthError),
        (-2013, "Order does not exist.", OrderNotFound),
        (-2011, "Unknown order sent.", OrderNotFound),
        (-2019, "Margin is insufficient.", InsufficientFunds),
        (-2010, "Account has insufficient balance for requested action.", InsufficientFunds),
        (-2010, "Duplicate order sent.", OrderRejected),
        (-2022, "ReduceOnly Order is rejected.", ReduceOnlyRejected),
        (-1106, "Parameter 'reduceOnly' sent when not required.", ReduceOnlyRejected),
        (-4061, "Order's position side does not match user's setting.", PositionSideMismatch),
        (-4164, "Order's notional must be no smaller than 100.", OrderRejected),
    ],
)
def test_translate_binance_code_wins_over_ccxt_class(
    code: int, msg: str, expected: type[CarrybotError]
) -> None:
    exc = ccxt.ExchangeError(f'binance {{"code":{code},"msg":"{msg}"}}')

    error = translate(exc, kit.T0)

    assert type(error) is expected
    assert (error.code, error.reason) == (code, msg)  # type: ignore[attr-defined]


def test_translate_429_carries_retry_after() -> None:
    exc = tagged(ccxt.DDoSProtection("429"), status=429, code=-1003, msg="Too many", retry_after=7)

    error = translate(exc, kit.T0)

    assert isinstance(error, RateLimitedError) and error.retry_after == 7


def test_translate_418_is_a_ban_until_retry_after() -> None:
    exc = tagged(ccxt.DDoSProtection("418"), status=418, code=-1003, msg="banned", retry_after=300)

    error = translate(exc, kit.T0)

    assert isinstance(error, BannedError)
    assert error.until == kit.T0 + timedelta(seconds=300)


def test_translate_5xx_without_code_is_temporary() -> None:
    exc = tagged(ccxt.ExchangeNotAvailable("503"), status=503)

    assert type(translate(exc, kit.T0)) is TemporaryError


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (ccxt.RequestTimeout("timeout"), TemporaryError),
        (ccxt.ExchangeNotAvailable("connection reset"), TemporaryError),
        (ccxt.InvalidNonce("nonce"), ClockSkewError),
        (ccxt.AuthenticationError("requires apiKey"), AuthError),
        (ccxt.InsufficientFunds("funds"), InsufficientFunds),
        (ccxt.OrderNotFound("gone"), OrderNotFound),
        (ccxt.InvalidOrder("amount must be greater"), OrderRejected),
        (ccxt.BadResponse("bad"), BadResponseError),
        (ccxt.NotSupported("no"), FatalExchangeError),
        (KeyError(0), BadResponseError),
    ],
)
def test_translate_without_body_falls_back_to_the_class(
    exc: Exception, expected: type[CarrybotError]
) -> None:
    assert type(translate(exc, kit.T0)) is expected


def test_translate_keeps_our_own_errors() -> None:
    error = OrderRejected("no", code=-1)

    assert translate(error, kit.T0) is error


@pytest.mark.parametrize(
    ("error", "executed"),
    [
        (TemporaryError("timeout"), True),
        (TemporaryError("Internal error", code=-1001), True),
        (RateLimitedError("slow down", retry_after=1), False),
        (ClockSkewError("skew", code=-1021), False),
        (OrderRejected("no", code=-2010), False),
        (OrderStatusUnknown("?", client_order_id="a", symbol="B"), True),
    ],
)
def test_may_have_executed_only_for_transport_failures(
    error: CarrybotError, executed: bool
) -> None:
    assert may_have_executed(error) is executed
