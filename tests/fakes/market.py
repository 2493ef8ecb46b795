"""Public market state of the fake Binance: instruments, books, funding, klines, volumes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from bot.domain import Instrument, MarketKind, OrderBook, SettledFunding

D = Decimal
ZERO = Decimal(0)
BASE_INTEREST = Decimal("0.0001")
BASE_PRICE = Decimal("100")


@dataclass
class FundingState:
    """What premiumIndex and fundingInfo say about one perpetual."""

    rate: Decimal
    next_funding_time: datetime
    mark: Decimal
    index: Decimal
    interest: Decimal = BASE_INTEREST
    interval_hours: int = 8
    cap: Decimal | None = None
    floor: Decimal | None = None

    @property
    def adjusted(self) -> bool:
        """Binance's fundingInfo lists only symbols whose interval or caps were adjusted."""
        return self.interval_hours != 8 or self.cap is not None or self.floor is not None


@dataclass
class Kline:
    open_time: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal = ZERO
    quote_volume: Decimal = ZERO


@dataclass
class MarketState:
    """Everything public. Keys are unified symbols; lookups by exchange id go through `find`."""

    instruments: dict[str, Instrument] = field(default_factory=dict)
    books: dict[str, OrderBook] = field(default_factory=dict)
    funding: dict[str, FundingState] = field(default_factory=dict)
    funding_history: dict[str, list[SettledFunding]] = field(default_factory=dict)
    klines: dict[tuple[str, str, str], list[Kline]] = field(default_factory=dict)
    volumes: dict[str, Decimal] = field(default_factory=dict)
    delivery_prices: dict[tuple[str, int], Decimal] = field(default_factory=dict)  # (pair, ms)
    _by_id: dict[tuple[bool, str], Instrument] = field(default_factory=dict)

    def set_instruments(self, instruments: Iterable[Instrument]) -> None:
        self.instruments = {i.symbol: i for i in instruments}
        self._by_id = {(i.is_derivative, i.exchange_symbol): i for i in self.instruments.values()}

    def find(self, futures: bool, exchange_symbol: str) -> Instrument | None:
        """Return the instrument with this exchange id on spot or on futures (USDⓈ-M or
        COIN-M: their ids differ, `BTCUSDT_250328` and `BTCUSD_250328`)."""
        return self._by_id.get((futures, exchange_symbol))

    def of_market(self, futures: bool) -> list[Instrument]:
        """Spot, or USDⓈ-M futures (fapi); COIN-M ones are `of_coinm`."""
        return [
            i for i in self.instruments.values() if i.is_derivative == futures and not i.is_inverse
        ]

    def of_coinm(self) -> list[Instrument]:
        """COIN-M (dapi) perpetuals and dated futures."""
        return [i for i in self.instruments.values() if i.is_inverse]

    def add_history(self, symbol: str, rows: Iterable[SettledFunding]) -> None:
        merged = {r.funding_time: r for r in self.funding_history.get(symbol, [])}
        merged.update({r.funding_time: r for r in rows})
        self.funding_history[symbol] = [merged[k] for k in sorted(merged)]

    def add_klines(self, symbol: str, price: str, interval: str, rows: Iterable[Kline]) -> None:
        key = (symbol, price, interval)
        merged = {k.open_time: k for k in self.klines.get(key, [])}
        merged.update({k.open_time: k for k in rows})
        self.klines[key] = [merged[k] for k in sorted(merged)]


def _base_name(i: int) -> str:
    return f"X{i:03d}"


def universe(
    n: int, *, at: datetime, dated: int = 2, price: Decimal = BASE_PRICE
) -> tuple[list[Instrument], dict[str, OrderBook], dict[str, FundingState]]:
    """Build `n` spot+perpetual pairs (bases X000..), `dated` quarterly contracts, books, funding.

    Every fourth perpetual has a 4h interval (so fundingInfo lists it); rates vary per symbol.
    """
    instruments: list[Instrument] = []
    books: dict[str, OrderBook] = {}
    funding: dict[str, FundingState] = {}
    listed = at - timedelta(days=400)
    for i in range(n):
        base = _base_name(i)
        px = price + D(i)
        spot = Instrument(
            symbol=f"{base}/USDT",
            exchange_symbol=f"{base}USDT",
            kind=MarketKind.SPOT,
            base=base,
            quote="USDT",
            tick_size=D("0.01"),
            step_size=D("0.01"),
            min_qty=D("0.01"),
            min_notional=D("5"),
            max_qty=D("900000"),
        )
        perp = Instrument(
            symbol=f"{base}/USDT:USDT",
            exchange_symbol=f"{base}USDT",
            kind=MarketKind.PERPETUAL,
            base=base,
            quote="USDT",
            tick_size=D("0.01"),
            step_size=D("0.1"),
            min_qty=D("0.1"),
            min_notional=D("5"),
            max_qty=D("100000"),
            settle="USDT",
            listed_at=listed,
            contract_type="PERPETUAL",
        )
        instruments += [spot, perp]
        for inst, spread in ((spot, D("0.01")), (perp, D("0.02"))):
            books[inst.symbol] = OrderBook(
                inst.symbol,
                ((px, D("50")), (px - D("0.05"), D("200"))),
                ((px + spread, D("50")), (px + spread + D("0.05"), D("200"))),
                at,
            )
        interval = 4 if i % 4 == 3 else 8
        funding[perp.symbol] = FundingState(
            rate=D("0.0001") + D(i % 7) * D("0.00005"),
            next_funding_time=_next_funding(at, interval),
            mark=px + D("0.01"),
            index=px,
            interval_hours=interval,
        )
    for j in range(min(dated, n)):
        base = _base_name(j)
        expiry = at + timedelta(days=30 + 90 * j)
        instruments.append(
            Instrument(
                symbol=f"{base}/USDT:USDT-{expiry:%y%m%d}",
                exchange_symbol=f"{base}USDT_{expiry:%y%m%d}",
                kind=MarketKind.DATED_FUTURE,
                base=base,
                quote="USDT",
                tick_size=D("0.01"),
                step_size=D("0.1"),
                min_qty=D("0.1"),
                min_notional=D("5"),
                max_qty=D("100000"),
                settle="USDT",
                expiry=expiry,
                listed_at=listed,
                contract_type="CURRENT_QUARTER" if j == 0 else "NEXT_QUARTER",
            )
        )
    return instruments, books, funding


def _next_funding(at: datetime, interval_hours: int) -> datetime:
    day = at.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    step = timedelta(hours=interval_hours)
    t = day
    while t <= at:
        t += step
    return t


def quote_book(
    symbol: str, bid: Decimal, ask: Decimal, bid_qty: Decimal, ask_qty: Decimal, at: datetime
) -> OrderBook:
    """Return a one-level book: what a best bid/ask quote alone says."""
    return OrderBook(symbol, ((bid, bid_qty),), ((ask, ask_qty),), at)


def best(book: OrderBook) -> tuple[Decimal, Decimal, Decimal, Decimal] | None:
    """Return (bid, bid_qty, ask, ask_qty) or None when a side is empty."""
    if not book.bids or not book.asks:
        return None
    return book.bids[0][0], book.bids[0][1], book.asks[0][0], book.asks[0][1]


def mid(book: OrderBook | None) -> Decimal | None:
    b = best(book) if book is not None else None
    return None if b is None else (b[0] + b[2]) / 2


def volumes_default(books: Mapping[str, OrderBook]) -> dict[str, Decimal]:
    return {s: D("100000000") for s in books}
