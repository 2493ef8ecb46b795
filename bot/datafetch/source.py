"""Pages of Binance history through ccxt's public endpoints (no API keys).

- Funding: `fetch_funding_rate_history` (`/fapi/v1/fundingRate`). That endpoint has its own
  budget of 500 requests per 5 minutes per IP, which ccxt does not model: every attempt waits
  on an asyncio-throttle window sized to the configured share of it, on the injected clock.
- Klines: ccxt's implicit endpoint methods (`publicGetKlines`, `fapiPublicGetKlines`,
  `fapiPublicGetMarkPriceKlines`), the ones `fetch_ohlcv` calls, because `fetch_ohlcv`
  turns prices into floats and the files keep the exchange's decimals.
- The client, its weight pacer and the error translation are the live adapter's
  (`bot.exchange.ccxt_client`, `throttle`, `translate`). Temporary errors are retried with
  backoff; everything else is raised as a `bot.errors` exception.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from bot.backtest.series import from_ms
from bot.clock import Clock
from bot.config import ExchangeConfig
from bot.datafetch.request import Kind, SymbolSpec
from bot.datafetch.rows import Row, delivery_row, funding_row, kline_row
from bot.errors import BadResponseError, BannedError, TemporaryError, UserError
from bot.exchange.ccxt_client import build_client
from bot.exchange.throttle import Pacer, WeightThrottler
from bot.exchange.translate import translate

logger = logging.getLogger(__name__)

T = TypeVar("T")
BINANCE_FUNDING_REQUESTS = 500
BINANCE_FUNDING_WINDOW_SECONDS = 300.0
MAX_PAGE = 1000


@dataclass(frozen=True, slots=True)
class Page:
    """Rows of one response, oldest first; `full` when the exchange hit the limit."""

    rows: list[Row]
    full: bool


class HistorySource(Protocol):
    """Where history pages come from."""

    async def check_symbols(self, symbols: Sequence[SymbolSpec], kinds: Sequence[Kind]) -> None:
        """Raise `UserError` naming each symbol the exchange does not list."""
        ...

    async def page(
        self, kind: Kind, symbol: SymbolSpec, start_ms: int, end_ms: int, limit: int
    ) -> Page:
        """Return up to `limit` rows of `kind` from `start_ms` (incl.) to `end_ms` (excl.)."""
        ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class SourceSettings:
    """Pacing and retries of `BinanceHistory`."""

    funding_requests: int = 400
    funding_window_seconds: float = BINANCE_FUNDING_WINDOW_SECONDS
    attempts: int = 4
    backoff_seconds: float = 1.0

    @classmethod
    def from_config(cls, config: ExchangeConfig) -> SourceSettings:
        """Use the configured headroom on Binance's fundingRate budget (400 of 500 at 0.8)."""
        share = int(BINANCE_FUNDING_REQUESTS * config.weight_headroom)
        return cls(funding_requests=max(1, share))


