"""Load a directory of Binance history into compact per-symbol series.

Layout (the one of ../shared/data, see its README):

    binance/funding/{SYMBOL}.csv          funding_time_utc, funding_time_ms, funding_rate
    binance/mark/{SYMBOL}-1h.csv.gz       date, open, high, low, close   (or -8h.csv)
    binance/perp/{SYMBOL}-1h.csv.gz       date, open, high, low, close, volume
    binance/spot/{SYMBOL}-1h.csv.gz       date, open, high, low, close, volume

Files name symbols as Binance does (`BTCUSDT`); the bot uses ccxt unified symbols
(`BTC/USDT` spot, `BTC/USDT:USDT` perpetual).

Placeholder rule: the first perp bars of a listing can carry placeholder prices with almost
no volume (BTC opens at 10000.0 on 2019-09-08). The first *liquid* bar is the first one that
opens at or after the first recorded funding settlement with a quote volume (volume x close)
of at least `min_listing_quote_volume`. A bar's volume is only known when it closes, so the
perpetual is *listed* from the bar after that one; earlier bars are dropped. Thin bars after
the listing are real and kept.

Funding times are keyed by the nominal settlement time (`funding_time_utc`, whole seconds):
`funding_time_ms` carries a few ms of exchange jitter that would otherwise make a rate settled
"at 08:00" invisible to a clock standing exactly at 08:00.
"""

from __future__ import annotations

import gzip
import logging
import zlib
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

from bot.backtest.dated_history import DatedContract, load_dated
from bot.backtest.parse import bars_in_bulk, funding_in_bulk
from bot.backtest.series import HOUR_MS, BarSeries, FundingSeries, from_ms
from bot.errors import UserError

log = logging.getLogger(__name__)

QUOTE_ASSETS = ("USDT", "USDC", "FDUSD", "BUSD")
DEFAULT_MIN_LISTING_QUOTE_VOLUME = Decimal(100_000)
_DAY_MS = 24 * HOUR_MS
_EPOCH_DAY = date(1970, 1, 1).toordinal()
_BAR_COLUMNS = ("date", "open", "close")
_FUNDING_COLUMNS = ("funding_time_utc", "funding_time_ms", "funding_rate")
_FIX = "fix or re-download the file"


@dataclass(frozen=True, slots=True)
class SymbolHistory:
    """Everything recorded for one base asset: spot and perp klines, marks and funding."""

    exchange_symbol: str
    base: str
    quote: str
    spot: BarSeries
    perp: BarSeries
    funding: FundingSeries
    mark: BarSeries | None
    placeholder_bars: int
    """Leading perp bars dropped by the placeholder rule."""
    perp_first_raw_ms: int
    """Open time of the first perp bar in the file, placeholder or not."""
    dated: tuple[DatedContract, ...] = ()
    """Quarterly contracts, when the data holds quarterly files (`dated_history`)."""
    coinm_dated: tuple[DatedContract, ...] = ()
    """COIN-M quarterlies (`BASE/USD:BASE-YYMMDD`), when the data holds `coinm_*` files."""
    coinm_perp: BarSeries | None = None
    """COIN-M perpetual (`BASE/USD:BASE`) bars, with `coinm_perp` files."""
    coinm_funding: FundingSeries | None = None
    """Its settled funding rates (`coinm_funding` files; required with `coinm_perp`)."""

    @property
    def spot_symbol(self) -> str:
        return f"{self.base}/{self.quote}"

    @property
    def perp_symbol(self) -> str:
        return f"{self.base}/{self.quote}:{self.quote}"

    @property
    def listed_ms(self) -> int:
        """Open time of the first usable perp bar."""
        return self.perp.first_ms

    @property
    def start_ms(self) -> int:
        """First instant with a listed perp, spot data and a settled funding rate."""
        return max(self.listed_ms, self.spot.first_ms, self.funding.times[0])

    @property
    def end_ms(self) -> int:
        """End (exclusive) of the data common to both legs."""
        return min(self.perp.end_ms, self.spot.end_ms)


