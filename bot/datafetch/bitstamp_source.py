"""Pages of Bitstamp spot klines through ccxt's public endpoint (no API keys).

`ohlc/<pair>/` (`publicGetOhlcPair`, what ccxt's `fetch_ohlcv` calls, used directly since
`fetch_ohlcv` turns prices into floats and the files keep the exchange's decimals) with
`step=3600`, `start` and `limit` (at most 1000). Only `start` is sent: with both `start`
and `end` Bitstamp answers the bars before `end`, so paging forward would stall. The client,
its pacing (requests per 10 minutes) and error translation are the live adapter's
(`bot.exchange.bitstamp_client`); temporary errors are retried with backoff.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from bot.backtest.series import HOUR_MS, from_ms
from bot.clock import Clock
from bot.config import ExchangeConfig, VenuesConfig
from bot.datafetch.request import Kind, SymbolSpec
from bot.datafetch.rows import kline_row
from bot.datafetch.source import Page, SourceSettings
from bot.errors import BadResponseError, TemporaryError, UserError
from bot.exchange.bitstamp_client import build_bitstamp_client, translate_bitstamp

logger = logging.getLogger(__name__)

T = TypeVar("T")
MAX_PAGE = 1000


class BitstampHistory:
    """`HistorySource` of Bitstamp spot klines (`--venue bitstamp`)."""

    def __init__(
        self,
        venues: VenuesConfig,
        exchange: ExchangeConfig,
        clock: Clock,
        settings: SourceSettings | None = None,
    ) -> None:
        self._settings = settings or SourceSettings()
        self._clock = clock
        self._client = build_bitstamp_client(venues, exchange, clock=clock)

    async def check_symbols(self, symbols: Sequence[SymbolSpec], kinds: Sequence[Kind]) -> None:
        markets = await self._call("load Bitstamp markets", lambda: self._client.load_markets())
        problems = [
            f"--symbols: Bitstamp lists no spot market {spec.spot}; check the spelling or drop it"
            for spec in symbols
            if not isinstance(markets, dict)
            or not isinstance(markets.get(spec.spot), dict)
            or markets[spec.spot].get("type") != "spot"
        ]
        if problems:
            raise UserError(problems)

    async def page(
        self, kind: Kind, symbol: SymbolSpec, start_ms: int, end_ms: int, limit: int
    ) -> Page:
        if kind is not Kind.SPOT:
            raise UserError(f"--kinds: bitstamp has spot klines only, not {kind}")
        limit = max(1, min(limit, MAX_PAGE))
        what = f"bitstamp {symbol.stem} spot from {from_ms(start_ms):%Y-%m-%d %H:%M}Z"
        first_hour = -(-start_ms // HOUR_MS) * HOUR_MS
        request = {
            "pair": self._client.market(symbol.spot)["id"],
            "step": HOUR_MS // 1000,
            "start": first_hour // 1000,
            "limit": limit,
        }
        raw = await self._call(what, lambda: self._client.publicGetOhlcPair(request))
        bars = raw.get("data", {}).get("ohlc") if isinstance(raw, dict) else None
        if not isinstance(bars, list):
            raise BadResponseError(f"{what}: expected data.ohlc, got {str(raw)[:80]}")
        try:
            rows = [kline_row(_array(bar), kind) for bar in bars]
        except ValueError as exc:
            raise BadResponseError(f"{what}: {exc}") from None
        rows.sort(key=lambda r: r.time_ms)
        return Page(rows, full=len(bars) >= limit)

    async def close(self) -> None:
        await self._client.close()

    async def _call(self, what: str, fn: Callable[[], Awaitable[T]]) -> T:
        attempts = max(1, self._settings.attempts)
        for attempt in range(1, attempts + 1):
            try:
                return await fn()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error = translate_bitstamp(exc, self._clock.now())
                if not isinstance(error, TemporaryError) or attempt == attempts:
                    raise error from exc
                delay = self._settings.backoff_seconds * 2 ** (attempt - 1)
                logger.warning("Retrying %s in %.0f s: %s", what, delay, error)
                await self._clock.sleep(delay)
        raise AssertionError("unreachable")


def _array(bar: object) -> list[Any]:
    """Bitstamp's `{"timestamp", "open", "high", "low", "close", "volume"}` as a kline array."""
    if not isinstance(bar, dict):
        raise ValueError(f"ohlc row {bar!r} is not an object")
    stamp = str(bar.get("timestamp", ""))
    if not stamp.isdigit():
        raise ValueError(f"ohlc row timestamp {bar.get('timestamp')!r} is not epoch seconds")
    return [int(stamp) * 1000, *(bar.get(k) for k in ("open", "high", "low", "close", "volume"))]
