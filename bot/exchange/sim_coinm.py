"""The simulated COIN-M (dapi) account: inverse contracts margined and settled in the coin.

The same rules as `sim_futures` (its own position mode: one-way, or hedge with positionSide
LONG/SHORT; reduceOnly -2022 / -1106; -4061; -4046/-4048 margin type; -4028 leverage), with
inverse arithmetic: a quantity is whole contracts of `contract_size` USD; a position's entry
is the contract-weighted harmonic mean of its fills; a fill's fee is
contracts × size / price × rate **in the coin**; realised P&L of closing c contracts is
c × size × (1/entry − 1/exit) for a long (the opposite for a short), in the coin; initial
margin is contracts × size / price / leverage in the coin. -2019 "Margin is insufficient."
when the coin wallet (plus cross P&L, less cross initial margin and isolated margins) cannot
carry the opening part of an order. Funding on a COIN-M perpetual is paid in the coin
(size × contract size / mark × rate); a dated contract is delivered at its delivery price.

Liquidation follows Binance's inverse rules (`sim_coinm_liquidation`: first maintenance
tier); a position shows its liquidation price. Not modelled here: open-order margin of
resting limit orders, maintenance tiers beyond the first (the maintenance margin shown is
`maintenance_rate` of the position's coin value).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from bot.domain import (
    FundingPayment,
    FuturesAccount,
    Instrument,
    MarginMode,
    OrderRequest,
    OrderStatus,
    Position,
    PositionMode,
    PositionSide,
)
from bot.domain.account import Balance
from bot.errors import InsufficientFunds
from bot.exchange import sim_state as codec
from bot.exchange.sim_coinm_liquidation import check_coinm_liquidations, liquidation_price_of
from bot.exchange.sim_filters import reject
from bot.exchange.sim_funding import FundingBook
from bot.exchange.sim_futures import MAX_LEVERAGE, PositionKey, SimFuturesAccount
from bot.exchange.sim_state import OrderState, PositionState

_ZERO = Decimal(0)
COIN_STEP = Decimal("0.00000001")  # Binance books coin amounts (fees, P&L) to 8 decimals


def to_coin(amount: Decimal) -> Decimal:
    """Round a coin amount to Binance's 8 decimals."""
    return amount.quantize(COIN_STEP)


