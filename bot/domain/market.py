"""Market data value objects: quotes, books, funding, and the market-wide snapshot."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from bot.domain.instruments import Instrument, Pair
from bot.domain.params import UniverseParams


@dataclass(frozen=True, slots=True)
class Quote:
    """Best bid and ask of one symbol."""

    symbol: str
    bid: Decimal
    ask: Decimal
    bid_qty: Decimal
    ask_qty: Decimal
    timestamp: datetime

    @property
    def mid(self) -> Decimal:
        return (self.bid + self.ask) / 2


@dataclass(frozen=True, slots=True)
class OrderBook:
    """Depth of one symbol: bids best (highest) first, asks best (lowest) first."""

    symbol: str
    bids: tuple[tuple[Decimal, Decimal], ...]
    asks: tuple[tuple[Decimal, Decimal], ...]
    timestamp: datetime


@dataclass(frozen=True, slots=True)
class FundingInfo:
    """The funding state of one perpetual, from premiumIndex (+ fundingInfo for interval/caps).

    `funding_rate` is Binance's `lastFundingRate`: the real-time estimate of the rate that
    settles at `next_funding_time`. `interval_hours` is the symbol's own interval (8 when
    Binance's fundingInfo does not list the symbol).
    """

    symbol: str
    funding_rate: Decimal
    next_funding_time: datetime
    interval_hours: int
    mark_price: Decimal
    index_price: Decimal
    interest_rate: Decimal
    timestamp: datetime
    funding_cap: Decimal | None = None
    funding_floor: Decimal | None = None


@dataclass(frozen=True, slots=True)
class SettledFunding:
    """A funding rate that settled at `funding_time` (history rows of /fapi/v1/fundingRate)."""

    symbol: str
    funding_time: datetime
    rate: Decimal
    mark_price: Decimal | None = None


@dataclass(frozen=True, slots=True)
class SelectedUniverse:
    """The pairs selected for evaluation from one snapshot, and the parameters used."""

    params: UniverseParams
    pairs: tuple[Pair, ...]


@dataclass(frozen=True, slots=True)
class MarketSnapshot:
    """Everything a strategy may look at, taken at `taken_at`. Keys are unified symbols.

    `funding` is keyed by perpetual symbol (COIN-M perpetuals too, with `coinm_perp_pairs`),
    `perp_quotes` by futures symbol (perpetuals, and the dated futures of `dated_pairs` when
    those are polled), `spot_quotes` by spot symbol,
    `volumes_24h` (quote volume) by either, `funding_history` by perpetual symbol (oldest
    first), `books` holds depth for the symbols where it was fetched.
    """

    taken_at: datetime
    pairs: Sequence[Pair]
    funding: Mapping[str, FundingInfo]
    spot_quotes: Mapping[str, Quote]
    perp_quotes: Mapping[str, Quote]
    volumes_24h: Mapping[str, Decimal] = field(default_factory=dict)
    funding_history: Mapping[str, Sequence[SettledFunding]] = field(default_factory=dict)
    books: Mapping[str, OrderBook] = field(default_factory=dict)
    dated_pairs: Sequence[Pair] = ()  # spot + dated future, when dated carries are polled
    coinm_perp_pairs: Sequence[Pair] = ()  # spot + COIN-M perpetual, with "coinm"
    untradable: Mapping[str, str] = field(default_factory=dict)
    """Pair key -> why it takes no new position (a leg not TRADING, a delisting announced)."""
    universe: SelectedUniverse | None = None
    """The universe, selected once by the market data that took the snapshot; the
    observation store and the strategy read it from here (`select_universe`)."""

    @property
    def instruments(self) -> dict[str, Instrument]:
        out: dict[str, Instrument] = {}
        for pair in self.pairs:
            out[pair.spot.symbol] = pair.spot
            out[pair.perp.symbol] = pair.perp
        for pair in (*self.dated_pairs, *self.coinm_perp_pairs):
            out.setdefault(pair.spot.symbol, pair.spot)
            out[pair.perp.symbol] = pair.perp
        return out

    def pair(self, key: str) -> Pair | None:
        """Return the pair whose key (spot symbol) is `key`."""
        for p in self.pairs:
            if p.key == key:
                return p
        return None