@dataclass(frozen=True, slots=True)
class History:
    """The loaded history of every symbol, keyed by exchange symbol (`BTCUSDT`)."""

    root: Path
    symbols: Mapping[str, SymbolHistory]

    def event_times_ms(self, start_ms: int, end_ms: int) -> list[int]:
        """Return the sorted union of bar open times and funding times in [start_ms, end_ms]."""
        times: set[int] = set()
        for sym in self.symbols.values():
            for series in (sym.spot.times, sym.perp.times, sym.funding.times):
                times.update(series[bisect_left(series, start_ms) : bisect_right(series, end_ms)])
        return sorted(times)


def load_history(
    root: Path | str,
    *,
    symbols: Sequence[str] | None = None,
    min_listing_quote_volume: Decimal = DEFAULT_MIN_LISTING_QUOTE_VOLUME,
) -> History:
    """Load every symbol of `root` (or only `symbols`: `BTCUSDT` or `BTC/USDT`).

    Discovered symbols without spot or perp klines are skipped with a warning; explicitly
    requested ones raise `UserError`, as does a missing directory or a malformed file.
    """
    root = Path(root)
    binance = root / "binance"
    funding_dir = binance / "funding"
    if not funding_dir.is_dir():
        raise UserError(
            f"{root}: no binance/funding directory; pass the directory that holds "
            "binance/{funding,mark,perp,spot} (e.g. ../shared/data)"
        )
    explicit = symbols is not None
    names = (
        [_exchange_symbol(s) for s in symbols]
        if symbols is not None
        else sorted(p.name.removesuffix(".csv") for p in funding_dir.glob("*.csv"))
    )
    loaded: dict[str, SymbolHistory] = {}
    for name in names:
        sym = _load_symbol(binance, name, explicit, min_listing_quote_volume)
        if sym is not None:
            loaded[name] = sym
    if not loaded:
        raise UserError(
            f"{binance}: no symbol has funding, perp and spot files; expected "
            "funding/{SYMBOL}.csv, perp/{SYMBOL}-1h.csv.gz and spot/{SYMBOL}-1h.csv.gz"
        )
    return History(root=root, symbols=loaded)


def _exchange_symbol(symbol: str) -> str:
    """`BTC/USDT`, `BTC/USDT:USDT` and `BTCUSDT` all name `BTCUSDT`."""
    return symbol.split(":", 1)[0].replace("/", "").upper()


def _split_symbol(name: str, path: Path) -> tuple[str, str]:
    for quote in QUOTE_ASSETS:
        if name.endswith(quote) and len(name) > len(quote):
            return name[: -len(quote)], quote
    raise UserError(
        f"{path}: cannot tell base from quote in {name!r}; name files BASEQUOTE "
        f"with a quote in {', '.join(QUOTE_ASSETS)}"
    )


def _find(directory: Path, stems: Sequence[str]) -> Path | None:
    for stem in stems:
        for suffix in (".csv.gz", ".csv"):
            path = directory / f"{stem}{suffix}"
            if path.is_file():
                return path
    return None


def _load_symbol(
    binance: Path, name: str, explicit: bool, min_listing_quote_volume: Decimal
) -> SymbolHistory | None:
    funding_path = binance / "funding" / f"{name}.csv"
    perp_path = _find(binance / "perp", [f"{name}-1h"])
    spot_path = _find(binance / "spot", [f"{name}-1h"])
    missing = [
        str(p)
        for p, found in (
            (funding_path, funding_path.is_file()),
            (binance / "perp" / f"{name}-1h.csv.gz", perp_path is not None),
            (binance / "spot" / f"{name}-1h.csv.gz", spot_path is not None),
        )
        if not found
    ]
    if missing:
        if explicit:
            raise UserError(f"{missing[0]}: file not found; add it or drop {name} from symbols")
        log.warning("Skipping %s: missing %s", name, ", ".join(missing))
        return None
    assert perp_path is not None and spot_path is not None
    base, quote = _split_symbol(name, funding_path)
    funding = read_funding(funding_path)
    perp = read_bars(perp_path, HOUR_MS, with_volume=True)
    spot = read_bars(spot_path, HOUR_MS, with_volume=True)
    mark_path = _find(binance / "mark", [f"{name}-1h", f"{name}-8h"])
    mark = None
    if mark_path is not None:
        bar_ms = HOUR_MS if mark_path.name.startswith(f"{name}-1h") else 8 * HOUR_MS
        mark = read_bars(mark_path, bar_ms, with_volume=False)
    first = _first_listed_bar(perp, funding, min_listing_quote_volume)
    if first is None:
        raise UserError(
            f"{perp_path}: no bar at or after the first funding settlement "
            f"({from_ms(funding.times[0]):%Y-%m-%d %H:%M}Z) has a quote volume of "
            f"{min_listing_quote_volume} and a bar after it; check the file or lower "
            "min_listing_quote_volume"
        )
    coinm_perp, coinm_funding = _coinm_perpetual(binance, name)
    return SymbolHistory(
        exchange_symbol=name,
        base=base,
        quote=quote,
        spot=spot,
        perp=perp.tail(first),
        funding=funding,
        mark=mark,
        placeholder_bars=first,
        perp_first_raw_ms=perp.first_ms,
        dated=load_dated(binance, name),
        coinm_dated=load_dated(binance, name, coinm=True),
        coinm_perp=coinm_perp,
        coinm_funding=coinm_funding,
    )


