"""What `carrybot data fetch` was asked for: symbols, kinds, a UTC range and an output root.

`parse_request` validates the raw option strings and raises `UserError` with one line per
problem, each naming the option and the fix.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TypeVar

from bot.backtest.history import QUOTE_ASSETS
from bot.errors import UserError

T = TypeVar("T")
VENUES = ("binance", "bitstamp")
BITSTAMP_QUOTES = ("USD", "USDT")  # the spot quotes a cross-venue pair may have
RATE_SPEC_QUOTE = "USD"  # USDT/USD: the rate a USD pair's backtest converts at
_SYMBOL = re.compile(r"^([A-Z0-9]+)/([A-Z0-9]+)(?::([A-Z0-9]+))?$")


class Kind(StrEnum):
    """One kind of history; the value is its directory under `binance/`."""

    FUNDING = "funding"
    MARK = "mark"
    PERP = "perp"
    SPOT = "spot"
    CURRENT_QUARTER = "current_quarter"  # continuous klines of the pair's current quarterly
    NEXT_QUARTER = "next_quarter"
    DELIVERY = "delivery"  # the pair's quarterly delivery prices
    # COIN-M (dapi): continuous klines of BASEUSD's quarterlies and their delivery prices
    COINM_CURRENT_QUARTER = "coinm_current_quarter"
    COINM_NEXT_QUARTER = "coinm_next_quarter"
    COINM_DELIVERY = "coinm_delivery"
    # COIN-M perpetual BASEUSD_PERP: continuous klines (contractType PERPETUAL), funding
    COINM_PERP = "coinm_perp"
    COINM_FUNDING = "coinm_funding"

    @property
    def on_futures(self) -> bool:
        """Tell whether this kind comes from USDⓈ-M futures (else from spot)."""
        return self is not Kind.SPOT

    @property
    def is_dated(self) -> bool:
        """Quarterly (dated) history: opt-in, not among the default kinds."""
        return self.is_quarter or self.is_delivery

    @property
    def is_quarter(self) -> bool:
        """Continuous klines of a quarterly contract type (USDⓈ-M or COIN-M)."""
        return self in (
            Kind.CURRENT_QUARTER,
            Kind.NEXT_QUARTER,
            Kind.COINM_CURRENT_QUARTER,
            Kind.COINM_NEXT_QUARTER,
        )

    @property
    def is_delivery(self) -> bool:
        """Quarterly delivery prices (USDⓈ-M or COIN-M)."""
        return self in (Kind.DELIVERY, Kind.COINM_DELIVERY)

    @property
    def is_funding(self) -> bool:
        """Settled funding rates (USDⓈ-M perpetual or COIN-M perpetual)."""
        return self in (Kind.FUNDING, Kind.COINM_FUNDING)

    @property
    def is_continuous(self) -> bool:
        """Continuous klines of a contract type (the quarterlies, COIN-M's perpetual)."""
        return self.is_quarter or self is Kind.COINM_PERP

    @property
    def is_coinm(self) -> bool:
        """COIN-M (dapi) history, of the pair BASEUSD."""
        return self.value.startswith("coinm_")

    @property
    def contract_type(self) -> str:
        """Binance's contractType of a continuous kind: CURRENT_QUARTER, NEXT_QUARTER or
        PERPETUAL."""
        if self is Kind.COINM_PERP:
            return "PERPETUAL"
        return self.value.removeprefix("coinm_").upper()

    @property
    def is_bars(self) -> bool:
        """Hourly bars with a volume (perp, spot, the quarterlies, COIN-M's perpetual)."""
        return self in (Kind.PERP, Kind.SPOT) or self.is_continuous


ALL_KINDS = tuple(Kind)


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    """One base/quote pair: its spot market, its perpetual and its file stem."""

    base: str
    quote: str

    @property
    def spot(self) -> str:
        return f"{self.base}/{self.quote}"

    @property
    def perp(self) -> str:
        return f"{self.base}/{self.quote}:{self.quote}"

    @property
    def stem(self) -> str:
        """The file name stem, as Binance names the market (`BTCUSDT`)."""
        return f"{self.base}{self.quote}"


@dataclass(frozen=True, slots=True)
class FetchRequest:
    """A validated download request; `end` is exclusive and never after `now`."""

    symbols: tuple[SymbolSpec, ...]
    kinds: tuple[Kind, ...]
    start: datetime
    end: datetime
    out: Path
    venue: str = "binance"
    """Where the history comes from and its directory under `out` (`bitstamp`: spot only)."""


def parse_symbols(raw: str, quotes: tuple[str, ...] = QUOTE_ASSETS) -> tuple[SymbolSpec, ...]:
    """Parse `BTC/USDT,ETH/USDT` (perpetual form `BTC/USDT:USDT` accepted too)."""
    specs: list[SymbolSpec] = []
    problems: list[str] = []
    for item in (s.strip().upper() for s in raw.split(",")):
        if not item:
            continue
        match = _SYMBOL.match(item)
        if match is None:
            problems.append(
                f"--symbols: {item!r} is not a ccxt symbol; write BASE/QUOTE, e.g. BTC/USDT"
            )
            continue
        base, quote, settle = match.groups()
        if settle is not None and settle != quote:
            problems.append(
                f"--symbols: {item!r} is not a USDⓈ-M perpetual; write {base}/{quote} "
                f"(its perpetual {base}/{quote}:{quote} is fetched with it)"
            )
            continue
        if quote not in quotes:
            problems.append(
                f"--symbols: {item!r} has quote {quote}; use one of {', '.join(quotes)} "
                "(the backtest loader splits file names on these)"
            )
            continue
        spec = SymbolSpec(base, quote)
        if spec not in specs:
            specs.append(spec)
    if not specs and not problems:
        problems.append("--symbols: no symbol given; pass e.g. --symbols BTC/USDT,ETH/USDT")
    if problems:
        raise UserError(problems)
    return tuple(specs)


def parse_kinds(raw: str) -> tuple[Kind, ...]:
    """Parse `funding,mark,perp,spot[,current_quarter,next_quarter,delivery,coinm_...]` (any
    subset, any order; kept in the canonical order)."""
    allowed = ", ".join(k.value for k in ALL_KINDS)
    wanted: set[Kind] = set()
    problems: list[str] = []
    for item in (s.strip().lower() for s in raw.split(",")):
        if not item:
            continue
        try:
            wanted.add(Kind(item))
        except ValueError:
            problems.append(f"--kinds: unknown kind {item!r}; choose from {allowed}")
    if not wanted and not problems:
        problems.append(f"--kinds: no kind given; choose from {allowed}")
    if problems:
        raise UserError(problems)
    return tuple(k for k in ALL_KINDS if k in wanted)


def parse_time(raw: str, option: str) -> datetime:
    """Parse `YYYY-MM-DD` or an ISO 8601 time; no offset means UTC."""
    try:
        when = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise UserError(
            f"{option}: {raw!r} is not a date; use YYYY-MM-DD or YYYY-MM-DDTHH:MM (UTC)"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC)


def parse_request(
    *,
    symbols: str,
    start: str,
    end: str | None,
    kinds: str,
    out: Path,
    now: datetime,
    venue: str = "binance",
) -> FetchRequest:
    """Validate the options of `data fetch`; `end` defaults to `now` and is capped there.

    `venue = "bitstamp"`: spot klines only, of USD or USDT pairs, and USDT/USD with them
    when a USD pair is asked for (a backtest converts USD prices at it).
    """
    problems: list[str] = []
    if venue not in VENUES:
        raise UserError(f"--venue: unknown venue {venue!r}; choose from {', '.join(VENUES)}")
    bitstamp = venue == "bitstamp"
    quotes = BITSTAMP_QUOTES if bitstamp else QUOTE_ASSETS
    specs = _collect(problems, lambda: parse_symbols(symbols, quotes))
    kind_list = _collect(problems, lambda: parse_kinds(kinds))
    if bitstamp and kind_list is not None and set(kind_list) - {Kind.SPOT}:
        others = ", ".join(k.value for k in kind_list if k is not Kind.SPOT)
        problems.append(f"--kinds: bitstamp has spot klines only, not {others}; pass --kinds spot")
    if bitstamp and specs is not None and any(s.quote == RATE_SPEC_QUOTE for s in specs):
        rate = SymbolSpec("USDT", RATE_SPEC_QUOTE)
        specs = specs if rate in specs else (*specs, rate)
    first = _collect(problems, lambda: parse_time(start, "--from"))
    last = _collect(problems, lambda: parse_time(end, "--to") if end is not None else now)
    if out.exists() and not out.is_dir():
        problems.append(f"--out {out}: is a file; pass a directory (it is created if missing)")
    if problems or specs is None or kind_list is None or first is None or last is None:
        raise UserError(problems)
    if first >= now:
        raise UserError(f"--from {start} is not in the past; pass a --from before now")
    last = min(last, now)
    if first >= last:
        raise UserError(
            f"--from {start} is not before --to {end or 'now'}; pass a --from before --to"
        )
    return FetchRequest(specs, kind_list, first, last, out, venue)


def _collect(problems: list[str], parse: Callable[[], T]) -> T | None:
    try:
        return parse()
    except UserError as exc:
        problems.extend(exc.problems)
        return None
