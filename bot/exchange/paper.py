"""The paper exchange: real (or replayed) public market data, simulated account and fills.

`PaperExchange` implements `ExchangePort` over a `MarketDataSource` and a
`SimulatedExchange`. Market data passes through unchanged and feeds the simulator (quotes,
depth, marks); orders refresh the symbol's depth first so market orders walk the current
book. Funding is settled from the source's funding history for every funding time the
account was exposed at. The account is saved to an optional state store after every change,
so a restart resumes it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Collection, Coroutine, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, ParamSpec, Protocol, TypeVar

from bot.clock import Clock
from bot.config import PaperConfig
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
from bot.domain.params import FeeParams
from bot.errors import (
    CarrybotError,
    ExchangeError,
    FatalExchangeError,
    OrderRejected,
    OrderStatusUnknown,
    TemporaryError,
)
from bot.exchange.port import ExchangePort, MarketDataSource, refresh_status_of
from bot.exchange.simulator import FUTURES_WALLET, MARGIN_ASSET, SPOT_WALLET, SimulatedExchange

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_STATE_KEY = "paper"
_NO_CHANGE_CODES = frozenset({-4046, -4059})  # margin type / position side already set


class StateStore(Protocol):
    """Where the paper account is kept between runs (`PaperStateRepository` is one)."""

    async def load(self, key: str) -> dict[str, Any] | None: ...

    async def save(self, key: str, state: dict[str, Any], *, at: datetime) -> None: ...


def _bot_errors_only(
    fn: Callable[P, Awaitable[R]],
) -> Callable[P, Coroutine[Any, Any, R]]:
    """Let `bot.errors` through; turn anything else into FatalExchangeError."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except CarrybotError:
            raise
        except Exception as exc:
            raise FatalExchangeError(
                f"paper exchange: unexpected {type(exc).__name__} in {fn.__name__}: {exc}"
            ) from exc

    return wrapper


