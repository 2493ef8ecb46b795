"""The project's error taxonomy. ccxt exceptions are translated into these at the adapter edge.

Retry only `TemporaryError` (and its subclasses), with backoff. Everything else is a decision
for the caller: a rejected order is final, an `OrderStatusUnknown` must be resolved by looking
the order up by its client order id, never by sending it again.
"""

from __future__ import annotations

from datetime import datetime


class CarrybotError(Exception):
    """Base of every error the bot raises on purpose."""


class UserError(CarrybotError):
    """Bad input from the user (config, CLI args): shown as one line each, exit status 2."""

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))


class DatabaseBehindError(CarrybotError):
    """The database schema is older than the code: `carrybot db upgrade` fixes it."""


class ExchangeError(CarrybotError):
    """Base of every error coming from an exchange adapter (live or paper)."""

    def __init__(self, reason: str, *, code: int | None = None) -> None:
        self.code = code
        self.reason = reason
        super().__init__(f"{reason} (code {code})" if code is not None else reason)


class TemporaryError(ExchangeError):
    """Network trouble, timeouts, 5xx, maintenance: safe to retry a read after backoff."""


class RateLimitedError(TemporaryError):
    """HTTP 429 or -1003/-1015: wait `retry_after` seconds before the next request."""

    def __init__(self, reason: str, *, retry_after: float, code: int | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(reason, code=code)


class BannedError(RateLimitedError):
    """HTTP 418: the IP is banned until `until`; nothing may be sent before then."""

    def __init__(self, reason: str, *, until: datetime, retry_after: float) -> None:
        self.until = until
        super().__init__(reason, retry_after=retry_after, code=418)


class ClockSkewError(TemporaryError):
    """-1021: the request timestamp was outside recvWindow; re-sync the clock."""


class OrderStatusUnknown(TemporaryError):
    """An order POST timed out or lost its response: the order may or may not exist.

    The only correct follow-up is to fetch the order by `client_order_id`.
    """

    def __init__(self, reason: str, *, client_order_id: str, symbol: str) -> None:
        self.client_order_id = client_order_id
        self.symbol = symbol
        super().__init__(reason)


class OrderRejected(ExchangeError):
    """The exchange refused an order or request for a stated reason (Binance code + msg)."""


class InsufficientFunds(OrderRejected):
    """Not enough balance or margin (-2010 spot, -2019 futures)."""


class ReduceOnlyRejected(OrderRejected):
    """-2022: a reduceOnly order would not reduce the position (or reduceOnly in hedge mode)."""


class PositionSideMismatch(OrderRejected):
    """-4061: positionSide does not match the account's position mode."""


class OrderNotFound(ExchangeError):
    """No order with that client order id exists on the exchange (-2013 / -2011)."""


class AuthError(ExchangeError):
    """Bad, missing or unauthorised API key (-2014, -2015, -1022)."""


class BadResponseError(ExchangeError):
    """The exchange answered with data that fails validation (missing field, NaN, zero price)."""


class FatalExchangeError(ExchangeError):
    """Anything else that must stop the caller: unsupported operation, unexpected state."""
