"""An in-memory Binance account: spot wallet, USDⓈ-M wallet and positions, order matching.

Shared by `PaperExchange` (paper mode and backtests) and the fake Binance server of the test
suite, so a paper order that would be rejected live is rejected in paper with the same error.

Rules modelled (Binance's):
- filters (`sim_filters`): spot quantity a multiple of the step size from min qty and within
  min/max (-1013 "Filter failure: LOT_SIZE", MARKET_LOT_SIZE for market orders), limit price
  on the tick grid (-1013 "Filter failure: PRICE_FILTER"), notional >= min notional (-1013
  "Filter failure: NOTIONAL", valued at the mid for market orders); futures quantity
  precision -1111, off-step -4023, <= 0 -4003, below min -4004, above max -4005, price off
  the tick -4014, notional -4164 (valued at the mark for market orders, waived for
  reduce-only and hedge-mode closing orders);
- market orders walk at most `depth_levels` levels of the book set with `set_book`, one
  trade per level (or fill at the best quote plus `slippage_bps`, unlimited, when only a
  quote is known); liquidity that runs out leaves the order EXPIRED with a partial fill, as
  on Binance; `set_fill_ratio` forces partial fills (fault injection);
- limit orders: the marketable part fills at once as taker at the book's prices, the rest
  rests (NEW / PARTIALLY_FILLED) and fills as maker at its own price when a later
  `set_book` / `set_quote` crosses it (the book is a snapshot: resting orders do not consume
  it); spot limit orders lock their funds, futures ones count as open-order margin;
- fees: spot buys pay the fee in the base asset (in the quote asset with
  `spot_fee_in_quote`, as on Bitstamp), spot sells in the quote asset; futures pay
  in USDT from the futures wallet; taker for immediate fills, maker for resting ones;
- spot: -2010 "Account has insufficient balance for requested action." when the wallet
  cannot pay (quote for buys: the walked cost, or quantity x limit price; base for sells);
- futures (USDT-margined, single-asset mode, first maintenance tier): cross or isolated
  margin with leverage per symbol; position initial margin |size| x mark / leverage, an
  isolated position holds entry notional / leverage; maintenance at `maintenance_rate` of
  notional at the mark; available balance = cross wallet + cross unrealised PnL - cross
  initial margin - open-order margin; -2019 "Margin is insufficient." when the part of an
  order that increases exposure needs more (notional / leverage plus the open loss against
  the mark); unrealised PnL and liquidation price at the mark set with `set_mark`; when the
  margin balance (cross: cross wallet + cross PnL; isolated: its margin + PnL) falls to the
  maintenance margin the positions are closed at the mark by `autoclose-…` orders and the
  remaining margin is lost (the insurance fund covers a deficit); open orders on them are
  cancelled;
- position modes: one-way (positionSide BOTH or omitted, else -4061; a reduceOnly order
  that would increase the position or exceeds it: -2022 "ReduceOnly Order is rejected.");
  hedge (positionSide LONG/SHORT required, else -4061 "Order's position side does not match
  user's setting."; reduceOnly rejected -1106 "Parameter 'reduceOnly' sent when not
  required."; closing more than the position: -2022); changing the mode with positions
  -4068, with open orders -4067, unchanged -4059; margin type unchanged -4046, with a
  position -4048, with open orders -4047; leverage outside 1..125 -4028;
- funding: `settle_funding` pays rate x mark x size to shorts (from longs) when the rate is
  positive, using the position held at the funding time (so a position closed since then
  still settles), and records a FundingPayment; idempotent per (symbol, funding time);
- client order ids match `^[\\.A-Z\\:/a-z0-9_-]{1,36}$` (spot -1100, futures -4015) and are
  unique per account: a known id is rejected -4116 "ClientOrderId is duplicated." on
  futures / -2010 "Duplicate order sent." on spot;
- ids: exchange order ids are increasing integers (as strings) across the account, so
  also per symbol; trade ids are increasing integers per symbol, as on Binance.

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
    OrderType,
    Position,
    PositionMode,
    PositionSide,
    Quote,
    Side,
)
from bot.domain.numbers import floor_to_step
from bot.domain.params import FeeParams
from bot.errors import (
    InsufficientFunds,
    OrderNotFound,
    PositionSideMismatch,
    ReduceOnlyRejected,
)
from bot.exchange import sim_state as codec
from bot.exchange.sim_book import Level, crosses, liquidity, slipped_price, vwap, walk_book
from bot.exchange.sim_filters import check_client_order_id, check_order, reject
from bot.exchange.sim_funding import FundingBook, Sizes
from bot.exchange.sim_margin import (
    initial_margin,
    liquidation_price,
    maintenance_margin,
    unrealized_pnl,
)
from bot.exchange.sim_state import OrderState, PositionState

logger = logging.getLogger(__name__)

DEFAULT_MAINTENANCE_RATE = Decimal("0.004")
MARGIN_ASSET = "USDT"
SPOT_WALLET = "spot"
FUTURES_WALLET = "futures"
MAX_LEVERAGE = 125
STATE_VERSION = 1
_ZERO = Decimal(0)
_INSUFFICIENT_BALANCE = "Account has insufficient balance for requested action."

PositionKey = tuple[str, PositionSide]


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
    ) -> None:
        self._clock = clock
        self._fees = fees or FeeParams()
        self._spot_fee_in_quote = spot_fee_in_quote  # Bitstamp: buys pay the fee in quote
        self._slippage_bps = slippage_bps
        self._depth_levels = depth_levels
        self._mmr = maintenance_rate
        self._default_leverage = default_leverage
        self._instruments: dict[str, Instrument] = dict(instruments)
        self._books: dict[str, OrderBook] = {}
        self._quotes: dict[str, Quote] = {}
        self._marks: dict[str, Decimal] = {}
        self._fill_ratios: dict[str, Decimal] = {}
        self._revision = 0
        self._mode = position_mode
        self._spot_free: dict[str, Decimal] = {}
        self._spot_locked: dict[str, Decimal] = {}
        self._futures: dict[str, Decimal] = {}
        self._leverage: dict[str, int] = {}
        self._margin_modes: dict[str, MarginMode] = {}
        self._positions: dict[PositionKey, PositionState] = {}
        self._orders: dict[str, OrderState] = {}
        self._resting: dict[str, OrderState] = {}  # the open subset of `_orders`
        self._fills: list[Fill] = []
        self._funding = FundingBook()
        self._order_seq = 0
        self._trade_seq: dict[str, int] = {}

    @property
    def spot_fee_in_quote(self) -> bool:
        """True when spot buys pay their fee in the quote asset (Bitstamp), not the base."""
        return self._spot_fee_in_quote

    # --- market state, fed by the caller ------------------------------------------------
    def set_instruments(self, instruments: Mapping[str, Instrument]) -> None:
        """Replace the known instruments (filters)."""
        self._instruments = dict(instruments)

    def set_book(self, book: OrderBook) -> None:
        """Set the depth of one symbol; resting limit orders that now cross are filled."""
        self._books[book.symbol] = book
        if book.bids and book.asks:
            (bid, bid_qty), (ask, ask_qty) = book.bids[0], book.asks[0]
            self._quotes[book.symbol] = Quote(
                book.symbol, bid, ask, bid_qty, ask_qty, book.timestamp
            )
        self._match_resting(book.symbol)

    def set_quote(self, quote: Quote) -> None:
        """Set the best bid/ask of one symbol (used when no depth is known)."""
        book = self._books.get(quote.symbol)
        if book is not None and not _book_agrees(book, quote):
            del self._books[quote.symbol]  # the depth is older than this quote
        self._quotes[quote.symbol] = quote
        self._match_resting(quote.symbol)

    def set_mark(self, symbol: str, mark: Decimal) -> None:
        """Set the mark price of a perpetual: drives unrealised PnL and liquidation."""
        self._marks[symbol] = mark
        self._check_liquidations()

    def set_marks(self, marks: Mapping[str, Decimal]) -> None:
        """Set several marks at once, then check liquidations against all of them."""
        self._marks.update(marks)
        self._check_liquidations()

    def set_fill_ratio(self, symbol: str, ratio: Decimal | None) -> None:
        """Fill only `ratio` of every later market order on `symbol` (None: back to normal)."""
        if ratio is None:
            self._fill_ratios.pop(symbol, None)
        elif not 0 <= ratio <= 1:
            raise ValueError(f"fill ratio must be within [0, 1], got {ratio}")
        else:
            self._fill_ratios[symbol] = ratio

    def instrument(self, symbol: str) -> Instrument | None:
        """Return the instrument of `symbol`, None when unknown."""
        return self._instruments.get(symbol)

    def mid_price(self, symbol: str) -> Decimal | None:
        """Return the mid of the last book or quote of `symbol`, None without one."""
        return self._mid(symbol)

    def mark_price(self, symbol: str) -> Decimal | None:
        """Return the last mark set for `symbol` (None when never set)."""
        return self._marks.get(symbol)

    @property
    def depth_levels(self) -> int:
        """Book levels a market order may walk."""
        return self._depth_levels

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
            movable = min(movable, self._available())
        if amount > movable:
            raise InsufficientFunds("Asset transfer failed: insufficient balance", code=-5013)
        source[asset] = source.get(asset, _ZERO) - amount
        target[asset] = target.get(asset, _ZERO) + amount
        self._touch()

    def spot_balances(self) -> dict[str, Balance]:
        """Return every spot asset the account has held, free and locked."""
        assets = sorted(set(self._spot_free) | set(self._spot_locked))
        return {
            a: Balance(a, self._spot_free.get(a, _ZERO), self._spot_locked.get(a, _ZERO))
            for a in assets
        }

    def futures_account(self) -> FuturesAccount:
        """Return the USDⓈ-M wallet in USDT: balance, PnL, margins, available."""
        wallet = self._futures.get(MARGIN_ASSET, _ZERO)
        pnl = maint = iso = cross_pnl = cross_im = _ZERO
        for (symbol, _), pos in self._positions.items():
            mark = self._mark(symbol, pos.entry)
            upnl = unrealized_pnl(pos.size, pos.entry, mark)
            pnl += upnl
            maint += maintenance_margin(pos.size, mark, self._mmr)
            if self._is_isolated(symbol):
                iso += pos.margin
            else:
                cross_pnl += upnl
                cross_im += initial_margin(pos.size, mark, self.leverage(symbol))
        orders_im = self._open_order_margin()
        available = wallet - iso + cross_pnl - cross_im - orders_im
        assets = {
            a: Balance(a, amount, _ZERO) for a, amount in self._futures.items() if a != MARGIN_ASSET
        }
        free = max(_ZERO, min(available, wallet))
        assets[MARGIN_ASSET] = Balance(MARGIN_ASSET, free, wallet - free)
        return FuturesAccount(
            wallet_balance=wallet,
            unrealized_pnl=pnl,
            margin_balance=wallet + pnl,
            available_balance=available,
            maintenance_margin=maint,
            initial_margin=cross_im + iso + orders_im,
            assets=dict(sorted(assets.items())),
        )

    def positions(self) -> list[Position]:
        """Return the non-zero perpetual positions."""
        return [
            self._position_view(symbol, side, pos)
            for (symbol, side), pos in sorted(self._positions.items())
        ]

    @property
    def position_mode(self) -> PositionMode:
        return self._mode

    def set_position_mode(self, mode: PositionMode) -> None:
        """Switch one-way/hedge: -4059 unchanged, -4068 with positions, -4067 with orders."""
        if mode is self._mode:
            raise reject(-4059, "No need to change position side.")
        if self._positions:
            raise reject(-4068, "Position side cannot be changed if there exists position.")
        if any(self._is_futures(o) for o in self._open_states()):
            raise reject(-4067, "Position side cannot be changed if there exists open orders.")
        self._mode = mode
        self._touch()

    def set_leverage(self, symbol: str, leverage: int) -> None:
        """Set the leverage of one perpetual (1..125, else -4028)."""
        self._derivative(symbol)
        if not 1 <= leverage <= MAX_LEVERAGE:
            raise reject(-4028, f"Leverage {leverage} is not valid")
        before, old = self._available(), self.leverage(symbol)
        self._leverage[symbol] = leverage
        after = self._available()
        if after < 0 and after < before:
            self._leverage[symbol] = old
            raise reject(-2028, "Leverage is smaller than permitted: insufficient margin balance.")
        self._touch()

    def leverage(self, symbol: str) -> int:
        return self._leverage.get(symbol, self._default_leverage)

    def set_margin_mode(self, symbol: str, mode: MarginMode) -> None:
        """Set cross/isolated: -4046 unchanged, -4048 with a position, -4047 with orders."""
        self._derivative(symbol)
        if mode is self.margin_mode(symbol):
            raise reject(-4046, "No need to change margin type.")
        if any(s == symbol for s, _ in self._positions):
            raise reject(-4048, "Margin type cannot be changed if there exists position.")
        if any(o.request.symbol == symbol for o in self._open_states()):
            raise reject(-4047, "Margin type cannot be changed if there exists open orders.")
        self._margin_modes[symbol] = mode
        self._touch()

    def margin_mode(self, symbol: str) -> MarginMode:
        return self._margin_modes.get(symbol, MarginMode.CROSS)

    # --- orders -------------------------------------------------------------------------
    def create_order(self, request: OrderRequest) -> Order:
        """Validate and execute one order; return its state (FILLED, EXPIRED, NEW...)."""
        inst = self._instruments.get(request.symbol)
        if inst is None:
            raise reject(-1121, "Invalid symbol.")
        if inst.is_dated and inst.expiry is not None and inst.expiry <= self._clock.now():
            raise reject(
                -4108, "Symbol is on delivering or delivered or settling or closed or pre-trading."
            )
        check_client_order_id(request.client_order_id, futures=inst.is_derivative)
        if request.client_order_id in self._orders:
            if inst.is_derivative:
                raise reject(-4116, "ClientOrderId is duplicated.")
            raise reject(-2010, "Duplicate order sent.")
        if inst.is_derivative:
            state = self._create_futures(request, inst)
        else:
            state = self._create_spot(request, inst)
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
        state = self._orders.get(client_order_id)
        if state is None or state.request.symbol != symbol:
            raise OrderNotFound("Order does not exist.", code=-2013)
        return state.to_order()

    def cancel_order(self, symbol: str, client_order_id: str) -> Order:
        """Cancel a resting order; unknown or already final: OrderNotFound (-2011)."""
        state = self._orders.get(client_order_id)
        if state is None or state.request.symbol != symbol or not state.is_open:
            raise OrderNotFound("Unknown order sent.", code=-2011)
        self._close_order(state, OrderStatus.CANCELED)
        self._touch()
        return state.to_order()

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        """Return the resting orders, oldest first."""
        return [
            o.to_order()
            for o in self._open_states()
            if symbol is None or o.request.symbol == symbol
        ]

    def my_trades(self, symbol: str, since: datetime | None = None) -> list[Fill]:
        """Return our fills on `symbol` at or after `since`, oldest first."""
        return [
            f for f in self._fills if f.symbol == symbol and (since is None or f.timestamp >= since)
        ]

    # --- funding ------------------------------------------------------------------------
    def settle_funding(
        self, symbol: str, funding_time: datetime, rate: Decimal, mark: Decimal
    ) -> FundingPayment | None:
        """Apply one funding settlement to the position on `symbol` (None when flat).

        Idempotent per (symbol, funding_time): settling the same time twice pays once.
        The position is the one held at `funding_time`, even if it changed since.
        """
        when = funding_time.astimezone(UTC)
        if self._funding.is_settled(symbol, when):
            due = self._funding.due()
            self._funding.settle(symbol, when, rate, mark)  # may only move the window on
            if self._funding.due() != due:
                self._touch()
            return None
        sizes = self._funding.sizes_at(symbol, when)
        payment = self._funding.settle(symbol, when, rate, mark)
        self._touch()
        if payment is None:
            return None
        self._add_futures(payment.amount)
        for side, size in sizes.items():
            pos = self._positions.get((symbol, side))
            if pos is not None and self._is_isolated(symbol) and pos.opened_at <= when:
                pos.margin -= size * mark * rate  # an isolated position's funding is its own
        self._check_liquidations()
        return payment

    def deliver(self, symbol: str, price: Decimal) -> Decimal:
        """Settle every position on a dated future at its delivery price, as Binance does.

        The positions are closed without a trade or a trading fee; their P&L at `price` goes to
        the futures wallet (returned). Open orders on the symbol are cancelled.
        """
        inst = self._derivative(symbol)
        if not inst.is_dated:
            raise reject(-4108, "Symbol is not a delivery contract.")
        realized = _ZERO
        for (sym, side), pos in sorted(self._positions.items()):
            if sym != symbol:
                continue
            realized += self._apply_to_position(symbol, side, -pos.size, price)
        for state in [o for o in self._open_states() if o.request.symbol == symbol]:
            self._close_order(state, OrderStatus.CANCELED)
        self._add_futures(realized)
        self._touch()
        return realized

    def dated_positions_due(self, now: datetime) -> list[str]:
        """Return the dated futures held whose delivery time has come."""
        due = set()
        for symbol, _ in self._positions:
            inst = self._instruments.get(symbol)
            if inst is not None and inst.is_dated and inst.expiry and inst.expiry <= now:
                due.add(symbol)
        return sorted(due)

    def funding_payments(
        self, since: datetime | None = None, symbol: str | None = None
    ) -> Sequence[FundingPayment]:
        """Return the funding payments at or after `since`, oldest first."""
        return self._funding.payments(since, symbol)

    def funding_due(self) -> dict[str, datetime]:
        """Return, per symbol, the time from which funding may still be unsettled.

        A symbol is listed while it holds a position, and after it went flat until a funding
        time later than the close has been settled (so late history rows still pay).
        """
        return self._funding.due()

    # --- persistence --------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        """Return the whole account (wallets, positions, orders, fills, funding) as JSON data."""
        enc = codec.enc_dec
        return {
            "version": STATE_VERSION,
            "position_mode": self._mode.value,
            "spot": {
                a: {"free": enc(b.free), "locked": enc(b.locked)}
                for a, b in self.spot_balances().items()
            },
            "futures": {a: enc(v) for a, v in sorted(self._futures.items())},
            "leverage": dict(sorted(self._leverage.items())),
            "margin_modes": {s: m.value for s, m in sorted(self._margin_modes.items())},
            "marks": {s: enc(m) for s, m in sorted(self._marks.items())},
            "positions": [
                codec.encode_position(s, side, p)
                for (s, side), p in sorted(self._positions.items())
            ],
            "orders": [codec.encode_order(o) for o in self._orders.values()],
            "fills": [codec.encode_fill(f) for f in self._fills],
            "order_seq": self._order_seq,
            "trade_seq": dict(sorted(self._trade_seq.items())),
        } | self._funding.to_state()

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
        futures = {a: dec(v) for a, v in state["futures"].items()}
        leverage = {s: int(v) for s, v in state["leverage"].items()}
        margin_modes = {s: MarginMode(m) for s, m in state["margin_modes"].items()}
        marks = {s: dec(m) for s, m in state["marks"].items()}
        positions = {}
        for row in state["positions"]:
            symbol, side, pos = codec.decode_position(row)
            positions[(symbol, side)] = pos
        orders = {o.request.client_order_id: o for o in map(codec.decode_order, state["orders"])}
        fills = [codec.decode_fill(f) for f in state["fills"]]
        funding = FundingBook.from_state(state)
        order_seq = int(state["order_seq"])
        trade_seq = {s: int(v) for s, v in state["trade_seq"].items()}
        self._mode, self._spot_free, self._spot_locked = mode, spot_free, spot_locked
        self._futures, self._leverage, self._margin_modes = futures, leverage, margin_modes
        self._marks, self._positions, self._orders = marks, positions, orders
        self._resting = {cid: o for cid, o in orders.items() if o.is_open}
        self._fills, self._funding = fills, funding
        self._order_seq, self._trade_seq = order_seq, trade_seq

    # --- spot orders --------------------------------------------------------------------
    def _create_spot(self, req: OrderRequest, inst: Instrument) -> OrderState:
        if req.reduce_only:
            raise reject(-1106, "Parameter 'reduceOnly' sent when not required.")
        if req.position_side is not None:
            raise reject(-1106, "Parameter 'positionSide' sent when not required.")
        check_order(req, inst, reference_price=self._reference_price(inst, req))
        fills = self._taker_fills(inst, req)
        limit = _limit_price(req)
        if req.side is Side.BUY:
            need = _cost(fills) if limit is None else req.quantity * limit
            if self._spot_fee_in_quote:
                need += need * self._fees.spot_taker
            have = self._spot_free.get(inst.quote, _ZERO)
        else:
            need, have = req.quantity, self._spot_free.get(inst.base, _ZERO)
        if need > have:
            raise InsufficientFunds(_INSUFFICIENT_BALANCE, code=-2010)
        state = self._new_order(req, inst, position_side=None)
        for price, qty in fills:
            self._fill_spot(state, inst, price, qty, maker=False)
        self._settle_status(state)
        if state.is_open:
            asset, amount = self._spot_reserve(state, inst)
            self._move_spot(asset, amount, to_locked=True)
            state.reserved = amount
        return state

    def _fill_spot(
        self, state: OrderState, inst: Instrument, price: Decimal, qty: Decimal, *, maker: bool
    ) -> None:
        rate = self._fees.spot_maker if maker else self._fees.spot_taker
        notional = price * qty
        if state.request.side is Side.BUY and self._spot_fee_in_quote:
            fee, fee_asset = notional * rate, inst.quote
            self._take_spot(inst.quote, notional + fee, state, from_locked=maker)
            self._spot_free[inst.base] = self._spot_free.get(inst.base, _ZERO) + qty
        elif state.request.side is Side.BUY:
            fee, fee_asset = qty * rate, inst.base
            self._take_spot(inst.quote, notional, state, from_locked=maker)
            self._spot_free[inst.base] = self._spot_free.get(inst.base, _ZERO) + qty - fee
        else:
            fee, fee_asset = notional * rate, inst.quote
            self._take_spot(inst.base, qty, state, from_locked=maker)
            self._spot_free[inst.quote] = self._spot_free.get(inst.quote, _ZERO) + notional - fee
        self._record_fill(state, inst, price, qty, fee, fee_asset, maker=maker, realized=None)

    def _take_spot(
        self, asset: str, amount: Decimal, state: OrderState, *, from_locked: bool
    ) -> None:
        if from_locked:
            self._spot_locked[asset] = self._spot_locked.get(asset, _ZERO) - amount
            state.reserved -= amount
        else:
            self._spot_free[asset] = self._spot_free.get(asset, _ZERO) - amount

    def _spot_reserve(self, state: OrderState, inst: Instrument) -> tuple[str, Decimal]:
        if state.request.side is Side.BUY:
            return inst.quote, state.remaining * (state.request.price or _ZERO)
        return inst.base, state.remaining

    def _move_spot(self, asset: str, amount: Decimal, *, to_locked: bool) -> None:
        sign = 1 if to_locked else -1
        self._spot_free[asset] = self._spot_free.get(asset, _ZERO) - sign * amount
        self._spot_locked[asset] = self._spot_locked.get(asset, _ZERO) + sign * amount

    # --- futures orders -----------------------------------------------------------------
    def _create_futures(self, req: OrderRequest, inst: Instrument) -> OrderState:
        side_key, closing = self._position_side_for(req)
        pos = self._positions.get((req.symbol, side_key))
        current = pos.size if pos else _ZERO
        signed = req.quantity if req.side is Side.BUY else -req.quantity
        reducing = _reducible(current, signed)
        if req.reduce_only and (reducing == 0 or req.quantity > abs(current)):
            raise ReduceOnlyRejected("ReduceOnly Order is rejected.", code=-2022)
        if closing and req.quantity > abs(current):
            raise ReduceOnlyRejected("ReduceOnly Order is rejected.", code=-2022)
        check_order(
            req,
            inst,
            reference_price=self._reference_price(inst, req),
            waive_notional=req.reduce_only or closing,
        )
        fills = self._taker_fills(inst, req)
        opening = _ZERO if (req.reduce_only or closing) else req.quantity - reducing
        if opening > 0:
            price = vwap(fills) or self._reference_price(inst, req)
            if price is not None:
                self._check_margin(req, opening, reducing, price, pos)
        state = self._new_order(req, inst, position_side=side_key)
        for price, qty in fills:
            self._fill_futures(state, inst, price, qty, maker=False)
        self._settle_status(state)
        if fills:
            self._record_exposure(req.symbol)
        return state

    def _position_side_for(self, req: OrderRequest) -> tuple[PositionSide, bool]:
        """Return the position an order acts on and whether it closes (hedge mode)."""
        mismatch = "Order's position side does not match user's setting."
        if self._mode is PositionMode.ONE_WAY:
            if req.position_side not in (None, PositionSide.BOTH):
                raise PositionSideMismatch(mismatch, code=-4061)
            return PositionSide.BOTH, False
        side = req.position_side
        if side is None or side is PositionSide.BOTH:
            raise PositionSideMismatch(mismatch, code=-4061)
        if req.reduce_only:
            raise ReduceOnlyRejected("Parameter 'reduceOnly' sent when not required.", code=-1106)
        closing = (side is PositionSide.LONG) == (req.side is Side.SELL)
        return side, closing

    def _check_margin(
        self,
        req: OrderRequest,
        opening: Decimal,
        reducing: Decimal,
        price: Decimal,
        pos: PositionState | None,
    ) -> None:
        leverage = self.leverage(req.symbol)
        mark = self._mark(req.symbol, price)
        gap = price - mark if req.side is Side.BUY else mark - price
        required = initial_margin(opening, price, leverage) + opening * max(_ZERO, gap)
        available = self._available()
        if pos is not None and reducing > 0:
            # The reducing part of a flip frees margin before the opening part needs it.
            if self._is_isolated(req.symbol):
                available += pos.margin * reducing / abs(pos.size)
            else:
                available += initial_margin(reducing, mark, leverage)
        if required > available:
            raise InsufficientFunds("Margin is insufficient.", code=-2019)

    def _fill_futures(
        self, state: OrderState, inst: Instrument, price: Decimal, qty: Decimal, *, maker: bool
    ) -> None:
        rate = self._fees.futures_maker if maker else self._fees.futures_taker
        fee = price * qty * rate
        signed = qty if state.request.side is Side.BUY else -qty
        side_key = state.position_side or PositionSide.BOTH
        realized = self._apply_to_position(inst.symbol, side_key, signed, price)
        self._add_futures(realized - fee)
        self._record_fill(
            state, inst, price, qty, fee, MARGIN_ASSET, maker=maker, realized=realized
        )

    def _apply_to_position(
        self, symbol: str, side_key: PositionSide, signed: Decimal, price: Decimal
    ) -> Decimal:
        """Add a signed fill to a position; return the realised PnL."""
        now = self._clock.now()
        key = (symbol, side_key)
        leverage, isolated = self.leverage(symbol), self._is_isolated(symbol)
        pos = self._positions.get(key)
        if pos is None or (pos.size > 0) == (signed > 0):
            if pos is None:
                pos = self._positions[key] = PositionState(_ZERO, price, _ZERO, now)
            new_size = pos.size + signed
            pos.entry = (abs(pos.size) * pos.entry + abs(signed) * price) / abs(new_size)
            pos.size = new_size
            if isolated:
                pos.margin += initial_margin(signed, price, leverage)
            return _ZERO
        closed = min(abs(signed), abs(pos.size))
        realized = closed * (price - pos.entry) * (1 if pos.size > 0 else -1)
        if isolated:
            pos.margin -= pos.margin * closed / abs(pos.size)
        new_size = pos.size + signed
        if new_size == 0:
            del self._positions[key]
        elif (new_size > 0) != (pos.size > 0):
            pos.size, pos.entry, pos.opened_at = new_size, price, now
            pos.margin = initial_margin(new_size, price, leverage) if isolated else _ZERO
        else:
            pos.size = new_size
        return realized

    # --- matching -----------------------------------------------------------------------
    def _taker_fills(self, inst: Instrument, req: OrderRequest) -> list[Level]:
        """Return the immediate fills of an order: the book walked, or the quote."""
        market = req.type is OrderType.MARKET
        quantity = req.quantity
        ratio = self._fill_ratios.get(inst.symbol)
        if market and ratio is not None:
            quantity = floor_to_step(quantity * ratio, inst.step_size)
        if quantity <= 0:
            return []
        limit = _limit_price(req)
        levels = self._levels(inst.symbol, req.side)
        if levels is not None:
            return walk_book(levels, quantity, req.side, limit=limit)
        quote = self._quotes.get(inst.symbol)
        best = None if quote is None else (quote.ask if req.side is Side.BUY else quote.bid)
        if best is None or best <= 0:
            return []
        price = (
            slipped_price(best, req.side, self._slippage_bps, inst.tick_size) if market else best
        )
        return [(price, quantity)] if crosses(price, limit, req.side) else []

    def _levels(self, symbol: str, side: Side) -> list[Level] | None:
        book = self._books.get(symbol)
        if book is None:
            return None
        levels = book.asks if side is Side.BUY else book.bids
        return list(levels[: self._depth_levels]) if levels else None

    def _match_resting(self, symbol: str) -> None:
        """Fill, as maker at their own price, the resting orders the market now crosses."""
        if not self._resting:
            return  # the usual case: market orders only, nothing rests
        inst = self._instruments.get(symbol)
        if inst is None:
            return
        changed = False
        for state in self._open_states():
            req, limit = state.request, _limit_price(state.request)
            if req.symbol != symbol or limit is None:
                continue
            qty = min(state.remaining, self._crossing_liquidity(symbol, req.side, limit, state))
            if inst.is_derivative:
                qty = self._clamp_closing(state, qty)
                changed = changed or not state.is_open
            if qty <= 0:
                continue
            if inst.is_derivative:
                self._fill_futures(state, inst, limit, qty, maker=True)
            else:
                self._fill_spot(state, inst, limit, qty, maker=True)
            self._settle_status(state)
            changed = True
        if changed:
            if inst.is_derivative:
                self._record_exposure(symbol)
            self._touch()

    def _crossing_liquidity(
        self, symbol: str, side: Side, limit: Decimal, state: OrderState
    ) -> Decimal:
        levels = self._levels(symbol, side)
        if levels is not None:
            return liquidity(levels, side, limit)
        quote = self._quotes.get(symbol)
        if quote is None:
            return _ZERO
        best = quote.ask if side is Side.BUY else quote.bid
        return state.remaining if best > 0 and crosses(best, limit, side) else _ZERO

    def _clamp_closing(self, state: OrderState, qty: Decimal) -> Decimal:
        """Limit a resting reduce-only/closing order to the position; expire it when flat."""
        req = state.request
        side_key = state.position_side or PositionSide.BOTH
        closing = side_key is not PositionSide.BOTH and (
            (side_key is PositionSide.LONG) == (req.side is Side.SELL)
        )
        if not (req.reduce_only or closing):
            return qty
        pos = self._positions.get((req.symbol, side_key))
        signed = qty if req.side is Side.BUY else -qty
        reducible = _reducible(pos.size if pos else _ZERO, signed)
        if reducible == 0:
            self._close_order(state, OrderStatus.EXPIRED)
        return reducible

    # --- order bookkeeping --------------------------------------------------------------
    def _new_order(
        self, req: OrderRequest, inst: Instrument, *, position_side: PositionSide | None
    ) -> OrderState:
        now = self._clock.now()
        state = OrderState(
            request=req,
            order_id=self._next_order_id(),
            position_side=position_side,
            status=OrderStatus.NEW,
            created_at=now,
            updated_at=now,
        )
        self._orders[req.client_order_id] = state
        return state

    def _record_fill(
        self,
        state: OrderState,
        inst: Instrument,
        price: Decimal,
        qty: Decimal,
        fee: Decimal,
        fee_asset: str,
        *,
        maker: bool,
        realized: Decimal | None,
    ) -> None:
        now = self._clock.now()
        state.filled += qty
        state.cost += price * qty
        state.fee += fee
        state.fee_asset = fee_asset
        state.updated_at = now
        self._fills.append(
            Fill(
                trade_id=self._next_id(self._trade_seq, inst.symbol),
                symbol=inst.symbol,
                exchange_order_id=state.order_id,
                side=state.request.side,
                price=price,
                quantity=qty,
                fee=fee,
                fee_asset=fee_asset,
                timestamp=now,
                is_maker=maker,
                client_order_id=state.request.client_order_id,
                realized_pnl=realized,
            )
        )

    def _settle_status(self, state: OrderState) -> None:
        if state.filled >= state.request.quantity:
            state.status = OrderStatus.FILLED
        elif state.request.type is OrderType.MARKET:
            state.status = OrderStatus.EXPIRED
        elif state.filled > 0:
            state.status = OrderStatus.PARTIALLY_FILLED
        state.updated_at = self._clock.now()
        self._index(state)

    def _close_order(self, state: OrderState, status: OrderStatus) -> None:
        """End a resting order, releasing the spot funds it locked."""
        if state.reserved > 0:
            inst = self._instruments.get(state.request.symbol)
            if inst is not None and not inst.is_derivative:
                asset, _ = self._spot_reserve(state, inst)
                self._move_spot(asset, state.reserved, to_locked=False)
        state.reserved = _ZERO
        state.status = status
        state.updated_at = self._clock.now()
        self._index(state)

    def _index(self, state: OrderState) -> None:
        cid = state.request.client_order_id
        if state.is_open:
            self._resting[cid] = state
        else:
            self._resting.pop(cid, None)

    def _open_states(self) -> list[OrderState]:
        return list(self._resting.values())

    def _is_futures(self, state: OrderState) -> bool:
        inst = self._instruments.get(state.request.symbol)
        return inst is not None and inst.is_derivative

    def _next_order_id(self) -> str:
        # One counter for the account: ids increase per symbol and never repeat across them.
        self._order_seq += 1
        return str(self._order_seq)

    def _next_id(self, counters: dict[str, int], symbol: str) -> str:
        counters[symbol] = counters.get(symbol, 0) + 1
        return str(counters[symbol])

    # --- margin and liquidation ---------------------------------------------------------
    def _available(self) -> Decimal:
        return self.futures_account().available_balance

    def _open_order_margin(self) -> Decimal:
        total = _ZERO
        for state in self._open_states():
            req = state.request
            limit = _limit_price(req)
            if not self._is_futures(state) or req.reduce_only or limit is None:
                continue
            side = state.position_side
            if side is not PositionSide.BOTH and (side is PositionSide.LONG) == (
                req.side is Side.SELL
            ):
                continue  # a hedge-mode closing order needs no margin
            total += initial_margin(state.remaining, limit, self.leverage(req.symbol))
        return total

    def _position_view(self, symbol: str, side: PositionSide, pos: PositionState) -> Position:
        mark = self._mark(symbol, pos.entry)
        upnl = unrealized_pnl(pos.size, pos.entry, mark)
        maint = maintenance_margin(pos.size, mark, self._mmr)
        if self._is_isolated(symbol):
            liq = liquidation_price([(pos.size, pos.entry)], collateral=pos.margin, rate=self._mmr)
            equity = pos.margin + upnl
        else:
            collateral, equity, maint = self._cross_collateral(symbol)
            legs = [(p.size, p.entry) for (s, _), p in self._positions.items() if s == symbol]
            liq = liquidation_price(legs, collateral=collateral, rate=self._mmr)
        return Position(
            symbol=symbol,
            position_side=side,
            size=abs(pos.size),
            is_short=pos.size < 0,
            entry_price=pos.entry,
            mark_price=mark,
            liquidation_price=liq,
            unrealized_pnl=upnl,
            leverage=self.leverage(symbol),
            margin_mode=self.margin_mode(symbol),
            margin_ratio=maint / equity if equity > 0 else None,
            notional=abs(pos.size) * mark,
        )

    def _cross_collateral(self, symbol: str) -> tuple[Decimal, Decimal, Decimal]:
        """Return (collateral backing `symbol`, cross margin balance, cross maintenance)."""
        wallet = self._futures.get(MARGIN_ASSET, _ZERO)
        others = equity_pnl = maint = _ZERO
        for (s, _), pos in self._positions.items():
            if self._is_isolated(s):
                wallet -= pos.margin
                continue
            mark = self._mark(s, pos.entry)
            upnl = unrealized_pnl(pos.size, pos.entry, mark)
            mm = maintenance_margin(pos.size, mark, self._mmr)
            equity_pnl += upnl
            maint += mm
            if s != symbol:
                others += upnl - mm
        return wallet + others, wallet + equity_pnl, maint

    def _check_liquidations(self) -> None:
        for key, pos in list(self._positions.items()):
            if not self._is_isolated(key[0]):
                continue
            mark = self._mark(key[0], pos.entry)
            equity = pos.margin + unrealized_pnl(pos.size, pos.entry, mark)
            if equity <= maintenance_margin(pos.size, mark, self._mmr):
                self._liquidate([key], equity)
        cross = [k for k in self._positions if not self._is_isolated(k[0])]
        if cross:
            _, equity, maint = self._cross_collateral(cross[0][0])
            if equity <= maint:
                self._liquidate(cross, equity)

    def _liquidate(self, keys: Sequence[PositionKey], equity: Decimal) -> None:
        """Close `keys` at the mark; the remaining `equity` (>= 0) goes to the insurance fund."""
        symbols = sorted({symbol for symbol, _ in keys})
        for state in self._open_states():
            if state.request.symbol in symbols and self._is_futures(state):
                self._close_order(state, OrderStatus.CANCELED)
        for i, key in enumerate(keys):
            symbol, side_key = key
            pos = self._positions.pop(key)
            mark = self._mark(symbol, pos.entry)
            inst = self._instruments.get(symbol)
            exchange_symbol = inst.exchange_symbol if inst else symbol.replace("/", "")
            order_id = self._next_order_id()
            request = OrderRequest(
                symbol=symbol,
                side=Side.SELL if pos.size > 0 else Side.BUY,
                type=OrderType.MARKET,
                quantity=abs(pos.size),
                client_order_id=f"autoclose-{exchange_symbol}-{order_id}",
                reduce_only=side_key is PositionSide.BOTH,
                position_side=side_key,
            )
            now = self._clock.now()
            state = OrderState(request, order_id, side_key, OrderStatus.FILLED, now, now)
            self._orders[request.client_order_id] = state
            realized = unrealized_pnl(pos.size, pos.entry, mark)
            clearance = max(_ZERO, equity) if i == len(keys) - 1 else _ZERO
            self._add_futures(realized - clearance)
            if inst is not None:
                self._record_fill(
                    state,
                    inst,
                    mark,
                    abs(pos.size),
                    clearance,
                    MARGIN_ASSET,
                    maker=False,
                    realized=realized,
                )
            logger.warning(
                "simulated liquidation of %s %s %s at mark %s (realised %s)",
                symbol,
                side_key.value,
                pos.size,
                mark,
                realized,
            )
        if equity < 0:
            self._add_futures(-equity)  # the insurance fund absorbs the deficit
        for symbol in symbols:
            self._record_exposure(symbol)
        self._touch()

    # --- funding ------------------------------------------------------------------------
    def _record_exposure(self, symbol: str) -> None:
        inst = self._instruments.get(symbol)
        if inst is not None and inst.is_dated:
            return  # dated futures pay no funding; they settle at delivery
        sizes: Sizes = {
            side: p.size for (s, side), p in sorted(self._positions.items()) if s == symbol
        }
        self._funding.record_exposure(symbol, sizes, self._clock.now())

    # --- small helpers ------------------------------------------------------------------
    def _wallet(self, name: str) -> dict[str, Decimal]:
        if name == SPOT_WALLET:
            return self._spot_free
        if name == FUTURES_WALLET:
            return self._futures
        raise ValueError(f"unknown wallet {name!r}: use 'spot' or 'futures'")

    def _add_futures(self, amount: Decimal) -> None:
        self._futures[MARGIN_ASSET] = self._futures.get(MARGIN_ASSET, _ZERO) + amount

    def _derivative(self, symbol: str) -> Instrument:
        inst = self._instruments.get(symbol)
        if inst is None or not inst.is_derivative:
            raise reject(-1121, "Invalid symbol.")
        return inst

    def _is_isolated(self, symbol: str) -> bool:
        return self.margin_mode(symbol) is MarginMode.ISOLATED

    def _mark(self, symbol: str, fallback: Decimal) -> Decimal:
        return self._marks.get(symbol) or self._mid(symbol) or fallback

    def _mid(self, symbol: str) -> Decimal | None:
        quote = self._quotes.get(symbol)
        if quote is None or quote.bid <= 0 or quote.ask <= 0:
            return None
        return quote.mid

    def _reference_price(self, inst: Instrument, req: OrderRequest) -> Decimal | None:
        """Price the notional filter and margin check use for an order."""
        if req.type is OrderType.LIMIT:
            return req.price
        if inst.is_derivative and inst.symbol in self._marks:
            return self._marks[inst.symbol]
        return self._mid(inst.symbol)

    def _touch(self) -> None:
        self._revision += 1


def _reducible(current: Decimal, signed: Decimal) -> Decimal:
    """Return how much of a signed order quantity reduces the signed position `current`."""
    if current == 0 or (current > 0) == (signed > 0):
        return _ZERO
    return min(abs(current), abs(signed))


def _limit_price(req: OrderRequest) -> Decimal | None:
    """Return the limit price of a limit order (a market order's price is ignored)."""
    return req.price if req.type is OrderType.LIMIT else None


def _cost(fills: Sequence[Level]) -> Decimal:
    return sum((p * q for p, q in fills), _ZERO)


def _book_agrees(book: OrderBook, quote: Quote) -> bool:
    if not book.bids or not book.asks:
        return False
    return book.bids[0][0] == quote.bid and book.asks[0][0] == quote.ask
