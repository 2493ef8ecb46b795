"""One ccxt call to Binance with its errors mapped to `bot.errors`, and raw-response checks.

Every error leaves as `bot.errors` (`translate`). -1021 re-syncs the clock and retries a
signed read once; an HTTP 418 ban noticed by the pacer is logged and sent as an ALERT
event. Responses that are not the expected shape raise BadResponseError; rows inside them
that are not objects are dropped and logged.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from bot.clock import Clock, ms_from_utc
from bot.domain import Event, EventSink, Severity
from bot.errors import AuthError, BadResponseError, CarrybotError, ClockSkewError
from bot.exchange.throttle import Pacer
from bot.exchange.translate import translate

logger = logging.getLogger(__name__)

T = TypeVar("T")


class BinanceSession:
    """The ccxt client of one Binance account and what every request needs around it."""

    def __init__(
        self,
        client: Any,
        *,
        clock: Clock,
        pacer: Pacer,
        events: EventSink | None,
        has_keys: bool,
    ) -> None:
        self.client = client
        self.clock = clock
        self.pacer = pacer
        self._events = events
        self._has_keys = has_keys

    async def call(
        self, what: str, fn: Callable[[], Awaitable[T]], *, signed_read: bool = False
    ) -> T:
        """Run one ccxt call; translate its errors; re-sync on -1021 (and retry a signed read)."""
        for attempt in (1, 2):
            try:
                return await fn()
            except Exception as exc:
                error = await self.mapped(exc)
                if isinstance(error, ClockSkewError) and signed_read and attempt == 1:
                    logger.warning("Clock skew on %s: re-synced, retrying once", what)
                    continue
                raise error from exc
        raise AssertionError("unreachable")

    async def mapped(self, exc: Exception) -> CarrybotError:
        """Return `exc` as a `bot.errors` error, after reporting bans and re-syncing on -1021."""
        error = translate(exc, self.clock.now())
        await self._report_bans()
        if isinstance(error, ClockSkewError):
            await self._resync()
        return error

    async def _resync(self) -> None:
        try:
            await self.client.load_time_difference()
        except Exception as exc:
            logger.error("Time re-sync with Binance failed: %s", translate(exc, self.clock.now()))
        else:
            logger.info(
                "Re-synced with Binance time: offset %s ms", self.client.options["timeDifference"]
            )

    async def _report_bans(self) -> None:
        for notice in self.pacer.take_ban_notices():
            message = (
                f"Binance {notice.venue} API banned this IP (HTTP 418) for "
                f"{notice.retry_after:.0f} s; no request is sent until then"
            )
            logger.error(message)
            if self._events is not None:
                await self._events.emit(
                    Event(
                        kind="exchange_banned",
                        message=message,
                        at=self.clock.now(),
                        severity=Severity.ALERT,
                        data={"venue": notice.venue.value, "retry_after": notice.retry_after},
                    )
                )

    def time_offset_ms(self) -> float:
        """Return local minus Binance time in ms, as ccxt last measured it (0 if never)."""
        offset = self.client.options.get("timeDifference")
        return float(offset) if isinstance(offset, int | float) else 0.0

    def history_end_ms(self) -> int:
        """The end of the last history window: now on Binance's clock, with a margin."""
        return ms_from_utc(self.clock.now()) - int(self.time_offset_ms()) + 60_000

    def require_keys(self, what: str) -> None:
        """Raise AuthError when this session has no API keys."""
        if not self._has_keys:
            raise AuthError(f"{what} needs BINANCE_API_KEY and BINANCE_API_SECRET")


def infos(result: object, what: str) -> list[Mapping[str, Any]]:
    """Return the raw Binance rows behind a ccxt list or dict result; validate its shape."""
    if isinstance(result, dict):
        items: list[Any] = list(result.values())
    elif isinstance(result, list):
        items = result
    else:
        raise BadResponseError(f"{what}: expected a list, got {type(result).__name__}")
    rows: list[Mapping[str, Any]] = []
    for item in items:
        info = item.get("info") if isinstance(item, dict) else None
        if isinstance(info, dict):
            rows.append(info)
        else:
            logger.error("Dropping a %s row without data: %r", what, item)
    return rows


def rows(result: object, what: str) -> list[Mapping[str, Any]]:
    """Return the rows of a raw Binance list response; validate its shape."""
    if not isinstance(result, list):
        raise BadResponseError(f"{what}: expected a list, got {type(result).__name__}")
    out: list[Mapping[str, Any]] = []
    for row in result:
        if isinstance(row, dict):
            out.append(row)
        else:
            logger.error("Dropping a %s row that is not an object: %r", what, row)
    return out


def parse_info(raw: object, what: str, parser: Callable[[Mapping[str, Any]], T]) -> T:
    """Parse the `info` object of a ccxt result with `parser`; BadResponseError when it fails."""
    info = raw.get("info") if isinstance(raw, dict) else None
    if not isinstance(info, dict):
        raise BadResponseError(f"{what}: expected an object")
    try:
        return parser(info)
    except (ValueError, KeyError, TypeError) as exc:
        raise BadResponseError(f"{what}: {exc}") from exc