class BinanceHistory:
    """`HistorySource` over Binance spot and USDⓈ-M through ccxt."""

    def __init__(
        self, config: ExchangeConfig, clock: Clock, settings: SourceSettings | None = None
    ) -> None:
        self._settings = settings or SourceSettings.from_config(config)
        self._clock = clock
        self._client = build_client(config, pacer=Pacer.from_config(config, clock))
        self._funding = WeightThrottler(
            self._settings.funding_requests, self._settings.funding_window_seconds, clock
        )
        self._funding_lock = asyncio.Lock()

    async def check_symbols(self, symbols: Sequence[SymbolSpec], kinds: Sequence[Kind]) -> None:
        markets = await self._call("load Binance markets", lambda: self._client.load_markets())
        problems: list[str] = []
        for spec in symbols:
            wanted = []
            if Kind.SPOT in kinds:
                wanted.append((spec.spot, "spot", "spot"))
            if any(k.on_futures for k in kinds):
                wanted.append((spec.perp, "swap", "USDⓈ-M perpetual"))
            for unified, market_type, label in wanted:
                market = markets.get(unified) if isinstance(markets, dict) else None
                if not isinstance(market, dict) or market.get("type") != market_type:
                    problems.append(
                        f"--symbols: Binance lists no {label} market {unified}; check the "
                        "spelling or drop it"
                    )
        if problems:
            raise UserError(problems)

    async def page(
        self, kind: Kind, symbol: SymbolSpec, start_ms: int, end_ms: int, limit: int
    ) -> Page:
        limit = max(1, min(limit, MAX_PAGE))
        what = f"{symbol.stem} {kind} from {from_ms(start_ms):%Y-%m-%d %H:%M}Z"
        if kind.is_funding:
            fetch = self._funding_page
        elif kind.is_delivery:
            fetch = self._delivery_page
        else:
            fetch = self._kline_page
        raw = await self._call(what, lambda: fetch(kind, symbol, start_ms, end_ms, limit))
        if not isinstance(raw, list):
            raise BadResponseError(f"{what}: expected a list, got {type(raw).__name__}")
        try:
            if kind is Kind.COINM_FUNDING:  # dapi's raw rows
                rows = [funding_row(item) for item in raw if isinstance(item, dict)]
                if len(rows) != len(raw):
                    raise ValueError("a dapi fundingRate row is not an object")
            elif kind is Kind.FUNDING:
                rows = [funding_row(_info(item)) for item in raw]
            elif kind.is_delivery:  # one answer lists every delivery of the pair
                every = [delivery_row(item) for item in raw if isinstance(item, dict)]
                rows = [r for r in every if start_ms <= r.time_ms < end_ms]
                rows.sort(key=lambda r: r.time_ms)
                return Page(rows, full=False)
            else:
                rows = [kline_row(item, kind) for item in raw]
        except ValueError as exc:
            raise BadResponseError(f"{what}: {exc}") from None
        rows.sort(key=lambda r: r.time_ms)
        return Page(rows, full=len(raw) >= limit)

    async def close(self) -> None:
        await self._client.close()

    async def _funding_page(
        self, kind: Kind, symbol: SymbolSpec, start: int, end: int, limit: int
    ) -> Any:
        # One request in flight at a time: the window then logs when requests reach Binance,
        # not when they were admitted; ~1.3 requests/s never needs two in flight anyway.
        async with self._funding_lock:
            await self._funding.acquire(1)
            if kind is Kind.COINM_FUNDING:  # dapi: BASEUSD_PERP, raw (ccxt would load dapi)
                return await self._client.dapiPublicGetFundingRate(
                    {
                        "symbol": _coinm_pair(symbol) + "_PERP",
                        "startTime": start,
                        "endTime": end - 1,
                        "limit": limit,
                    }
                )
            return await self._client.fetch_funding_rate_history(
                symbol.perp, start, limit, {"until": end - 1}
            )

    async def _kline_page(
        self, kind: Kind, symbol: SymbolSpec, start: int, end: int, limit: int
    ) -> Any:
        client = self._client
        if kind.is_continuous:
            # A quarter's bar belongs to the contract delivering next after it (`delivery`
            # kind). COIN-M: the pair is BASEUSD (BTCUSD), on dapi; its perpetual's too.
            fetch_quarter = (
                client.dapiPublicGetContinuousKlines
                if kind.is_coinm
                else client.fapiPublicGetContinuousKlines
            )
            return await fetch_quarter(
                {
                    "pair": _coinm_pair(symbol) if kind.is_coinm else symbol.stem,
                    "contractType": kind.contract_type,
                    "interval": "1h",
                    "startTime": start,
                    "endTime": end - 1,
                    "limit": limit,
                }
            )
        if kind is Kind.SPOT:
            fetch, unified = client.publicGetKlines, symbol.spot
        elif kind is Kind.MARK:
            fetch, unified = client.fapiPublicGetMarkPriceKlines, symbol.perp
        else:
            fetch, unified = client.fapiPublicGetKlines, symbol.perp
        params = {
            "symbol": client.market(unified)["id"],
            "interval": "1h",
            "startTime": start,
            "endTime": end - 1,
            "limit": limit,
        }
        return await fetch(params)

    async def _delivery_page(
        self, kind: Kind, symbol: SymbolSpec, start: int, end: int, limit: int
    ) -> Any:
        if kind.is_coinm:
            return await self._client.dapiDataGetDeliveryPrice({"pair": _coinm_pair(symbol)})
        return await self._client.fapiDataGetDeliveryPrice({"pair": symbol.stem})

    async def _call(self, what: str, fn: Callable[[], Awaitable[T]]) -> T:
        """Run one request; retry temporary errors with backoff; raise `bot.errors` ones."""
        attempts = max(1, self._settings.attempts)
        for attempt in range(1, attempts + 1):
            try:
                return await fn()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error = translate(exc, self._clock.now())
                retry = isinstance(error, TemporaryError) and not isinstance(error, BannedError)
                if not retry or attempt == attempts:
                    raise error from exc
                delay = self._settings.backoff_seconds * 2 ** (attempt - 1)
                logger.warning(
                    "Retrying %s in %.0f s after attempt %d of %d failed: %s",
                    what,
                    delay,
                    attempt,
                    attempts,
                    error,
                )
                await self._clock.sleep(delay)
        raise AssertionError("unreachable")


def _coinm_pair(symbol: SymbolSpec) -> str:
    """The COIN-M pair of a spot symbol: BTC/USDT -> BTCUSD."""
    return symbol.base + "USD"


def _info(item: object) -> dict[str, Any]:
    info = item.get("info") if isinstance(item, dict) else None
    if not isinstance(info, dict):
        raise ValueError(f"funding row {item!r} carries no raw data")
    return info
