"""Instruments: the trading rules of one market, and spot/futures pairs."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum


class MarketKind(StrEnum):
    SPOT = "spot"
    PERPETUAL = "perpetual"
    DATED_FUTURE = "dated_future"


_DATED_SUFFIX = re.compile(r"-\d{6}$")


def is_dated_symbol(symbol: str) -> bool:
    """Tell whether a unified symbol names a dated future (`BTC/USDT:USDT-250328`)."""
    return bool(_DATED_SUFFIX.search(symbol))


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
    contract_type: str | None = None  # Binance's PERPETUAL, CURRENT_QUARTER, NEXT_QUARTER

    @property
    def is_derivative(self) -> bool:
        return self.kind is not MarketKind.SPOT

    @property
    def is_dated(self) -> bool:
        """Whether this is a future with a delivery time (settled by the exchange then)."""
        return self.kind is MarketKind.DATED_FUTURE

    @property
    def is_inverse(self) -> bool:
        """COIN-M: margined and settled in the base coin, quantities in contracts of
        `contract_size` quote (USD)."""
        return self.is_derivative and self.settle is not None and self.settle == self.base


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

    @property
    def future(self) -> Instrument:
        """The short leg: a perpetual or a dated future (the field keeps its old name)."""
        return self.perp

    @property
    def is_dated(self) -> bool:
        return self.perp.is_dated


def dated_pairs(instruments: Mapping[str, Instrument] | Iterable[Instrument]) -> list[Pair]:
    """Return spot + dated-future pairs of active instruments, by spot symbol then expiry.

    A dated future `BTC/USDT:USDT-250328` pairs with the spot market `BTC/USDT`, a COIN-M
    one `BTC/USD:BTC-250328` with `BTC/USDT`.
    """
    items = list(instruments.values() if isinstance(instruments, Mapping) else instruments)
    spots = {i.symbol: i for i in items if i.kind is MarketKind.SPOT and i.active}
    out: list[Pair] = []
    for inst in items:
        if not inst.is_dated or not inst.active or inst.expiry is None:
            continue
        # A COIN-M contract (BTC/USD:BTC-250328) pairs with the coin bought for USDT.
        spot = spots.get(f"{inst.base}/{'USDT' if inst.is_inverse else inst.quote}")
        if spot is not None:
            out.append(Pair(spot=spot, perp=inst))
    out.sort(key=lambda p: (p.key, p.perp.symbol))  # YYMMDD suffixes sort by delivery
    return out


def pair_of(pairs: Mapping[str, Pair], pair_key: str, future_symbol: str) -> Pair | None:
    """Return the spot + future pair a hedge trades, from a mapping of known pairs.

    Perpetual pairs are keyed by their spot symbol, dated ones by their future's symbol
    (`BTC/USDT:USDT-250328`), so both kinds of hedge on one asset resolve to their own leg.
    """
    if is_dated_symbol(future_symbol):
        return pairs.get(future_symbol)
    return pairs.get(pair_key)
