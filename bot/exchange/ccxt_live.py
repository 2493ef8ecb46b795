"""`LiveExchange`: the ExchangePort over Binance spot and USDⓈ-M futures, through ccxt.

A facade over one job per module, all sharing one ccxt client and its pacing:

- `ccxt_calls`: one call with its errors mapped to `bot.errors` (-1021 re-syncs the clock
  and retries a signed read once; 418 bans alerted) and the checks of raw responses;
- `ccxt_market_data`: instruments (loaded once per process, with fundingInfo's intervals and
  caps refreshed hourly), statuses, funding, quotes, volumes, depth, delivery prices;
- `ccxt_orders`: orders checked against Binance's filters before ccxt sees them, a lost
  order POST resolved by client order id (never sent again), cancels, our trades;
- `ccxt_account`: balances, the futures account, positions, position/margin modes,
  leverage, transfers, funding payments;
- `ccxt_coinm`: the COIN-M (dapi) coin wallets, positions and position mode (with `coinm`);
- pacing in `ccxt_client.py` and `throttle.py`; error translation in `translate.py`.

Without keys only the market-data methods work.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from decimal import Decimal

from bot.clock import Clock, SystemClock
from bot.config import ExchangeConfig
from bot.domain import (
    Balance,
    EventSink,
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
from bot.domain.fee_schedule import AccountFees
from bot.errors import FatalExchangeError
from bot.exchange.ccxt_account import BinanceAccount
from bot.exchange.ccxt_calls import BinanceSession
from bot.exchange.ccxt_client import build_client
from bot.exchange.ccxt_coinm import BinanceCoinm
from bot.exchange.ccxt_market_data import BinanceMarketData
from bot.exchange.ccxt_orders import BinanceOrders
from bot.exchange.port import CoinmPort, ExchangePort
from bot.exchange.throttle import Pacer, WeightThrottler

FUNDING_REQUESTS_PER_5_MIN = 500


class LiveExchange:
    """Binance spot + USDⓈ-M through ccxt. Without keys only the market-data methods work."""

    def __init__(
        self,
        config: ExchangeConfig,
        *,
        api_key: str | None = None,
        api_secret: str | None = None,
        clock: Clock | None = None,
        events: EventSink | None = None,
        coinm: bool = False,
    ) -> None:
        clock = clock or SystemClock()
        self._pacer = Pacer.from_config(config, clock)
        # fundingRate and fundingInfo share a separate 500 requests / 5 min / IP budget.
        funding_budget = WeightThrottler(
            max(1, int(FUNDING_REQUESTS_PER_5_MIN * config.weight_headroom)), 300.0, clock
        )
        client = build_client(
            config, api_key=api_key, api_secret=api_secret, pacer=self._pacer, coinm=coinm
        )
        self._session = BinanceSession(
            client,
            clock=clock,
            pacer=self._pacer,
            events=events,
            has_keys=bool(api_key and api_secret),
        )
        self._markets = BinanceMarketData(self._session, funding_budget=funding_budget, coinm=coinm)
        self._orders = BinanceOrders(self._session, self._markets)
        self._account = BinanceAccount(self._session, self._markets)
        self._coinm = BinanceCoinm(self._session, self._markets) if coinm else None

    @property
    def venue(self) -> str:
        return "binance"

    @property
    def pacer(self) -> Pacer:
        """The request pacer (budgets per venue), for inspection."""
        return self._pacer

    # --- market data --------------------------------------------------------------------
    async def load_instruments(self, *, reload: bool = False) -> Mapping[str, Instrument]:
        return await self._markets.load_instruments(reload=reload)

    async def pairs(self) -> Sequence[Pair]:
        """Pairs open for new positions: both markets TRADING, no delisting announced."""
        return await self._markets.pairs()

    async def refresh_status(self, spot_symbols: Collection[str]) -> list[Instrument]:
        """Re-read the status of every perpetual and of `spot_symbols`; return what changed."""
        return await self._markets.refresh_status(spot_symbols)

    async def fetch_funding_snapshot(self) -> Mapping[str, FundingInfo]:
        return await self._markets.fetch_funding_snapshot()

    async def fetch_best_quotes(self, kind: MarketKind) -> Mapping[str, Quote]:
        return await self._markets.fetch_best_quotes(kind)

    async def fetch_volumes_24h(self, kind: MarketKind) -> Mapping[str, Decimal]:
        return await self._markets.fetch_volumes_24h(kind)

    async def fetch_order_book(self, symbol: str, depth: int = 20) -> OrderBook:
        return await self._markets.fetch_order_book(symbol, depth)

    async def fetch_funding_history(
        self, symbol: str, since: datetime, until: datetime | None = None
    ) -> Sequence[SettledFunding]:
        return await self._markets.fetch_funding_history(symbol, since, until)

    async def fetch_delivery_price(self, symbol: str) -> Decimal | None:
        """Return a dated future's delivery price, None until Binance publishes it."""
        return await self._markets.fetch_delivery_price(symbol)

    # --- orders -------------------------------------------------------------------------
    async def create_order(self, request: OrderRequest) -> Order:
        return await self._orders.create_order(request)

    async def fetch_order(self, symbol: str, client_order_id: str) -> Order:
        return await self._orders.fetch_order(symbol, client_order_id)

    async def cancel_order(self, symbol: str, client_order_id: str) -> Order:
        return await self._orders.cancel_order(symbol, client_order_id)

    async def fetch_my_trades(self, symbol: str, since: datetime | None = None) -> Sequence[Fill]:
        """Every fill of `symbol` since `since` (window by window), or the recent ones."""
        return await self._orders.fetch_my_trades(symbol, since)

    # --- account ------------------------------------------------------------------------
    async def fetch_spot_balances(self) -> Mapping[str, Balance]:
        return await self._account.fetch_spot_balances()

    async def fetch_futures_account(self) -> FuturesAccount:
        return await self._account.fetch_futures_account()

    async def fetch_positions(self) -> Sequence[Position]:
        """USDⓈ-M positions, and the COIN-M ones (in contracts) when COIN-M is loaded."""
        positions = list(await self._account.fetch_positions())
        if self._coinm is not None:
            positions += await self._coinm.fetch_coinm_positions()
        return positions

    # --- COIN-M -------------------------------------------------------------------------
    @property
    def trades_coinm(self) -> bool:
        """Whether COIN-M markets are loaded (and so COIN-M hedges may be traded)."""
        return self._coinm is not None

    async def fetch_coinm_account(self, asset: str) -> FuturesAccount:
        return await self._coinm_part().fetch_coinm_account(asset)

    async def fetch_coinm_position_mode(self) -> PositionMode:
        return await self._coinm_part().fetch_coinm_position_mode()

    async def set_coinm_position_mode(self, mode: PositionMode) -> None:
        await self._coinm_part().set_coinm_position_mode(mode)

    def _coinm_part(self) -> BinanceCoinm:
        if self._coinm is None:
            raise FatalExchangeError('COIN-M is not loaded: add "coinm" to [strategy] instruments')
        return self._coinm

    async def fetch_account_fees(self, pairs: Sequence[Pair]) -> AccountFees:
        """Return the account's fee rates, VIP tier and BNB burn (see `binance_fees`)."""
        return await self._account.fetch_account_fees(pairs)

    async def fetch_position_mode(self) -> PositionMode:
        return await self._account.fetch_position_mode()

    async def set_position_mode(self, mode: PositionMode) -> None:
        await self._account.set_position_mode(mode)

    async def set_leverage(self, symbol: str, leverage: int) -> None:
        await self._account.set_leverage(symbol, leverage)

    async def set_margin_mode(self, symbol: str, mode: MarginMode) -> None:
        await self._account.set_margin_mode(symbol, mode)

    async def transfer(
        self, asset: str, amount: Decimal, *, from_wallet: str, to_wallet: str
    ) -> str | None:
        return await self._account.transfer(
            asset, amount, from_wallet=from_wallet, to_wallet=to_wallet
        )

    async def fetch_funding_payments(
        self, since: datetime, symbol: str | None = None
    ) -> Sequence[FundingPayment]:
        """Funding paid or received since `since`, window by window up to now."""
        return await self._account.fetch_funding_payments(since, symbol)

    async def close(self) -> None:
        await self._session.client.close()


def _conforms(exchange: LiveExchange) -> ExchangePort:
    """Let mypy check that LiveExchange implements the port."""
    return exchange


def _conforms_coinm(exchange: LiveExchange) -> CoinmPort:
    return exchange
