"""`StreamedExchange`: an `ExchangePort` whose market data comes from a `StreamingSource`.

Live mode trades through `LiveExchange`; only the market-data methods are answered by the
streams (with REST fallback). Every other method is the live adapter's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal

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
from bot.exchange.port import ExchangePort
from bot.streams.source import StreamingSource


class StreamedExchange:
    """The live adapter with stream market data."""

    def __init__(self, live: ExchangePort, source: StreamingSource) -> None:
        self.live = live
        self.source = source

    @property
    def venue(self) -> str:
        return self.live.venue

    # --- market data: the streams -------------------------------------------------------
    async def load_instruments(self, *, reload: bool = False) -> Mapping[str, Instrument]:
        return await self.source.load_instruments(reload=reload)

    async def pairs(self) -> Sequence[Pair]:
        return await self.source.pairs()

    async def fetch_funding_snapshot(self) -> Mapping[str, FundingInfo]:
        return await self.source.fetch_funding_snapshot()

    async def fetch_best_quotes(self, kind: MarketKind) -> Mapping[str, Quote]:
        return await self.source.fetch_best_quotes(kind)

    async def fetch_order_book(self, symbol: str, depth: int = 20) -> OrderBook:
        return await self.source.fetch_order_book(symbol, depth)

    async def fetch_volumes_24h(self, kind: MarketKind) -> Mapping[str, Decimal]:
        return await self.source.fetch_volumes_24h(kind)

    async def fetch_funding_history(
        self, symbol: str, since: datetime, until: datetime | None = None
    ) -> Sequence[SettledFunding]:
        return await self.source.fetch_funding_history(symbol, since, until)

    async def close(self) -> None:
        await self.source.close()  # closes the live adapter too (it is the REST source)

    # --- trading and account: the live adapter ------------------------------------------
    async def create_order(self, request: OrderRequest) -> Order:
        return await self.live.create_order(request)

    async def fetch_order(self, symbol: str, client_order_id: str) -> Order:
        return await self.live.fetch_order(symbol, client_order_id)

    async def cancel_order(self, symbol: str, client_order_id: str) -> Order:
        return await self.live.cancel_order(symbol, client_order_id)

    async def fetch_my_trades(self, symbol: str, since: datetime | None = None) -> Sequence[Fill]:
        return await self.live.fetch_my_trades(symbol, since)

    async def fetch_spot_balances(self) -> Mapping[str, Balance]:
        return await self.live.fetch_spot_balances()

    async def fetch_futures_account(self) -> FuturesAccount:
        return await self.live.fetch_futures_account()

    async def fetch_positions(self) -> Sequence[Position]:
        return await self.live.fetch_positions()

    async def fetch_position_mode(self) -> PositionMode:
        return await self.live.fetch_position_mode()

    async def set_position_mode(self, mode: PositionMode) -> None:
        await self.live.set_position_mode(mode)

    async def set_leverage(self, symbol: str, leverage: int) -> None:
        await self.live.set_leverage(symbol, leverage)

    async def set_margin_mode(self, symbol: str, mode: MarginMode) -> None:
        await self.live.set_margin_mode(symbol, mode)

    async def fetch_funding_payments(
        self, since: datetime, symbol: str | None = None
    ) -> Sequence[FundingPayment]:
        return await self.live.fetch_funding_payments(since, symbol)

    async def transfer(
        self, asset: str, amount: Decimal, *, from_wallet: str, to_wallet: str
    ) -> None:
        await self.live.transfer(asset, amount, from_wallet=from_wallet, to_wallet=to_wallet)
