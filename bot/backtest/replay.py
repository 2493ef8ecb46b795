"""`ReplaySource`: a `MarketDataSource` over loaded history, driven by an injected clock.

What the source answers at clock time t (H = start of t's UTC hour):
- prices come from the OPEN of the bar containing t, never from later in the bar; a market
  with no bar containing t (before listing, in a data gap, after the end) is absent;
- quotes and books are synthetic around that open (`SyntheticBook`), on the tick grid;
- `funding_rate` is the latest rate settled at or before t. Binance's premiumIndex gives a
  real-time estimate of the *next* rate, which the data does not hold; the rate that will
  settle next is future information, so the last settled rate stands in (a persistence
  forecast, lagging the real estimate by up to one period);
- `mark_price` is the open of the mark bar opening at H, else the perp open (8h mark files
  only have bars at 00/08/16 UTC; the perp's last price is the closest hourly proxy);
  `index_price` is the spot open, else the mark; `interest_rate` is fixed (0.01%/8h);
- settled funding history carries the mark at the settlement (what paper funding pays at)
  and never a row after t; 24h volume is Σ volume x close of the bars that ended by H;
- instruments appear once listed (a perpetual at its first usable bar, a spot market at its
  first bar) and pairs while both legs have data; `reload` changes nothing, the answer always
  follows the clock. `all_instruments()` gives the simulator every instrument up front;
- quarterly contracts (when the data holds quarterly files, `dated_history`) are dated
  futures with the perpetual's filters, listed from their first bar, quoted like the other
  markets, and `fetch_delivery_price` gives their recorded delivery price; COIN-M
  quarterlies (`coinm_*` files) likewise, as inverse contracts (`filters.coinm_instrument`:
  whole contracts of 100 or 10 USD, settled in the coin, which the simulator's COIN-M
  account holds); a COIN-M perpetual (`coinm_perp` + `coinm_funding` files) is listed as
  `BASE/USD:BASE` with its settled funding (the mark at a settlement is its own open) and
  its funding snapshot, not paired by `pairs()` (whose pairs are USDⓈ-M perpetuals).

Errors: an unknown symbol raises `FatalExchangeError` (a caller bug: the market does not
exist in this history); a known symbol without data at t raises `BadResponseError`, which
callers treat like an exchange answer they cannot use (no trade now), not as a reason to stop.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from bot.backtest.book import Level, SyntheticBook
from bot.backtest.dated_history import DatedContract
from bot.backtest.filters import build_instruments, coinm_instrument
from bot.backtest.history import History, SymbolHistory
from bot.backtest.series import (
    EPOCH,
    HOUR_MS,
    BarSeries,
    FundingSeries,
    from_ms,
    hour_floor,
    to_ms,
)
from bot.clock import Clock
from bot.domain import (
    FundingInfo,
    Instrument,
    MarketKind,
    OrderBook,
    Pair,
    Quote,
    SettledFunding,
)
from bot.errors import BadResponseError, FatalExchangeError

T = TypeVar("T")
A = TypeVar("A")
_QUOTES_KEY = {kind: f"quotes:{kind.value}" for kind in MarketKind}
_VOLUMES_KEY = {kind: f"volumes:{kind.value}" for kind in MarketKind}
DEFAULT_INTEREST_RATE = Decimal("0.0001")
_DAY_MS = 24 * HOUR_MS


@dataclass(frozen=True, slots=True)
class DataRange:
    """Where a pair can be replayed: perp listed, spot quoted and funding settled; end excluded."""

    start: datetime
    end: datetime


class _Market:
    """One replayed market: its instrument, bars and per-bar caches."""

    __slots__ = (
        "bars",
        "book_at",
        "book_levels",
        "end_ms",
        "first_ms",
        "funding_at",
        "funding_next",
        "instrument",
        "quote_at",
        "quote_top",
        "volume_at",
        "volume_value",
    )

    def __init__(self, instrument: Instrument, bars: BarSeries) -> None:
        self.instrument = instrument
        self.bars = bars
        self.first_ms = bars.first_ms
        self.end_ms = bars.end_ms
        self.quote_at = -1
        self.quote_top: tuple[Decimal, Decimal, Decimal] = (Decimal(0),) * 3
        self.book_at = (-1, 0)
        self.book_levels: tuple[tuple[Level, ...], tuple[Level, ...]] = ((), ())
        self.volume_at = -1
        self.volume_value = Decimal(0)
        self.funding_at = -1  # the settlement index `funding_next` is for
        self.funding_next: tuple[datetime, int] = (EPOCH, 0)

    def exists_at(self, ms: int) -> bool:
        return self.first_ms <= ms < self.end_ms


class ReplayAnswers:
    """Answers of `ReplaySource`s over one history, kept for the next replay of it.

    What the replay shows at a time depends only on the history, the synthetic book and the
    interest rate, so the combinations of a sweep (one process, many replays of the same
    data) share one of these: after the first run, the funding snapshots, quotes and 24h
    volumes of a time are looked up rather than built. Safe across threads (a Dask worker):
    an answer computed twice is the same.
    """

    def __init__(self) -> None:
        self._tables: dict[tuple[SyntheticBook, Decimal], dict[str, dict[datetime, Any]]] = {}

    def table(self, book: SyntheticBook, interest_rate: Decimal) -> dict[str, dict[datetime, Any]]:
        """The answers of replays with this book and interest rate: kind → time → answer."""
        key = (book, interest_rate)
        table = self._tables.get(key)
        if table is None:
            table = self._tables.setdefault(key, {})
        return table

    def __len__(self) -> int:
        return sum(len(kept) for t in self._tables.values() for kept in t.values())


class ReplaySource:
    """Historical market data as the exchange would have shown it at the clock's time."""

    def __init__(
        self,
        history: History,
        clock: Clock,
        *,
        book: SyntheticBook | None = None,
        interest_rate: Decimal = DEFAULT_INTEREST_RATE,
        answers: ReplayAnswers | None = None,
        closing_window: timedelta = timedelta(0),
    ) -> None:
        """`closing_window`: a pair is no longer offered (`pairs`) this long before its data
        ends, while its quotes still are, so hedges on it can be closed but none opened."""
        self._history = history
        self._closing_ms = int(closing_window.total_seconds() * 1000)
        self._clock = clock
        self._book = book or SyntheticBook()
        self._interest_rate = interest_rate
        # kind of answer ("funding", "quotes:spot", ...) -> clock time -> answer
        self._kept = answers.table(self._book, interest_rate) if answers is not None else None
        self._symbols: list[tuple[SymbolHistory, _Market, _Market]] = []
        self._markets: dict[str, _Market] = {}
        self._by_kind: dict[MarketKind, list[_Market]] = {k: [] for k in MarketKind}
        self._by_pair: dict[str, SymbolHistory] = {}
        self._settled: dict[str, list[SettledFunding]] = {}
        self._deliveries: dict[str, Decimal | None] = {}
        self._funding_of: dict[str, FundingSeries] = {}  # perpetual symbol → its rates
        self._coinm_perps: list[tuple[_Market, FundingSeries, _Market]] = []  # with its spot
        for sym in history.symbols.values():
            spot_inst, perp_inst = build_instruments(
                sym.base,
                sym.quote,
                sym.perp.opens[0],
                spot_listed_at=from_ms(sym.spot.first_ms),
                perp_listed_at=from_ms(sym.listed_ms),
            )
            spot, perp = _Market(spot_inst, sym.spot), _Market(perp_inst, sym.perp)
            self._symbols.append((sym, spot, perp))
            for market in (spot, perp):
                self._markets[market.instrument.symbol] = market
                self._by_kind[market.instrument.kind].append(market)
                self._by_pair[market.instrument.symbol] = sym
            self._settled[perp_inst.symbol] = [
                SettledFunding(perp_inst.symbol, from_ms(t), rate, _mark_at(sym, t))
                for t, rate in zip(sym.funding.times, sym.funding.rates, strict=True)
            ]
            self._funding_of[perp_inst.symbol] = sym.funding
            if sym.coinm_perp is not None and sym.coinm_funding is not None:
                self._add_coinm_perp(sym, sym.coinm_perp, sym.coinm_funding, spot)
            contracts = [(dated_instrument(perp_inst, c), c) for c in sym.dated]
            contracts += [
                (
                    coinm_instrument(sym.base, c.expiry, from_ms(c.bars.first_ms), c.bars.opens[0]),
                    c,
                )
                for c in sym.coinm_dated
            ]
            for inst, contract in contracts:
                dated = _Market(inst, contract.bars)
                self._markets[dated.instrument.symbol] = dated
                self._by_kind[MarketKind.DATED_FUTURE].append(dated)
                self._by_pair[dated.instrument.symbol] = sym
                self._deliveries[dated.instrument.symbol] = contract.delivery_price

    def _add_coinm_perp(
        self, sym: SymbolHistory, bars: BarSeries, funding: FundingSeries, spot: _Market
    ) -> None:
        """List the COIN-M perpetual `BASE/USD:BASE`: its bars, its funding (the mark at a
        settlement is its own open: the data holds no COIN-M mark)."""
        inst = coinm_instrument(sym.base, None, from_ms(bars.first_ms), bars.opens[0])
        market = _Market(inst, bars)
        self._markets[inst.symbol] = market
        self._by_kind[MarketKind.PERPETUAL].append(market)
        self._by_pair[inst.symbol] = sym
        self._settled[inst.symbol] = [
            SettledFunding(inst.symbol, from_ms(t), rate, bars.open_containing(t))
            for t, rate in zip(funding.times, funding.rates, strict=True)
        ]
        self._funding_of[inst.symbol] = funding
        self._coinm_perps.append((market, funding, spot))

    # --- for the backtest driver (not part of MarketDataSource) -------------------------

    @property
    def history(self) -> History:
        return self._history

    def all_instruments(self) -> dict[str, Instrument]:
        """Return every instrument of the history, listed or not (for the simulator)."""
        return {s: m.instrument for s, m in self._markets.items()}

    def data_range(self, symbol: str) -> DataRange:
        """Return the replayable range of the pair that `symbol` (spot or perp) belongs to."""
        sym = self._pair_history(symbol)
        return DataRange(from_ms(sym.start_ms), from_ms(sym.end_ms))

    def data_ranges(self) -> dict[str, DataRange]:
        """Return the replayable range of every pair, keyed by spot symbol."""
        return {
            spot.instrument.symbol: self.data_range(spot.instrument.symbol)
            for _, spot, _ in self._symbols
        }

    def event_times(self, start: datetime, end: datetime) -> list[datetime]:
        """Return the sorted union of hourly bar times and funding times in [start, end]."""
        return [from_ms(t) for t in self._history.event_times_ms(to_ms(start), to_ms(end))]

    # --- MarketDataSource ----------------------------------------------------------------

    async def load_instruments(self, *, reload: bool = False) -> Mapping[str, Instrument]:
        """Return the instruments listed at the clock's time (`reload` changes nothing)."""
        ms = self._now_ms()
        return {s: m.instrument for s, m in self._markets.items() if m.bars.first_ms <= ms}

    async def pairs(self) -> Sequence[Pair]:
        """Return the pairs whose spot and perpetual both trade at the clock's time (and
        for longer than the closing window)."""
        ms = self._now_ms()
        closing = self._closing_ms
        return [
            Pair(spot=spot.instrument, perp=perp.instrument)
            for sym, spot, perp in self._symbols
            if sym.start_ms <= ms < sym.end_ms - closing
        ]

    async def fetch_funding_snapshot(self) -> Mapping[str, FundingInfo]:
        return self._answer("funding", self._funding_snapshot, None)

    async def fetch_best_quotes(self, kind: MarketKind) -> Mapping[str, Quote]:
        return self._answer(_QUOTES_KEY[kind], self._best_quotes, kind)

    async def fetch_volumes_24h(self, kind: MarketKind) -> Mapping[str, Decimal]:
        return self._answer(_VOLUMES_KEY[kind], self._volumes_24h, kind)

    def _answer(self, what: str, build: Callable[[A], dict[str, T]], arg: A) -> dict[str, T]:
        """Build an answer, or take it from the shared `ReplayAnswers` (a copy either way)."""
        tables = self._kept
        if tables is None:
            return build(arg)  # a new dict at every call: nobody else holds it
        kept_at = tables.get(what)
        if kept_at is None:
            kept_at = tables.setdefault(what, {})
        now = self._clock.now()
        kept = kept_at.get(now)
        if kept is None:
            kept = kept_at[now] = build(arg)
        return dict(kept)

    def _funding_snapshot(self, _: None) -> dict[str, FundingInfo]:
        now = self._clock.now()
        ms = to_ms(now)
        out: dict[str, FundingInfo] = {}
        for sym, spot, perp in self._symbols:
            i = perp.bars.index_containing(ms)
            j = sym.funding.last_index_at_or_before(ms)
            if i < 0 or j < 0:
                continue
            mark = _mark_at(sym, ms) or perp.bars.opens[i]
            index = spot.bars.open_containing(ms) or mark
            out[perp.instrument.symbol] = self._funding_info(perp, sym.funding, j, mark, index, now)
        for market, funding, spot in self._coinm_perps:
            i = market.bars.index_containing(ms)
            j = funding.last_index_at_or_before(ms)
            if i < 0 or j < 0:
                continue
            mark = market.bars.opens[i]
            index = spot.bars.open_containing(ms) or mark
            out[market.instrument.symbol] = self._funding_info(market, funding, j, mark, index, now)
        return out

    def _funding_info(
        self,
        perp: _Market,
        funding: FundingSeries,
        j: int,
        mark: Decimal,
        index: Decimal,
        now: datetime,
    ) -> FundingInfo:
        """The funding estimate of `perp` after its j-th settlement (persistence forecast)."""
        if perp.funding_at != j:  # the next funding time moves once per settlement
            times = funding.times
            interval = funding.interval_ms(j)
            next_time = times[j + 1] if j + 1 < len(times) else times[j] + interval
            perp.funding_next = (from_ms(next_time), round(interval / HOUR_MS))
            perp.funding_at = j
        next_funding_time, interval_hours = perp.funding_next
        return FundingInfo(
            symbol=perp.instrument.symbol,
            funding_rate=funding.rates[j],
            next_funding_time=next_funding_time,
            interval_hours=interval_hours,
            mark_price=mark,
            index_price=index,
            interest_rate=self._interest_rate,
            timestamp=now,
        )

    def _best_quotes(self, kind: MarketKind) -> dict[str, Quote]:
        now = self._clock.now()
        ms = to_ms(now)
        out: dict[str, Quote] = {}
        for market in self._by_kind[kind]:
            i = market.bars.index_containing(ms)
            if i < 0:
                continue
            bid, ask, qty = self._top(market, i)
            symbol = market.instrument.symbol
            out[symbol] = Quote(symbol, bid, ask, qty, qty, now)
        return out

    async def fetch_order_book(self, symbol: str, depth: int = 20) -> OrderBook:
        market = self._market(symbol)
        now = self._clock.now()
        i = market.bars.index_containing(to_ms(now))
        if i < 0:
            raise BadResponseError(
                f"no {symbol} price at {now:%Y-%m-%d %H:%M:%S}Z: not listed yet, "
                "in a data gap or after the end of the history"
            )
        if market.book_at != (i, depth):
            market.book_levels = self._book.levels(market.bars.opens[i], market.instrument, depth)
            market.book_at = (i, depth)
        bids, asks = market.book_levels
        return OrderBook(symbol, bids, asks, now)

    def _volumes_24h(self, kind: MarketKind) -> dict[str, Decimal]:
        ms = self._now_ms()
        hour = hour_floor(ms)
        out: dict[str, Decimal] = {}
        for market in self._by_kind[kind]:
            if not market.first_ms <= ms < market.end_ms:  # `exists_at`, inlined: every hour
                continue
            if market.volume_at != hour:
                market.volume_value = market.bars.quote_volume(hour - _DAY_MS, hour)
                market.volume_at = hour
            out[market.instrument.symbol] = market.volume_value
        return out

    async def fetch_funding_history(
        self, symbol: str, since: datetime, until: datetime | None = None
    ) -> Sequence[SettledFunding]:
        rows = self._settled.get(symbol)
        if rows is None:
            raise FatalExchangeError(f"{symbol!r} is not a perpetual of this history")
        now_ms = self._now_ms()
        last = now_ms if until is None else min(to_ms(until), now_ms)
        span = self._funding_of[symbol].index_range(to_ms(since), last)
        return rows[span.start : span.stop]

    async def fetch_delivery_price(self, symbol: str) -> Decimal | None:
        """Return a quarterly's recorded delivery price once delivered (None before, or
        when the data has none)."""
        market = self._market(symbol)
        expiry = market.instrument.expiry
        if expiry is None or self._clock.now() < expiry:
            return None
        return self._deliveries.get(symbol)

    async def close(self) -> None:
        """Release nothing: the history stays in memory."""

    # --- internals -----------------------------------------------------------------------

    def _now_ms(self) -> int:
        return to_ms(self._clock.now())

    def _market(self, symbol: str) -> _Market:
        market = self._markets.get(symbol)
        if market is None:
            raise FatalExchangeError(f"unknown symbol {symbol!r}: not in this history")
        return market

    def _pair_history(self, symbol: str) -> SymbolHistory:
        sym = self._by_pair.get(symbol)
        if sym is None:
            raise FatalExchangeError(f"unknown symbol {symbol!r}: not in this history")
        return sym

    def _top(self, market: _Market, i: int) -> tuple[Decimal, Decimal, Decimal]:
        if market.quote_at != i:
            market.quote_top = self._book.top(market.bars.opens[i], market.instrument)
            market.quote_at = i
        return market.quote_top


def _mark_at(sym: SymbolHistory, ms: int) -> Decimal | None:
    """Return the mark at `ms`: the mark bar opening at its hour, else the perp open, else None."""
    if sym.mark is not None:
        k = sym.mark.index_opening_at(hour_floor(ms))
        if k >= 0:
            return sym.mark.opens[k]
    return sym.perp.open_containing(ms)


def dated_instrument(perp: Instrument, contract: DatedContract) -> Instrument:
    """Return a quarterly of `perp`'s asset: its filters, the contract's delivery time."""
    expiry = contract.expiry
    return replace(
        perp,
        symbol=f"{perp.symbol}-{expiry:%y%m%d}",
        exchange_symbol=f"{perp.exchange_symbol}_{expiry:%y%m%d}",
        kind=MarketKind.DATED_FUTURE,
        expiry=expiry,
        listed_at=from_ms(contract.bars.first_ms),
        contract_type=None,
    )
