"""Instruments: the trading rules of one market, and spot/perpetual pairs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum


class MarketKind(StrEnum):
    SPOT = "spot"
    PERPETUAL = "perpetual"
    DATED_FUTURE = "dated_future"


@dataclass(frozen=True, slots=True)
class Instrument:
    """One market with its filters. `symbol` is ccxt's unified symbol.

    Spot `BTC/USDT`, USDⓈ-M perpetual `BTC/USDT:USDT`, dated `BTC/USDT:USDT-251226`.
    """

    symbol: str
    exchange_symbol: str
    kind: MarketKind
    base: str
    quote: str
    tick_size: Decimal
    step_size: Decimal
    min_qty: Decimal
    min_notional: Decimal
    max_qty: Decimal | None = None
    market_step_size: Decimal | None = None
    market_min_qty: Decimal | None = None
    market_max_qty: Decimal | None = None
    contract_size: Decimal = Decimal(1)
    settle: str | None = None
    expiry: datetime | None = None
    listed_at: datetime | None = None
    active: bool = True

    @property
    def is_derivative(self) -> bool:
        return self.kind is not MarketKind.SPOT


@dataclass(frozen=True, slots=True)
class Pair:
    """A base asset tradable on spot and as a USDⓈ-M perpetual (or dated future).

    `key` is the spot symbol (`BTC/USDT`); it names the pair everywhere in the bot.
    """

    spot: Instrument
    perp: Instrument

    @property
    def key(self) -> str:
        return self.spot.symbol

    @property
    def base(self) -> str:
        return self.spot.base
