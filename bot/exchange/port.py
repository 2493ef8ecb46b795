"""The one exchange interface the rest of the bot uses, in domain types (Decimal, UTC).

Two adapters implement it: `LiveExchange` (ccxt, async) and `PaperExchange` (simulated
fills, fees, margin and funding over real or replayed market data). Only the factory
chooses between them. Every method raises the taxonomy of `bot.errors`, never ccxt's.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Protocol, cast, runtime_checkable

from bot.domain import (
    Balance,
    Fill,
    FundingInfo,
    FundingPayment,
    FuturesAccount,
    Instrument,
    MarginMode,
    MarketKind,
    Order,
    OrderBook,
    OrderRequest,
    Pair,
    Position,
    PositionMode,
    Quote,
    SettledFunding,
)


@runtime_checkable
class StatusRefresh(Protocol):
    """A source that can re-read instrument statuses cheaply (live Binance, and what wraps it)."""

    async def refresh_status(self, spot_symbols: Collection[str]) -> list[Instrument]:
        """Re-read the status of every perpetual and of `spot_symbols`; return what changed."""
        ...


async def refresh_status_of(source: object, spot_symbols: Collection[str]) -> list[Instrument]:
    """`source.refresh_status(...)` where supported; nothing changes elsewhere (history)."""
    # What isinstance(source, StatusRefresh) checks, without its cost (~40 µs a call): the
    # poll asks every cycle.
    refresh = getattr(source, "refresh_status", None)
    if refresh is not None:
        return cast(list[Instrument], await refresh(spot_symbols))
    return []


@runtime_checkable
class MarketDataSource(Protocol):
    """Public market data: what paper mode takes from the live exchange or from history."""

    async def load_instruments(self, *, reload: bool = False) -> Mapping[str, Instrument]:
        """Return every spot, perpetual and dated-future instrument keyed by unified symbol.

        Loaded once per process and cached; `reload=True` fetches them again.
        """
        ...

    async def pairs(self) -> Sequence[Pair]:
        """Return the pairs that have both a spot market and a USDⓈ-M perpetual."""
        ...

    async def fetch_funding_snapshot(self) -> Mapping[str, FundingInfo]:
        """Return funding, mark, index and interest for every perpetual in one request."""
        ...

    async def fetch_best_quotes(self, kind: MarketKind) -> Mapping[str, Quote]:
        """Return best bid/ask of every symbol of one market in one request."""
        ...

    async def fetch_order_book(self, symbol: str, depth: int = 20) -> OrderBook:
        """Return order-book depth for one symbol."""
        ...

    async def fetch_volumes_24h(self, kind: MarketKind) -> Mapping[str, Decimal]:
        """Return 24h quote volume of every symbol of one market in one request."""
        ...

    async def fetch_funding_history(
        self, symbol: str, since: datetime, until: datetime | None = None
    ) -> Sequence[SettledFunding]:
        """Return settled funding rates of one perpetual in [since, until], oldest first."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


@runtime_checkable
class ExchangePort(MarketDataSource, Protocol):
    """Market data plus trading and account access for one venue (Binance spot + USDⓈ-M)."""

    @property
    def venue(self) -> str:
        """Name used in ledger keys, e.g. `binance` or `paper`."""
        ...

    async def create_order(self, request: OrderRequest) -> Order:
        """Send one order with the caller's client order id.

        Raises OrderStatusUnknown when the response is lost: resolve with `fetch_order`.
        """
        ...

    async def fetch_order(self, symbol: str, client_order_id: str) -> Order:
        """Return one order by client order id; raise OrderNotFound when it does not exist."""
        ...

    async def cancel_order(self, symbol: str, client_order_id: str) -> Order:
        """Cancel one open order by client order id and return its final state."""
        ...

    async def fetch_my_trades(self, symbol: str, since: datetime | None = None) -> Sequence[Fill]:
        """Return our fills on one symbol since `since`, oldest first."""
        ...

    async def fetch_spot_balances(self) -> Mapping[str, Balance]:
        """Return the spot wallet, keyed by asset."""
        ...

    async def fetch_futures_account(self) -> FuturesAccount:
        """Return the USDⓈ-M wallet: balance, margin, available, unrealised PnL."""
        ...

    async def fetch_positions(self) -> Sequence[Position]:
        """Return every open (non-zero) USDⓈ-M position."""
        ...

    async def fetch_position_mode(self) -> PositionMode:
        """Return the account's position mode (one-way or hedge; account-wide on Binance)."""
        ...

    async def set_position_mode(self, mode: PositionMode) -> None:
        """Switch position mode; only possible with no positions and no open orders."""
        ...

    async def set_leverage(self, symbol: str, leverage: int) -> None:
        """Set the leverage of one perpetual."""
        ...

    async def set_margin_mode(self, symbol: str, mode: MarginMode) -> None:
        """Set cross or isolated margin on one perpetual ("no change" is not an error)."""
        ...

    async def fetch_funding_payments(
        self, since: datetime, symbol: str | None = None
    ) -> Sequence[FundingPayment]:
        """Return funding received or paid since `since`, oldest first."""
        ...

    async def transfer(
        self, asset: str, amount: Decimal, *, from_wallet: str, to_wallet: str
    ) -> str | None:
        """Move `amount` of `asset` between the `spot`, `futures` (and `coinm`) wallets;
        return the exchange's transfer id (None where there is none: paper, backtest)."""
        ...


@runtime_checkable
class CoinmPort(Protocol):
    """What a venue with COIN-M (inverse, coin-margined) contracts adds to the port.

    Its `fetch_positions` also lists COIN-M positions (sizes in contracts) and its
    `transfer` knows the `coinm` wallet.
    """

    @property
    def trades_coinm(self) -> bool:
        """Whether COIN-M contracts are loaded and may be traded."""
        ...

    async def fetch_coinm_account(self, asset: str) -> FuturesAccount:
        """Return the COIN-M wallet of one coin, every figure in that coin."""
        ...

    async def fetch_coinm_position_mode(self) -> PositionMode:
        """Return COIN-M's position mode (set apart from USDⓈ-M's on Binance)."""
        ...

    async def set_coinm_position_mode(self, mode: PositionMode) -> None:
        """Switch COIN-M's position mode; only with no COIN-M positions or orders."""
        ...


def coinm_of(exchange: object) -> CoinmPort | None:
    """The COIN-M side of `exchange`, None when it has none or has not loaded it."""
    if isinstance(exchange, CoinmPort) and exchange.trades_coinm:
        return exchange
    return None
