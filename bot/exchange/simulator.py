"""An in-memory Binance account: spot wallet, USDⓈ-M wallet and positions, order matching.

Shared by `PaperExchange` (paper mode and backtests) and the fake Binance server of the test
suite, so a paper order that would be rejected live is rejected in paper with the same error.

Rules modelled (Binance's):
- filters: quantity must be a multiple of the step size and >= min qty (spot -1013
  "Filter failure: LOT_SIZE"; futures -1111 precision / -4003 quantity), notional >= min
  notional (spot -1013 "Filter failure: NOTIONAL"; futures -4164, waived for reduceOnly);
  limit prices a multiple of the tick size;
- market orders walk the book set with `set_book` (or the best quote plus `slippage_bps`
  when only a quote is known); liquidity that runs out leaves the order EXPIRED with a
  partial fill, as on Binance; `set_fill_ratio` forces partial fills (fault injection);
- fees: spot buys pay the fee in the base asset, spot sells in the quote asset; futures pay
  in USDT from the futures wallet; taker for market orders, maker for resting limit orders;
- spot: -2010 "Account has insufficient balance for requested action." when the wallet
  cannot pay (quote for buys incl. slippage, base for sells);
- futures: cross or isolated margin with leverage per symbol; initial margin
  notional/leverage; maintenance at `maintenance_rate` of notional; available balance =
  wallet + unrealised PnL - initial margin; -2019 "Margin is insufficient." when an order
  that increases exposure would need more than available; unrealised PnL and liquidation
  price at the mark set with `set_mark`; positions are liquidated at the mark when the
  margin balance falls to the maintenance margin;
- position modes: one-way (positionSide BOTH or omitted; a reduceOnly order that would
  increase the position or exceeds it is rejected -2022 "ReduceOnly Order is rejected.");
  hedge (positionSide LONG/SHORT required, else -4061 "Order's position side does not match
  user's setting."; reduceOnly rejected -1106 "Parameter 'reduceOnly' sent when not
  required."); changing the mode with open positions -4068, unchanged -4059;
- funding: `settle_funding` pays rate x mark x size to shorts (from longs) when the rate is
  positive, and records a FundingPayment;
- client order ids are unique per account: a second order with a known id is rejected
  -4015 "Client order id is not valid." on futures / -2010 "Duplicate order sent." on spot.

Every rejection raises an `OrderRejected` subclass from `bot.errors` carrying the Binance
code and message. All amounts are Decimal; all times come from the injected clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from bot.clock import Clock
from bot.domain import (
    Balance,
    Fill,
    FundingPayment,
    FuturesAccount,
    Instrument,
    MarginMode,
    Order,
    OrderBook,
    OrderRequest,
    Position,
    PositionMode,
    Quote,
)
from strategies.base import FeeParams

DEFAULT_MAINTENANCE_RATE = Decimal("0.004")


class SimulatedExchange:
    """The simulated account and matching engine. Synchronous and single-threaded by design."""

    def __init__(
        self,
        instruments: Mapping[str, Instrument],
        *,
        clock: Clock,
        fees: FeeParams | None = None,
        slippage_bps: Decimal = Decimal("5"),
        depth_levels: int = 20,
        position_mode: PositionMode = PositionMode.ONE_WAY,
        maintenance_rate: Decimal = DEFAULT_MAINTENANCE_RATE,
        default_leverage: int = 20,
    ) -> None:
        raise NotImplementedError

    # --- market state, fed by the caller ------------------------------------------------
    def set_instruments(self, instruments: Mapping[str, Instrument]) -> None:
        """Replace the known instruments (filters)."""
        raise NotImplementedError

    def set_book(self, book: OrderBook) -> None:
        """Set the depth of one symbol; resting limit orders that now cross are filled."""
        raise NotImplementedError

    def set_quote(self, quote: Quote) -> None:
        """Set the best bid/ask of one symbol (used when no depth is known)."""
        raise NotImplementedError

    def set_mark(self, symbol: str, mark: Decimal) -> None:
        """Set the mark price of a perpetual: drives unrealised PnL and liquidation."""
        raise NotImplementedError

    def set_fill_ratio(self, symbol: str, ratio: Decimal | None) -> None:
        """Fill only `ratio` of every later market order on `symbol` (None: back to normal)."""
        raise NotImplementedError

    # --- account ------------------------------------------------------------------------
    def deposit(self, wallet: str, asset: str, amount: Decimal) -> None:
        """Add `amount` of `asset` to the `spot` or `futures` wallet."""
        raise NotImplementedError

    def transfer(self, asset: str, amount: Decimal, *, from_wallet: str, to_wallet: str) -> None:
        """Move funds between the spot and futures wallets (raises InsufficientFunds)."""
        raise NotImplementedError

    def spot_balances(self) -> dict[str, Balance]:
        raise NotImplementedError

    def futures_account(self) -> FuturesAccount:
        raise NotImplementedError

    def positions(self) -> list[Position]:
        """Return the non-zero perpetual positions."""
        raise NotImplementedError

    @property
    def position_mode(self) -> PositionMode:
        raise NotImplementedError

    def set_position_mode(self, mode: PositionMode) -> None:
        raise NotImplementedError

    def set_leverage(self, symbol: str, leverage: int) -> None:
        raise NotImplementedError

    def leverage(self, symbol: str) -> int:
        raise NotImplementedError

    def set_margin_mode(self, symbol: str, mode: MarginMode) -> None:
        raise NotImplementedError

    def margin_mode(self, symbol: str) -> MarginMode:
        raise NotImplementedError

    # --- orders -------------------------------------------------------------------------
    def create_order(self, request: OrderRequest) -> Order:
        """Validate and execute one order; return its state (FILLED, EXPIRED, NEW...)."""
        raise NotImplementedError

    def fetch_order(self, symbol: str, client_order_id: str) -> Order:
        """Raise OrderNotFound (-2013 "Order does not exist.") for an unknown id."""
        raise NotImplementedError

    def cancel_order(self, symbol: str, client_order_id: str) -> Order:
        """Cancel a resting order; unknown or already final: OrderNotFound (-2011)."""
        raise NotImplementedError

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        raise NotImplementedError

    def my_trades(self, symbol: str, since: datetime | None = None) -> list[Fill]:
        raise NotImplementedError

    # --- funding ------------------------------------------------------------------------
    def settle_funding(
        self, symbol: str, funding_time: datetime, rate: Decimal, mark: Decimal
    ) -> FundingPayment | None:
        """Apply one funding settlement to the position on `symbol` (None when flat).

        Idempotent per (symbol, funding_time): settling the same time twice pays once.
        """
        raise NotImplementedError

    def funding_payments(
        self, since: datetime | None = None, symbol: str | None = None
    ) -> Sequence[FundingPayment]:
        raise NotImplementedError

    # --- persistence --------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        """Return the whole account (wallets, positions, orders, fills, funding) as JSON data."""
        raise NotImplementedError

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Restore what `to_state` returned."""
        raise NotImplementedError