class PaperExchange:
    """`ExchangePort` with simulated execution over a public market-data source."""

    def __init__(
        self,
        source: MarketDataSource,
        simulator: SimulatedExchange,
        *,
        clock: Clock,
        store: StateStore | None = None,
        state_key: str = DEFAULT_STATE_KEY,
    ) -> None:
        self._source = source
        self._sim = simulator
        self._clock = clock
        self._store = store
        self._state_key = state_key
        self._save_lock = asyncio.Lock()
        self._saved_revision: int | None = None

    @classmethod
    @_bot_errors_only
    async def open(
        cls,
        source: MarketDataSource,
        *,
        clock: Clock,
        fees: FeeParams | None = None,
        paper: PaperConfig | None = None,
        store: StateStore | None = None,
        state_key: str = DEFAULT_STATE_KEY,
        position_mode: PositionMode = PositionMode.ONE_WAY,
        spot_quote_asset: str = MARGIN_ASSET,
        spot_fee_in_quote: bool = False,
    ) -> PaperExchange:
        """Load instruments, then restore the saved account or fund a new one from `paper`.

        `position_mode` applies to a new account only; a restored one keeps its own. A spot
        account on another venue funds `spot_quote_asset` (e.g. USD on Bitstamp) and, with
        `spot_fee_in_quote`, charges buys their fee in the quote asset as that venue does.
        """
        paper = paper or PaperConfig()
        instruments = await source.load_instruments()
        sim = SimulatedExchange(
            instruments,
            clock=clock,
            fees=fees,
            slippage_bps=paper.fill_slippage_bps,
            depth_levels=paper.depth_levels,
            position_mode=position_mode,
            spot_fee_in_quote=spot_fee_in_quote,
        )
        exchange = cls(source, sim, clock=clock, store=store, state_key=state_key)
        saved = await exchange._load_saved()
        if saved is not None:
            try:
                sim.load_state(saved)
            except ValueError as exc:
                raise FatalExchangeError(
                    f"paper state {state_key!r} cannot be restored ({exc}); "
                    "move it aside or use another state key"
                ) from exc
            exchange._saved_revision = sim.revision
            logger.info("paper account %r restored", state_key)
            return exchange
        if paper.initial_spot_quote > 0:
            sim.deposit(SPOT_WALLET, spot_quote_asset, paper.initial_spot_quote)
        if paper.initial_futures_quote > 0:
            sim.deposit(FUTURES_WALLET, MARGIN_ASSET, paper.initial_futures_quote)
        await exchange._save()
        logger.info(
            "paper account %r created with %s %s spot and %s USDT futures",
            state_key,
            paper.initial_spot_quote,
            spot_quote_asset,
            paper.initial_futures_quote,
        )
        return exchange

    @property
    def venue(self) -> str:
        return "paper"

    @property
    def source(self) -> MarketDataSource:
        """The market data source this adapter passes through (live, streams or replay)."""
        return self._source

    @property
    def spot_fee_in_base(self) -> bool:
        """False when the simulated spot venue charges buys their fee in the quote asset."""
        return not self._sim.spot_fee_in_quote

    @property
    def simulator(self) -> SimulatedExchange:
        """The simulated account behind this adapter (tests and backtests inspect it)."""
        return self._sim

    # --- market data: delegated, and fed to the simulator ---------------------------------
    @_bot_errors_only
    async def load_instruments(self, *, reload: bool = False) -> Mapping[str, Instrument]:
        """Return the source's instruments and give their filters to the simulator."""
        instruments = await self._source.load_instruments(reload=reload)
        self._sim.set_instruments(instruments)
        return instruments

    @_bot_errors_only
    async def refresh_status(self, spot_symbols: Collection[str]) -> list[Instrument]:
        """Re-read the source's instrument statuses (live data) and give them to the simulator."""
        changed = await refresh_status_of(self._source, spot_symbols)
        if changed:
            self._sim.set_instruments(await self._source.load_instruments())
        return changed

    @_bot_errors_only
    async def pairs(self) -> Sequence[Pair]:
        """Return the source's spot/perpetual pairs."""
        return await self._source.pairs()

    @_bot_errors_only
    async def fetch_funding_snapshot(self) -> Mapping[str, FundingInfo]:
        """Return the source's funding snapshot; its marks drive PnL and liquidation."""
        snapshot = await self._source.fetch_funding_snapshot()
        self._sim.set_marks({symbol: info.mark_price for symbol, info in snapshot.items()})
        await self._save()
        return snapshot

    @_bot_errors_only
    async def fetch_best_quotes(self, kind: MarketKind) -> Mapping[str, Quote]:
        """Return the source's best quotes; resting paper orders they cross are filled."""
        quotes = await self._source.fetch_best_quotes(kind)
        for quote in quotes.values():
            self._sim.set_quote(quote)
        await self._save()
        return quotes

    @_bot_errors_only
    async def fetch_order_book(self, symbol: str, depth: int = 20) -> OrderBook:
        """Return the source's depth of `symbol` and give it to the simulator."""
        book = await self._source.fetch_order_book(symbol, depth)
        self._sim.set_book(book)
        await self._save()
        return book

    @_bot_errors_only
    async def fetch_volumes_24h(self, kind: MarketKind) -> Mapping[str, Decimal]:
        """Return the source's 24h quote volumes."""
        return await self._source.fetch_volumes_24h(kind)

    @_bot_errors_only
    async def fetch_funding_history(
        self, symbol: str, since: datetime, until: datetime | None = None
    ) -> Sequence[SettledFunding]:
        """Return the source's settled funding rates."""
        return await self._source.fetch_funding_history(symbol, since, until)

    @_bot_errors_only
    async def close(self) -> None:
        """Save the account and release the source."""
        await self._save()
        await self._source.close()

    # --- trading --------------------------------------------------------------------------
    @_bot_errors_only
    async def create_order(self, request: OrderRequest) -> Order:
        """Refresh the symbol's depth, then execute the order in the simulator and save.

        Raises OrderStatusUnknown when the order executed but the account could not be
        saved: `fetch_order` finds it.
        """
        await self._refresh_market(request.symbol)
        order = self._sim.create_order(request)
        try:
            await self._save()
        except TemporaryError as exc:
            raise OrderStatusUnknown(
                f"paper order executed but not saved: {exc.reason}",
                client_order_id=request.client_order_id,
                symbol=request.symbol,
            ) from exc
        return order

    @_bot_errors_only
    async def fetch_order(self, symbol: str, client_order_id: str) -> Order:
        """Return one simulated order; OrderNotFound when unknown."""
        return self._sim.fetch_order(symbol, client_order_id)

    @_bot_errors_only
    async def cancel_order(self, symbol: str, client_order_id: str) -> Order:
        """Cancel a resting simulated order and save."""
        order = self._sim.cancel_order(symbol, client_order_id)
        await self._save()
        return order

    @_bot_errors_only
    async def fetch_my_trades(self, symbol: str, since: datetime | None = None) -> Sequence[Fill]:
        """Return the simulated fills of one symbol, oldest first."""
        return self._sim.my_trades(symbol, since)

    @_bot_errors_only
    async def fetch_spot_balances(self) -> Mapping[str, Balance]:
        """Return the simulated spot wallet."""
        return self._sim.spot_balances()

    @_bot_errors_only
    async def fetch_futures_account(self) -> FuturesAccount:
        """Return the simulated USDⓈ-M wallet (dated futures past delivery settled first)."""
        await self.settle_deliveries()
        return self._sim.futures_account()

    @_bot_errors_only
    async def fetch_positions(self) -> Sequence[Position]:
        """Return the simulated open positions, USDⓈ-M then COIN-M (in contracts), dated
        futures past delivery settled first."""
        await self.settle_deliveries()
        return [*self._sim.positions(), *self._sim.coinm_positions()]

    trades_coinm = True  # the simulator holds COIN-M contracts (CoinmPort)

    @_bot_errors_only
    async def fetch_coinm_account(self, asset: str) -> FuturesAccount:
        """Return the simulated COIN-M wallet of one coin (deliveries settled first)."""
        await self.settle_deliveries()
        return self._sim.coinm_account(asset)

    @_bot_errors_only
    async def fetch_coinm_position_mode(self) -> PositionMode:
        return self._sim.coinm_position_mode

    @_bot_errors_only
    async def set_coinm_position_mode(self, mode: PositionMode) -> None:
        await self._configure(self._sim.set_coinm_position_mode, mode)

    @_bot_errors_only
    async def fetch_delivery_price(self, symbol: str) -> Decimal | None:
        """Return a dated future's delivery price: the source's, else the last mark or mid.

        Binance settles at the average index of the last half hour; without that published
        (live public data before it is, or a replay without it) the contract's own last
        mark or mid price, which has converged to the index by then, stands in.
        """
        fetch = getattr(self._source, "fetch_delivery_price", None)
        if fetch is not None:
            price: Decimal | None = await fetch(symbol)
            if price is not None:
                return price
        return self._sim.mark_price(symbol) or self._sim.mid_price(symbol)

    async def settle_deliveries(self) -> Decimal:
        """Settle the dated futures held whose delivery time has passed; return their P&L."""
        total = Decimal(0)
        for symbol in self._sim.dated_positions_due(self._clock.now()):
            price = await self.fetch_delivery_price(symbol)
            if price is None:
                logger.warning("no delivery price for %s yet: settled later", symbol)
                continue
            total += self._sim.deliver(symbol, price)
            logger.info("paper delivery: %s settled at %s", symbol, price)
        if total:
            await self._save()
        return total

    @_bot_errors_only
    async def fetch_position_mode(self) -> PositionMode:
        """Return the simulated account's position mode."""
        return self._sim.position_mode

    @_bot_errors_only
    async def set_position_mode(self, mode: PositionMode) -> None:
        """Switch the position mode ("no change" is not an error) and save."""
        await self._configure(self._sim.set_position_mode, mode)

    @_bot_errors_only
    async def set_leverage(self, symbol: str, leverage: int) -> None:
        """Set one perpetual's leverage and save."""
        await self._configure(self._sim.set_leverage, symbol, leverage)

    @_bot_errors_only
    async def set_margin_mode(self, symbol: str, mode: MarginMode) -> None:
        """Set cross or isolated margin ("no change" is not an error) and save."""
        await self._configure(self._sim.set_margin_mode, symbol, mode)

    @_bot_errors_only
    async def transfer(
        self, asset: str, amount: Decimal, *, from_wallet: str, to_wallet: str
    ) -> str | None:
        """Move funds between the simulated spot and futures wallets, and save."""
        try:
            self._sim.transfer(asset, amount, from_wallet=from_wallet, to_wallet=to_wallet)
        except ValueError as exc:
            raise FatalExchangeError(f"transfer: {exc}") from exc
        await self._save()
        return None  # no exchange, no transfer id

    # --- funding --------------------------------------------------------------------------
    @_bot_errors_only
    async def fetch_funding_payments(
        self, since: datetime, symbol: str | None = None
    ) -> Sequence[FundingPayment]:
        """Settle what funding is due, then return the payments since `since`."""
        await self.settle_funding()
        return self._sim.funding_payments(since, symbol)

    @_bot_errors_only
    async def settle_funding(self, until: datetime | None = None) -> list[FundingPayment]:
        """Settle every funding time up to `until` (default now) the account was exposed at.

        Rates come from the source's funding history; the mark from the history row, else
        the current mark. A funding time whose row is not published yet is not skipped: it
        stays due and settles on a later call. Returns the new payments.
        """
        until = until or self._clock.now()
        paid: list[FundingPayment] = []
        try:
            for symbol, since in self._sim.funding_due().items():
                if since <= until:
                    paid.extend(await self._settle_symbol(symbol, since, until))
        finally:
            await self._save()
        if paid:
            logger.info("paper funding settled: %d payment(s)", len(paid))
        return paid

    async def _settle_symbol(
        self, symbol: str, since: datetime, until: datetime
    ) -> list[FundingPayment]:
        rows = await self._source.fetch_funding_history(symbol, since, until)
        paid: list[FundingPayment] = []
        # Oldest first: the simulator treats a settled time as "everything before is done".
        for row in sorted(rows, key=lambda r: r.funding_time):
            if not since <= row.funding_time <= until:
                continue
            mark = row.mark_price or await self._current_mark(symbol)
            if mark is None:
                logger.warning("no mark for %s: funding at %s stays due", symbol, row.funding_time)
                break
            payment = self._sim.settle_funding(symbol, row.funding_time, row.rate, mark)
            if payment is not None:
                paid.append(payment)
        return paid

    async def _current_mark(self, symbol: str) -> Decimal | None:
        mark = self._sim.mark_price(symbol)
        if mark is None:
            await self.fetch_funding_snapshot()
            mark = self._sim.mark_price(symbol)
        return mark

    # --- internals ------------------------------------------------------------------------
    async def _refresh_market(self, symbol: str) -> None:
        """Give the simulator the current depth of `symbol`, else a fresh best quote."""
        try:
            book = await self._source.fetch_order_book(symbol, self._sim.depth_levels)
        except (ExchangeError, NotImplementedError) as exc:
            logger.debug("no depth for %s (%s): pricing off the best quote", symbol, exc)
            book = None
        if book is not None and (book.bids or book.asks):
            self._sim.set_book(book)
            return
        instrument = self._sim.instrument(symbol)
        if instrument is None:
            return  # the simulator rejects the unknown symbol with Binance's code
        quote = (await self._source.fetch_best_quotes(instrument.kind)).get(symbol)
        if quote is None:
            raise TemporaryError(f"no depth and no quote for {symbol}: paper order not sent")
        self._sim.set_quote(quote)

    async def _configure(self, action: Callable[..., None], *args: Any) -> None:
        try:
            action(*args)
        except OrderRejected as exc:
            if exc.code not in _NO_CHANGE_CODES:
                raise
        await self._save()

    async def _load_saved(self) -> dict[str, Any] | None:
        if self._store is None:
            return None
        try:
            return await self._store.load(self._state_key)
        except Exception as exc:
            raise TemporaryError(f"paper state {self._state_key!r} not loaded: {exc}") from exc

    async def _save(self) -> None:
        """Save the account if it changed since the last save (latest state wins)."""
        if self._store is None:
            return
        async with self._save_lock:
            revision = self._sim.revision
            if revision == self._saved_revision:
                return
            try:
                await self._store.save(self._state_key, self._sim.to_state(), at=self._clock.now())
            except Exception as exc:
                raise TemporaryError(f"paper state {self._state_key!r} not saved: {exc}") from exc
            self._saved_revision = revision


def _conforms(exchange: PaperExchange) -> ExchangePort:
    """Let mypy check that PaperExchange implements the port."""
    return exchange
