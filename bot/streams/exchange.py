"""`StreamedExchange`: an `ExchangePort` whose market data comes from a `StreamingSource`.

Live mode trades through `LiveExchange`; the market-data methods are answered by the
streams (with REST fallback), and `fetch_order` by the user-data stream when it saw the
order's final state (an order whose response was lost is known at once). Every other
method is the live adapter's.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
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
from bot.errors import FatalExchangeError
from bot.exchange.port import CoinmPort, ExchangePort, coinm_of, refresh_status_of
from bot.streams.order_race import first_final
from bot.streams.source import StreamingSource


class StreamedExchange:
    """The live adapter with stream market data."""

    def __init__(self, live: ExchangePort, source: StreamingSource) -> None:
        self.live = live
        self.source = source
        self.stream_fills = 0  # orders whose outcome came from the stream before REST
        self.stream_lookups = 0  # look-ups answered by the user-data stream
        self.rest_lookups = 0

    @property
    def venue(self) -> str:
        return self.live.venue

    # --- market data: the streams -------------------------------------------------------
    async def load_instruments(self, *, reload: bool = False) -> Mapping[str, Instrument]:
        return await self.source.load_instruments(reload=reload)

    async def pairs(self) -> Sequence[Pair]:
        return await self.source.pairs()

    async def refresh_status(self, spot_symbols: Collection[str]) -> list[Instrument]:
        return await refresh_status_of(self.source, spot_symbols)

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
        """Send by REST; the first of its answer and the stream's final report wins.

        An order the stream reports final was received by the exchange, so a REST answer
        still outstanding (slow, or lost and being looked up) is abandoned then.
        """
        user = self.source.user
        if user is None or not user.live(user.stream_for(request.symbol)):
            return await self.live.create_order(request)
        order, from_stream = await first_final(
            self.live.create_order(request), user.wait_final(request.client_order_id)
        )
        if from_stream:
            self.stream_fills += 1
        return order

    async def fetch_order(self, symbol: str, client_order_id: str) -> Order:
        """The final state the user-data stream reported, else the REST look-up."""
        user = self.source.user
        order = user.final_order(client_order_id) if user is not None else None
        if order is not None and order.symbol == symbol:
            self.stream_lookups += 1
            return order
        self.rest_lookups += 1
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
    ) -> str | None:
        return await self.live.transfer(asset, amount, from_wallet=from_wallet, to_wallet=to_wallet)

    # --- COIN-M (`CoinmPort`), by REST, when the live adapter has it loaded ----------------
    @property
    def trades_coinm(self) -> bool:
        return coinm_of(self.live) is not None

    async def fetch_coinm_account(self, asset: str) -> FuturesAccount:
        return await self._coinm().fetch_coinm_account(asset)

    async def fetch_coinm_position_mode(self) -> PositionMode:
        return await self._coinm().fetch_coinm_position_mode()

    async def set_coinm_position_mode(self, mode: PositionMode) -> None:
        await self._coinm().set_coinm_position_mode(mode)

    def _coinm(self) -> CoinmPort:
        side = coinm_of(self.live)
        if side is None:
            raise FatalExchangeError("COIN-M is not loaded on the live adapter")
        return side