class SimCoinmAccount(SimFuturesAccount):
    """The COIN-M side of one simulated account: one wallet per coin, contracts as sizes."""

    # --- arithmetic ---------------------------------------------------------------------
    def _size(self, symbol: str) -> Decimal:
        return self.derivative(symbol).contract_size

    def _margin_asset(self, symbol: str) -> str:
        inst = self.derivative(symbol)
        return inst.settle or inst.base

    def _coin(self, contracts: Decimal, symbol: str, price: Decimal) -> Decimal:
        """The coin value of `contracts` (absolute) at `price`."""
        return abs(contracts) * self._size(symbol) / price

    def unrealized(self, symbol: str, pos: PositionState, mark: Decimal) -> Decimal:
        """A position's P&L in the coin at `mark`: size × contract × (1/entry − 1/mark)."""
        return pos.size * self._size(symbol) * (1 / pos.entry - 1 / mark)

    # --- wallet -------------------------------------------------------------------------
    def available_in(self, asset: str) -> Decimal:
        """Return the `asset` the COIN-M wallet may still commit or transfer out."""
        available = self.wallet.get(asset, _ZERO)
        for (symbol, _), pos in self.positions.items():
            if self._margin_asset(symbol) != asset:
                continue
            if self.is_isolated(symbol):
                available -= pos.margin
                continue
            mark = self.market.mark(symbol, pos.entry)
            available += self.unrealized(symbol, pos, mark)
            available -= self._coin(pos.size, symbol, mark) / self.leverage(symbol)
        return available

    def add_coin(self, asset: str, amount: Decimal) -> None:
        """Add a signed amount of `asset` to the COIN-M wallet."""
        self.wallet[asset] = self.wallet.get(asset, _ZERO) + amount

    def set_leverage(self, symbol: str, leverage: int) -> None:
        """Set the leverage of one contract (1..125, else -4028; -2028 short of margin)."""
        self.derivative(symbol)
        if not 1 <= leverage <= MAX_LEVERAGE:
            raise reject(-4028, f"Leverage {leverage} is not valid")
        asset = self._margin_asset(symbol)
        before, old = self.available_in(asset), self.leverage(symbol)
        self.leverages[symbol] = leverage
        after = self.available_in(asset)
        if after < 0 and after < before:
            self.leverages[symbol] = old
            raise reject(-2028, "Leverage is smaller than permitted: insufficient margin balance.")

    # --- orders -------------------------------------------------------------------------
    def _check_margin(
        self,
        req: OrderRequest,
        opening: Decimal,
        reducing: Decimal,
        price: Decimal,
        pos: PositionState | None,
    ) -> None:
        leverage = self.leverage(req.symbol)
        required = self._coin(opening, req.symbol, price) / leverage
        available = self.available_in(self._margin_asset(req.symbol))
        if pos is not None and reducing > 0:
            if self.is_isolated(req.symbol):
                available += pos.margin * reducing / abs(pos.size)
            else:
                mark = self.market.mark(req.symbol, price)
                available += self._coin(reducing, req.symbol, mark) / leverage
        if required > available:
            raise InsufficientFunds("Margin is insufficient.", code=-2019)

    def fill(
        self, state: OrderState, inst: Instrument, price: Decimal, qty: Decimal, *, maker: bool
    ) -> None:
        """Apply one fill to its position and the coin wallet (fee and P&L in the coin)."""
        rate = self._fees.rates.futures_maker if maker else self._fees.rates.futures_taker
        fee = to_coin(self._coin(qty, inst.symbol, price) * rate)
        signed = qty if state.request.side.value == "buy" else -qty
        side_key = state.position_side or PositionSide.BOTH
        realized = self.apply_to_position(inst.symbol, side_key, signed, price)
        asset = self._margin_asset(inst.symbol)
        self.add_coin(asset, realized - fee)
        self.ledger.record_fill(
            state, inst.symbol, price, qty, fee, asset, maker=maker, realized=realized
        )

    def _averaged_entry(
        self, pos: PositionState, signed: Decimal, price: Decimal, new_size: Decimal
    ) -> Decimal:
        """Inverse contracts average their entry harmonically (by coin value)."""
        if pos.size == 0:
            return pos.entry
        return abs(new_size) / (abs(pos.size) / pos.entry + abs(signed) / price)

    def _position_margin(
        self, symbol: str, signed: Decimal, price: Decimal, leverage: int
    ) -> Decimal:
        """Isolated margin in the coin: the contracts' coin value over the leverage."""
        return self._coin(signed, symbol, price) / leverage

    def _realized_pnl(
        self, symbol: str, pos: PositionState, closed: Decimal, price: Decimal
    ) -> Decimal:
        """Inverse P&L in the coin: contracts × size × (1/entry − 1/exit)."""
        direction = 1 if pos.size > 0 else -1
        return to_coin(closed * self._size(symbol) * (1 / pos.entry - 1 / price) * direction)

    # --- funding and delivery -----------------------------------------------------------
    def settle_funding(
        self, symbol: str, when: datetime, rate: Decimal, mark: Decimal
    ) -> FundingPayment | None:
        """Apply one funding settlement of a COIN-M perpetual, paid in the coin."""
        asset = self._margin_asset(symbol)
        if self.funding.is_settled(symbol, when):
            self.funding.settle(symbol, when, rate, mark)
            return None
        payment = self.funding.settle(
            symbol,
            when,
            rate,
            mark,
            asset=asset,
            unit_value=self._size(symbol) / mark,
            quantum=COIN_STEP,
        )
        self.touch()
        if payment is None:
            return None
        self.add_coin(asset, payment.amount)
        for (s, _), pos in self.positions.items():
            if s == symbol and self.is_isolated(symbol) and pos.opened_at <= when:
                pos.margin += payment.amount
        self.check_liquidations()
        return payment

    def check_liquidations(self) -> None:
        """Liquidate what the marks have pushed to its maintenance margin."""
        check_coinm_liquidations(self)

    def deliver(self, symbol: str, price: Decimal) -> Decimal:
        """Close every position on a COIN-M quarterly at `price`; P&L (coin) to the wallet."""
        inst = self.derivative(symbol)
        if not inst.is_dated:
            raise reject(-4108, "Symbol is not a delivery contract.")
        realized = _ZERO
        for (sym, side), pos in sorted(self.positions.items()):
            if sym == symbol:
                realized += self.apply_to_position(symbol, side, -pos.size, price)
        for state in [o for o in self.ledger.open_states() if o.request.symbol == symbol]:
            self.ledger.finish(state, OrderStatus.CANCELED)
        self.add_coin(self._margin_asset(symbol), realized)
        return realized

    # --- views --------------------------------------------------------------------------
    def account_view(self, asset: str) -> FuturesAccount:
        """Return the COIN-M wallet of one coin, every figure in that coin."""
        wallet = self.wallet.get(asset, _ZERO)
        pnl = maint = initial = _ZERO
        for (symbol, _), pos in self.positions.items():
            if self._margin_asset(symbol) != asset:
                continue
            mark = self.market.mark(symbol, pos.entry)
            pnl += self.unrealized(symbol, pos, mark)
            maint += self._coin(pos.size, symbol, mark) * self.mmr
            if self.is_isolated(symbol):
                initial += pos.margin
            else:
                initial += self._coin(pos.size, symbol, mark) / self.leverage(symbol)
        available = self.available_in(asset)
        free = max(_ZERO, min(available, wallet))
        return FuturesAccount(
            wallet_balance=wallet,
            unrealized_pnl=pnl,
            margin_balance=wallet + pnl,
            available_balance=available,
            maintenance_margin=maint,
            initial_margin=initial,
            assets={asset: Balance(asset, free, wallet - free)},
        )

    def position_views(self) -> list[Position]:
        """Return the non-zero COIN-M positions (sizes in contracts, P&L in the coin)."""
        out = []
        for (symbol, side), pos in sorted(self.positions.items()):
            mark = self.market.mark(symbol, pos.entry)
            upnl = self.unrealized(symbol, pos, mark)
            coin = self._coin(pos.size, symbol, mark)
            margin = pos.margin if self.is_isolated(symbol) else coin / self.leverage(symbol)
            out.append(
                Position(
                    symbol=symbol,
                    position_side=side,
                    size=abs(pos.size),
                    is_short=pos.size < 0,
                    entry_price=pos.entry,
                    mark_price=mark,
                    liquidation_price=liquidation_price_of(self, (symbol, side)),
                    unrealized_pnl=upnl,
                    leverage=self.leverage(symbol),
                    margin_mode=self.margin_mode(symbol),
                    margin_ratio=coin * self.mmr / margin if margin > 0 else None,
                    notional=abs(pos.size) * self._size(symbol),
                )
            )
        return out

    # --- persistence --------------------------------------------------------------------
    @property
    def in_use(self) -> bool:
        """Whether anything was set or held here (an unused COIN-M side is not saved)."""
        return bool(self.wallet or self.positions or self.leverages or self.margin_modes) or bool(
            self.funding.due()
        )

    def to_state(self) -> dict[str, Any]:
        """Return this side of the account as JSON data (the paper state's `coinm` key)."""
        enc = codec.enc_dec
        return {
            "position_mode": self.mode.value,
            "wallet": {a: enc(v) for a, v in sorted(self.wallet.items())},
            "leverage": dict(sorted(self.leverages.items())),
            "margin_modes": {s: m.value for s, m in sorted(self.margin_modes.items())},
            "positions": [
                codec.encode_position(s, side, p) for (s, side), p in sorted(self.positions.items())
            ],
            "funding": self.funding.to_state(),
        }

    def restore(self, state: CoinmState) -> None:
        """Take over a decoded state."""
        self.mode, self.wallet, self.leverages = state.mode, state.wallet, state.leverages
        self.margin_modes, self.positions, self.funding = (
            state.margin_modes,
            state.positions,
            state.funding,
        )


@dataclass(slots=True)
class CoinmState:
    """A decoded COIN-M side, ready to be restored."""

    mode: PositionMode
    wallet: dict[str, Decimal] = field(default_factory=dict)
    leverages: dict[str, int] = field(default_factory=dict)
    margin_modes: dict[str, MarginMode] = field(default_factory=dict)
    positions: dict[PositionKey, PositionState] = field(default_factory=dict)
    funding: FundingBook = field(default_factory=FundingBook)


def coinm_state(data: Mapping[str, Any] | None, mode: PositionMode) -> CoinmState:
    """Decode the `coinm` key of a paper state (absent: an empty side in `mode`)."""
    if data is None:
        return CoinmState(mode)
    positions = {}
    for row in data["positions"]:
        symbol, side, pos = codec.decode_position(row)
        positions[(symbol, side)] = pos
    return CoinmState(
        mode=PositionMode(data["position_mode"]),
        wallet={a: codec.dec(v) for a, v in data["wallet"].items()},
        leverages={s: int(v) for s, v in data["leverage"].items()},
        margin_modes={s: MarginMode(m) for s, m in data["margin_modes"].items()},
        positions=positions,
        funding=FundingBook.from_state(data["funding"]),
    )
