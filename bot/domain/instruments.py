"""Instruments: the trading rules of one market, and spot/futures pairs."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
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


def is_coinm_perp_symbol(symbol: str) -> bool:
    """Tell whether a unified symbol names a COIN-M perpetual (`BTC/USD:BTC`: settled in
    its base coin, no delivery date)."""
    market, _, settle = symbol.partition(":")
    return bool(settle) and settle == market.split("/")[0] and not is_dated_symbol(symbol)


def keyed_by_future(symbol: str) -> bool:
    """Whether a hedge on this future finds its pair by the future's symbol rather than by
    the spot symbol: dated futures and COIN-M perpetuals (an asset's USDⓈ-M perpetual owns
    the spot key)."""
    return is_dated_symbol(symbol) or is_coinm_perp_symbol(symbol)


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
    # The exchange's word (TRADING, BREAK, SETTLING, CLOSE, ...): `active` is what compares.
    status: str | None = field(default=None, compare=False)
    delist_at: datetime | None = None  # a perpetual given a delivery date: delisted then

    def not_tradable(self) -> str | None:
        """Why no new position may be opened here (None: it trades normally)."""
        if not self.active:
            return f"{self.symbol} status {self.status or 'not trading'}"
        if self.delist_at is not None:
            return f"{self.symbol} is delisted at {self.delist_at.isoformat()}"
        return None

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


def untradable_pairs(instruments: Mapping[str, Instrument]) -> dict[str, str]:
    """Spot symbol -> why no new position: spot or its USDⓈ-M perpetual not TRADING, or the
    perpetual given a delisting date. Pairs that trade normally are left out."""
    out: dict[str, str] = {}
    for inst in instruments.values():
        if inst.kind is not MarketKind.SPOT:
            continue
        perp = instruments.get(f"{inst.base}/{inst.quote}:{inst.quote}")
        if perp is None or perp.kind is not MarketKind.PERPETUAL:
            continue
        reason = inst.not_tradable() or perp.not_tradable()
        if reason is not None:
            out[inst.symbol] = reason
    return out


def pairs_of(instruments: Mapping[str, Instrument], spot_symbols: Iterable[str]) -> list[Pair]:
    """The spot + USDⓈ-M perpetual pair of each of `spot_symbols` that has both."""
    out = []
    for symbol in spot_symbols:
        spot = instruments.get(symbol)
        perp = instruments.get(f"{spot.base}/{spot.quote}:{spot.quote}") if spot else None
        if spot is not None and perp is not None:
            out.append(Pair(spot=spot, perp=perp))
    return out


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


def coinm_perp_pairs(instruments: Mapping[str, Instrument] | Iterable[Instrument]) -> list[Pair]:
    """Return spot + COIN-M perpetual pairs of active instruments (`BTC/USD:BTC` pairs with
    the coin bought for USDT, `BTC/USDT`), by spot symbol."""
    items = list(instruments.values() if isinstance(instruments, Mapping) else instruments)
    spots = {i.symbol: i for i in items if i.kind is MarketKind.SPOT and i.active}
    out = [
        Pair(spot=spots[f"{i.base}/USDT"], perp=i)
        for i in items
        if i.kind is MarketKind.PERPETUAL
        and i.is_inverse
        and i.active
        and f"{i.base}/USDT" in spots
    ]
    out.sort(key=lambda p: p.key)
    return out


def pair_of(pairs: Mapping[str, Pair], pair_key: str, future_symbol: str) -> Pair | None:
    """Return the spot + future pair a hedge trades, from a mapping of known pairs.

    USDⓈ-M perpetual pairs are keyed by their spot symbol, dated and COIN-M perpetual ones by
    their future's symbol (`BTC/USDT:USDT-250328`, `BTC/USD:BTC`), so every kind of hedge on
    one asset resolves to its own leg.
    """
    if keyed_by_future(future_symbol):
        return pairs.get(future_symbol)
    return pairs.get(pair_key)