def _coinm_perpetual(binance: Path, name: str) -> tuple[BarSeries | None, FundingSeries | None]:
    """The COIN-M perpetual's bars and funding of `name`, when its files exist (both)."""
    bars_path = _find(binance / "coinm_perp", [f"{name}-1h"])
    if bars_path is None:
        return None, None
    funding_path = binance / "coinm_funding" / f"{name}.csv"
    if not funding_path.is_file():
        raise UserError(
            f"{funding_path}: file not found beside {bars_path}; fetch it with "
            "`carrybot data fetch --kinds coinm_funding` or remove the coinm_perp file"
        )
    return read_bars(bars_path, HOUR_MS, with_volume=True), read_funding(funding_path)


def _first_listed_bar(perp: BarSeries, funding: FundingSeries, minimum: Decimal) -> int | None:
    """Apply the placeholder rule: index of the first usable perp bar."""
    first_funding = funding.times[0]
    for i, t in enumerate(perp.times[:-1]):
        if t >= first_funding and perp.quote_volume(t, t + 1) >= minimum:
            return i + 1
    return None


# --- file parsing -------------------------------------------------------------------------


def _read_lines(path: Path) -> list[str]:
    try:
        raw = path.read_bytes()
        if path.name.endswith(".gz"):
            raw = gzip.decompress(raw)
        text = raw.decode("utf-8")
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read ({exc}); {_FIX}") from None
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if len(lines) < 2:
        raise UserError(f"{path}: no data rows; {_FIX}")
    return lines


def _columns(path: Path, header: str, wanted: Sequence[str]) -> list[int]:
    names = [h.strip().lower() for h in header.split(",")]
    try:
        return [names.index(w) for w in wanted]
    except ValueError:
        raise UserError(
            f"{path}: header {header!r} lacks one of {', '.join(wanted)}; {_FIX}"
        ) from None


def _iso_ms(text: str, day_cache: dict[str, int]) -> int:
    """Parse `YYYY-MM-DDTHH:MM:SSZ` to epoch ms (days cached: hourly bars repeat them)."""
    if len(text) != 20 or text[10] != "T" or text[19] != "Z" or text[13] != ":":
        raise ValueError(f"bad time {text!r}, expected YYYY-MM-DDTHH:MM:SSZ")
    day = text[:10]
    day_ms = day_cache.get(day)
    if day_ms is None:
        day_ms = (date.fromisoformat(day).toordinal() - _EPOCH_DAY) * _DAY_MS
        day_cache[day] = day_ms
    hour, minute, second = int(text[11:13]), int(text[14:16]), int(text[17:19])
    if not (0 <= hour < 24 and 0 <= minute < 60 and 0 <= second < 60):
        raise ValueError(f"bad time {text!r}")
    return day_ms + hour * HOUR_MS + minute * 60_000 + second * 1000


def _number(text: str, what: str, check: Callable[[Decimal], bool]) -> Decimal:
    try:
        value = Decimal(text)
        ok = value.is_finite() and check(value)
    except ArithmeticError:  # InvalidOperation included
        ok = False
    if not ok:
        raise ValueError(f"bad {what} {text!r}")
    return value


def _positive(value: Decimal) -> bool:
    return value > 0


