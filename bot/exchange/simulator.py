"""An in-memory Binance account: spot wallet, USDⓈ-M wallet and positions, order matching.

Shared by `PaperExchange` (paper mode and backtests) and the fake Binance server of the test
suite, so a paper order that would be rejected live is rejected in paper with the same error.
`SimulatedExchange` is the facade; behind it, one job per module:

- `sim_market`: the market as the caller sets it (instruments, depth, quotes, marks, faults);
- `sim_matching`: immediate fills (book walk or quote plus slippage, at most `depth_levels`
  levels; liquidity that runs out leaves a market order EXPIRED with a partial fill, as on
  Binance) and resting limit orders filled as maker when the market crosses them;
- `sim_fees`: maker/taker rates and which asset pays the fee;
- `sim_orders`: orders by client id, the resting ones, fills, order and trade ids;
- `sim_spot`: the spot wallet and spot orders (-2010 on insufficient balance; resting limit
  orders lock their funds);
- `sim_futures`: the USDⓈ-M wallet, leverage, margin and position modes, futures orders,
  funding and delivery; `sim_futures_margin`: account and position views, the -2019 margin
  check's available balance, and liquidation at the mark;
- `sim_coinm`: the COIN-M wallet (one balance per coin), inverse contracts with their own
  position mode, fees, P&L and funding in the coin, delivery; `sim_coinm_liquidation`: its
  liquidation price and liquidation by Binance's inverse maintenance rules;
- `sim_filters`: Binance's filters and client-id pattern, with Binance's codes; `sim_state`:
  the records and their JSON form; `sim_funding`: the funding timeline.

Client order ids match `^[\\.A-Z\\:/a-z0-9_-]{1,36}$` (spot -1100, futures -4015) and are
unique per account: a known id is rejected -4116 "ClientOrderId is duplicated." on futures /
-2010 "Duplicate order sent." on spot.

Not modelled: spot margin, multi-assets mode, notional brackets beyond the first tier,
PERCENT_PRICE filters, self-trade prevention, time-in-force other than GTC, partial
liquidation and ADL.

Every rejection raises an `OrderRejected` subclass (or `OrderNotFound`) from `bot.errors`
carrying the Binance code and message. All amounts are Decimal; all times come from the
injected clock.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
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
    OrderStatus,
    Position,
    PositionMode,
    Quote,
)
from bot.domain.params import FeeParams
from bot.errors import InsufficientFunds, OrderNotFound
from bot.exchange import sim_futures_margin as margin
from bot.exchange import sim_state as codec
from bot.exchange.sim_coinm import SimCoinmAccount, coinm_state
from bot.exchange.sim_fees import FeeModel
from bot.exchange.sim_filters import check_client_order_id, reject
from bot.exchange.sim_funding import FundingBook
from bot.exchange.sim_futures import MARGIN_ASSET, SimFuturesAccount
from bot.exchange.sim_market import SimMarket
from bot.exchange.sim_matching import match_resting
from bot.exchange.sim_orders import OrderLedger
from bot.exchange.sim_spot import SimSpotAccount
from bot.exchange.sim_state import OrderState

__all__ = ["COINM_WALLET", "FUTURES_WALLET", "MARGIN_ASSET", "SPOT_WALLET", "SimulatedExchange"]

logger = logging.getLogger(__name__)

DEFAULT_MAINTENANCE_RATE = Decimal("0.004")
SPOT_WALLET = "spot"
FUTURES_WALLET = "futures"
COINM_WALLET = "coinm"
STATE_VERSION = 1
_ZERO = Decimal(0)


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
        spot_fee_in_quote: bool = False,
        coinm_position_mode: PositionMode | None = None,
    ) -> None:
        self._clock = clock
        fees = fees or FeeParams()
        # The rates paid (VIP tier, BNB discount applied). Bitstamp: buys pay the fee in
        # quote; so do BNB-paid fees here, charged in USDT at the BNB's value.
        self._fees = FeeModel(fees.effective(), spot_fee_in_quote or fees.bnb_discount)
        self._market = SimMarket(instruments, slippage_bps=slippage_bps, depth_levels=depth_levels)
        self._revision = 0
        self._ledger = OrderLedger(clock)
        self._spot = SimSpotAccount(self._market, self._ledger, self._fees)
        self._futures = SimFuturesAccount(
            self._market,
            self._ledger,
            self._fees,
            clock=clock,
            position_mode=position_mode,
            maintenance_rate=maintenance_rate,
            default_leverage=default_leverage,
            touch=self._touch,
        )
        self._coinm = SimCoinmAccount(
            self._market,
            self._ledger,
            self._fees,
            clock=clock,
            position_mode=coinm_position_mode or position_mode,
            maintenance_rate=maintenance_rate,
            default_leverage=default_leverage,
            touch=self._touch,
        )

    @property
    def spot_fee_in_quote(self) -> bool:
        """True when spot buys pay their fee in the quote asset (Bitstamp), not the base."""
        return self._fees.spot_fee_in_quote

    # --- market state, fed by the caller ------------------------------------------------
    def set_instruments(self, instruments: Mapping[str, Instrument]) -> None:
        """Replace the known instruments (filters)."""
        self._market.instruments = dict(instruments)

    def set_book(self, book: OrderBook) -> None:
        """Set the depth of one symbol; resting limit orders that now cross are filled."""
        self._market.set_book(book)
        self._match_resting(book.symbol)

    def set_quote(self, quote: Quote) -> None:
        """Set the best bid/ask of one symbol (used when no depth is known)."""
        self._market.set_quote(quote)
        self._match_resting(quote.symbol)

    def set_mark(self, symbol: str, mark: Decimal) -> None:
        """Set the mark price of a perpetual: drives unrealised PnL and liquidation."""
        self._market.marks[symbol] = mark
        margin.check_liquidations(self._futures)
        self._coinm.check_liquidations()

    def set_marks(self, marks: Mapping[str, Decimal]) -> None:
        """Set several marks at once, then check liquidations against all of them."""
        self._market.marks.update(marks)
        margin.check_liquidations(self._futures)
        self._coinm.check_liquidations()

    def set_fill_ratio(self, symbol: str, ratio: Decimal | None) -> None:
        """Fill only `ratio` of every later market order on `symbol` (None: back to normal)."""
        self._market.set_fill_ratio(symbol, ratio)

    def instrument(self, symbol: str) -> Instrument | None:
        """Return the instrument of `symbol`, None when unknown."""
        return self._market.instruments.get(symbol)

    def mid_price(self, symbol: str) -> Decimal | None:
        """Return the mid of the last book or quote of `symbol`, None without one."""
        return self._market.mid(symbol)

    def mark_price(self, symbol: str) -> Decimal | None:
        """Return the last mark set for `symbol` (None when never set)."""
        return self._market.marks.get(symbol)

    @property
    def depth_levels(self) -> int:
        """Book levels a market order may walk."""
        return self._market.depth_levels

    @property
    def revision(self) -> int:
        """A counter bumped by every change of the account (not by market data alone)."""
        return self._revision

    # --- account ------------------------------------------------------------------------
    def deposit(self, wallet: str, asset: str, amount: Decimal) -> None:
        """Add `amount` of `asset` to the `spot` or `futures` wallet."""
        if amount <= 0:
            raise ValueError(f"deposit amount must be positive, got {amount}")
        self._wallet(wallet)[asset] = self._wallet(wallet).get(asset, _ZERO) + amount
        self._touch()

    def transfer(self, asset: str, amount: Decimal, *, from_wallet: str, to_wallet: str) -> None:
        """Move funds between the spot and futures wallets (raises InsufficientFunds)."""
        source, target = self._wallet(from_wallet), self._wallet(to_wallet)
        if source is target or amount <= 0:
            raise ValueError("transfer needs two different wallets and a positive amount")
        movable = source.get(asset, _ZERO)
        if from_wallet == FUTURES_WALLET and asset == MARGIN_ASSET:
            movable = min(movable, self._futures.available())
        if from_wallet == COINM_WALLET:
            movable = min(movable, self._coinm.available_in(asset))
        if amount > movable:
            raise InsufficientFunds("Asset transfer failed: insufficient balance", code=-5013)
        source[asset] = source.get(asset, _ZERO) - amount
        target[asset] = target.get(asset, _ZERO) + amount
        self._touch()

    def spot_balances(self) -> dict[str, Balance]:
        """Return every spot asset the account has held, free and locked."""
        return self._spot.balances()

    def futures_account(self) -> FuturesAccount:
        """Return the USDⓈ-M wallet in USDT: balance, PnL, margins, available."""
        return margin.account_view(self._futures)

    def positions(self) -> list[Position]:
        """Return the non-zero perpetual positions."""
        return margin.position_views(self._futures)

    @property
    def position_mode(self) -> PositionMode:
        return self._futures.mode

    # --- COIN-M -------------------------------------------------------------------------
    def coinm_account(self, asset: str) -> FuturesAccount:
        """Return the COIN-M wallet of `asset`, every figure in that coin."""
        return self._coinm.account_view(asset)

    def coinm_assets(self) -> list[str]:
        """Return the coins the COIN-M wallet has held."""
        return sorted(self._coinm.wallet)

    def coinm_positions(self) -> list[Position]:
        """Return the non-zero COIN-M positions (sizes in contracts)."""
        return self._coinm.position_views()

    @property
    def coinm_position_mode(self) -> PositionMode:
        return self._coinm.mode

    def set_coinm_position_mode(self, mode: PositionMode) -> None:
        """Switch COIN-M one-way/hedge (its own setting): -4059, -4068, -4067 as USDⓈ-M."""
        self._coinm.set_position_mode(mode)
        self._touch()

    def set_position_mode(self, mode: PositionMode) -> None:
        """Switch one-way/hedge: -4059 unchanged, -4068 with positions, -4067 with orders."""
        self._futures.set_position_mode(mode)
        self._touch()

    def set_leverage(self, symbol: str, leverage: int) -> None:
        """Set the leverage of one perpetual (1..125, else -4028; -2028 short of margin)."""
        self._account_of(symbol).set_leverage(symbol, leverage)
        self._touch()

    def leverage(self, symbol: str) -> int:
        return self._account_of(symbol).leverage(symbol)

    def set_margin_mode(self, symbol: str, mode: MarginMode) -> None:
        """Set cross/isolated: -4046 unchanged, -4048 with a position, -4047 with orders."""
        self._account_of(symbol).set_margin_mode(symbol, mode)
        self._touch()

    def margin_mode(self, symbol: str) -> MarginMode:
        return self._account_of(symbol).margin_mode(symbol)

    # --- orders -------------------------------------------------------------------------
    def create_order(self, request: OrderRequest) -> Order:
        """Validate and execute one order; return its state (FILLED, EXPIRED, NEW...)."""
        inst = self._market.instruments.get(request.symbol)
        if inst is None:
            raise reject(-1121, "Invalid symbol.")
        if inst.is_dated and inst.expiry is not None and inst.expiry <= self._clock.now():
            raise reject(
                -4108, "Symbol is on delivering or delivered or settling or closed or pre-trading."
            )
        check_client_order_id(request.client_order_id, futures=inst.is_derivative)
        if self._ledger.knows(request.client_order_id):
            if inst.is_derivative:
                raise reject(-4116, "ClientOrderId is duplicated.")
            raise reject(-2010, "Duplicate order sent.")
        if inst.is_derivative:
            state = self._account_of(request.symbol).create(request, inst)
        else:
            state = self._spot.create(request, inst)
        self._touch()
        logger.debug(
            "simulated order %s %s %s filled %s of %s",
            request.client_order_id,
            request.symbol,
            state.status.value,
            state.filled,
            request.quantity,
        )
        return state.to_order()

    def fetch_order(self, symbol: str, client_order_id: str) -> Order:
        """Raise OrderNotFound (-2013 "Order does not exist.") for an unknown id."""
        state = self._ledger.get(client_order_id)
        if state is None or state.request.symbol != symbol:
            raise OrderNotFound("Order does not exist.", code=-2013)
        return state.to_order()

    def cancel_order(self, symbol: str, client_order_id: str) -> Order:
        """Cancel a resting order; unknown or already final: OrderNotFound (-2011)."""
        state = self._ledger.get(client_order_id)
        if state is None or state.request.symbol != symbol or not state.is_open:
            raise OrderNotFound("Unknown order sent.", code=-2011)
        self._close_order(state, OrderStatus.CANCELED)
        self._touch()
        return state.to_order()

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        """Return the resting orders, oldest first."""
        return [
            o.to_order()
            for o in self._ledger.open_states()
            if symbol is None or o.request.symbol == symbol
        ]

    def my_trades(self, symbol: str, since: datetime | None = None) -> list[Fill]:
        """Return our fills on `symbol` at or after `since`, oldest first."""
        return self._ledger.trades(symbol, since)

    # --- funding and delivery -----------------------------------------------------------
    def settle_funding(
        self, symbol: str, funding_time: datetime, rate: Decimal, mark: Decimal
    ) -> FundingPayment | None:
        """Apply one funding settlement to the position on `symbol` (None when flat).

        Idempotent per (symbol, funding_time): settling the same time twice pays once.
        The position is the one held at `funding_time`, even if it changed since.
        """
        account = self._account_of(symbol)
        return account.settle_funding(symbol, funding_time.astimezone(UTC), rate, mark)

    def deliver(self, symbol: str, price: Decimal) -> Decimal:
        """Settle every position on a dated future at its delivery price, as Binance does.

        The positions are closed without a trade or a trading fee; their P&L at `price` goes to
        the futures wallet (returned). Open orders on the symbol are cancelled.
        """
        realized = self._account_of(symbol).deliver(symbol, price)
        self._touch()
        return realized

    def dated_positions_due(self, now: datetime) -> list[str]:
        """Return the dated futures held whose delivery time has come."""
        return sorted(self._futures.dated_positions_due(now) + self._coinm.dated_positions_due(now))

    def funding_payments(
        self, since: datetime | None = None, symbol: str | None = None
    ) -> Sequence[FundingPayment]:
        """Return the funding payments at or after `since`, oldest first."""
        both = [*self._futures.funding.payments(since, symbol)]
        both += self._coinm.funding.payments(since, symbol)
        return sorted(both, key=lambda p: (p.funding_time, p.symbol))

    def funding_due(self) -> dict[str, datetime]:
        """Return, per symbol, the time from which funding may still be unsettled.

        A symbol is listed while it holds a position, and after it went flat until a funding
        time later than the close has been settled (so late history rows still pay).
        """
        return self._futures.funding.due() | self._coinm.funding.due()

    # --- persistence --------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        """Return the whole account (wallets, positions, orders, fills, funding) as JSON data."""
        enc = codec.enc_dec
        futures = self._futures
        return (
            {
                "version": STATE_VERSION,
                "position_mode": futures.mode.value,
                "spot": self._spot.to_state(),
                "futures": {a: enc(v) for a, v in sorted(futures.wallet.items())},
                "leverage": dict(sorted(futures.leverages.items())),
                "margin_modes": {s: m.value for s, m in sorted(futures.margin_modes.items())},
                "marks": {s: enc(m) for s, m in sorted(self._market.marks.items())},
                "positions": [
                    codec.encode_position(s, side, p)
                    for (s, side), p in sorted(futures.positions.items())
                ],
            }
            | self._ledger.to_state()
            | futures.funding.to_state()
            | ({"coinm": self._coinm.to_state()} if self._coinm.in_use else {})
        )

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Restore what `to_state` returned (raises ValueError on malformed state)."""
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported paper state version {state.get('version')!r}")
        try:
            self._load(state)
        except (KeyError, TypeError, AttributeError, ArithmeticError) as exc:
            raise ValueError(f"malformed paper state: {exc!r}") from exc
        self._touch()

    def _load(self, state: Mapping[str, Any]) -> None:
        # Decode everything before assigning anything, so a bad state changes nothing.
        dec = codec.dec
        mode = PositionMode(state["position_mode"])
        spot_free = {a: dec(b["free"]) for a, b in state["spot"].items()}
        spot_locked = {a: dec(b["locked"]) for a, b in state["spot"].items()}
        wallet = {a: dec(v) for a, v in state["futures"].items()}
        leverage = {s: int(v) for s, v in state["leverage"].items()}
        margin_modes = {s: MarginMode(m) for s, m in state["margin_modes"].items()}
        marks = {s: dec(m) for s, m in state["marks"].items()}
        positions = {}
        for row in state["positions"]:
            symbol, side, pos = codec.decode_position(row)
            positions[(symbol, side)] = pos
        ledger = OrderLedger.from_state(state, self._clock)
        funding = FundingBook.from_state(state)
        coinm = coinm_state(state.get("coinm"), self._coinm.mode)
        self._ledger.replace_with(ledger)
        self._spot.free, self._spot.locked = spot_free, spot_locked
        futures = self._futures
        futures.mode, futures.wallet, futures.leverages = mode, wallet, leverage
        futures.margin_modes, futures.positions, futures.funding = margin_modes, positions, funding
        self._market.marks = marks
        self._coinm.restore(coinm)

    # --- helpers ------------------------------------------------------------------------
    def _match_resting(self, symbol: str) -> None:
        if not self._ledger.has_resting():
            return  # the usual case (market orders only): every quote of every poll ends here
        account = self._coinm if self._is_inverse(symbol) else self._futures
        match_resting(symbol, self._market, self._ledger, self._spot, account, self._touch)

    def _is_inverse(self, symbol: str) -> bool:
        inst = self._market.instruments.get(symbol)
        return inst is not None and inst.is_inverse

    def _account_of(self, symbol: str) -> SimFuturesAccount:
        """The USDⓈ-M or the COIN-M account, by the contract `symbol` names."""
        return self._coinm if self._is_inverse(symbol) else self._futures

    def _close_order(self, state: OrderState, status: OrderStatus) -> None:
        """End a resting order, releasing the spot funds it locked."""
        if state.reserved > 0:
            inst = self._market.instruments.get(state.request.symbol)
            if inst is not None and not inst.is_derivative:
                self._spot.release(state, inst)
        self._ledger.finish(state, status)

    def _wallet(self, name: str) -> dict[str, Decimal]:
        if name == SPOT_WALLET:
            return self._spot.free
        if name == FUTURES_WALLET:
            return self._futures.wallet
        if name == COINM_WALLET:
            return self._coinm.wallet
        raise ValueError(f"unknown wallet {name!r}: use 'spot', 'futures' or 'coinm'")

    def _touch(self) -> None:
        self._revision += 1