def _non_negative(value: Decimal) -> bool:
    return value >= 0


def _any(value: Decimal) -> bool:
    return True


def read_bar_rows(
    path: Path, bar_ms: int, *, with_volume: bool
) -> tuple[list[int], list[Decimal], list[Decimal], list[Decimal]]:
    """Read one kline file's times, opens, closes and volumes (the last two with volume)."""
    lines = _read_lines(path)
    wanted = (*_BAR_COLUMNS, "volume") if with_volume else _BAR_COLUMNS
    idx = _columns(path, lines[0], wanted)
    width = len(lines[0].split(","))
    bulk = bars_in_bulk(lines[1:], width, idx, bar_ms, with_volume=with_volume)
    if bulk is not None:
        return bulk
    return _bars_by_line(path, lines, idx, bar_ms, with_volume)  # names the bad row


def read_bars(path: Path, bar_ms: int, *, with_volume: bool) -> BarSeries:
    """Read one kline file; times must be strictly increasing and aligned to the bar size."""
    times, opens, closes, volumes = read_bar_rows(path, bar_ms, with_volume=with_volume)
    if with_volume:
        return BarSeries.from_bars(bar_ms, times, opens, closes, volumes)
    return BarSeries.from_bars(bar_ms, times, opens)


def _bars_by_line(
    path: Path, lines: list[str], idx: list[int], bar_ms: int, with_volume: bool
) -> tuple[list[int], list[Decimal], list[Decimal], list[Decimal]]:
    width = max(idx) + 1
    times: list[int] = []
    opens: list[Decimal] = []
    closes: list[Decimal] = []
    volumes: list[Decimal] = []
    days: dict[str, int] = {}
    previous = -1
    for lineno, line in enumerate(lines[1:], start=2):
        cells = line.split(",")
        try:
            if len(cells) < width:
                raise ValueError(f"{len(cells)} columns, expected {len(lines[0].split(','))}")
            t = _iso_ms(cells[idx[0]].strip(), days)
            if t % bar_ms:
                raise ValueError(f"time {cells[idx[0]]} is not on a {bar_ms // HOUR_MS}h boundary")
            if t <= previous:
                raise ValueError(f"time {cells[idx[0]]} is not after the previous row")
            opens.append(_number(cells[idx[1]], "open", _positive))
            if with_volume:
                closes.append(_number(cells[idx[2]], "close", _positive))
                volumes.append(_number(cells[idx[3]], "volume", _non_negative))
        except ValueError as exc:
            raise UserError(f"{path}:{lineno}: {exc}; {_FIX}") from None
        times.append(t)
        previous = t
    return times, opens, closes, volumes


def read_funding(path: Path) -> FundingSeries:
    """Read one funding file, keyed by nominal settlement time (see the module docstring)."""
    lines = _read_lines(path)
    idx = _columns(path, lines[0], _FUNDING_COLUMNS)
    bulk = funding_in_bulk(lines[1:], len(lines[0].split(",")), idx)
    if bulk is not None:
        return FundingSeries(*bulk)
    return FundingSeries(*_funding_by_line(path, lines, idx))


def _funding_by_line(
    path: Path, lines: list[str], idx: list[int]
) -> tuple[list[int], list[Decimal]]:
    width = max(idx) + 1
    times: list[int] = []
    rates: list[Decimal] = []
    days: dict[str, int] = {}
    previous = -1
    for lineno, line in enumerate(lines[1:], start=2):
        cells = line.split(",")
        try:
            if len(cells) < width:
                raise ValueError(f"{len(cells)} columns, expected {len(lines[0].split(','))}")
            t = _iso_ms(cells[idx[0]].strip(), days)
            exchange_ms = int(cells[idx[1]])
            if abs(exchange_ms - t) >= 1000:
                raise ValueError(
                    f"funding_time_ms {exchange_ms} disagrees with {cells[idx[0]]} by over 1 s"
                )
            if t <= previous:
                raise ValueError(f"time {cells[idx[0]]} is not after the previous row")
            rates.append(_number(cells[idx[2]], "funding_rate", _any))
        except ValueError as exc:
            raise UserError(f"{path}:{lineno}: {exc}; {_FIX}") from None
        times.append(t)
        previous = t
    return times, rates
