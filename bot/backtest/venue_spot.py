"""The spot leg of a backtest from another venue's klines (`[venues] spot = "bitstamp"`).

Layout beside Binance's (what `carrybot data fetch --venue bitstamp` writes):

    bitstamp/spot/{BASE}{QUOTE}-1h.csv.gz     date, open, high, low, close, volume
    bitstamp/spot/USDTUSD-1h.csv.gz           the USDT/USD rate, for USD pairs

A pair's perpetual and funding stay Binance's; its spot bars are replaced by the venue's.
A USD pair's bars are shown in USDT terms, as the VenueRouter shows them live: each bar's
open and close divided by the open and close of the USDT/USD bar of the same hour (a bar
without a rate bar is dropped); volumes stay in the base asset, so quote volumes are in
USDT terms too. The replay then trades `X/USDT` against `X/USDT:USDT` at those prices.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path

from bot.backtest.history import SymbolHistory, read_bar_rows
from bot.backtest.series import HOUR_MS, BarSeries
from bot.errors import UserError

log = logging.getLogger(__name__)

RATE_PAIR = "USDTUSD"
VENUE_QUOTES = ("USD", "USDT")  # tried in this order when the universe names no pair


def venue_pairs(symbols: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """Map a cross-venue universe (`BTC/USD`, `ETH/USDT`) to Binance names and quotes.

    Returns the Binance symbols to load (`BTC/USDT`: the perpetual's) and each base's spot
    quote on the venue (`{"BTC": "USD"}`).
    """
    binance, quotes = [], {}
    for symbol in symbols:
        base, _, quote = symbol.split(":", 1)[0].partition("/")
        if not base or quote not in VENUE_QUOTES:
            raise UserError(
                f"universe.symbols: {symbol!r} is not a BASE/USD or BASE/USDT spot pair of "
                "the spot venue"
            )
        binance.append(f"{base}/USDT")
        quotes[base] = quote
    return binance, quotes


def with_venue_spot(
    root: Path,
    venue: str,
    symbols: Mapping[str, SymbolHistory],
    quotes: Mapping[str, str],
    *,
    explicit: bool,
) -> dict[str, SymbolHistory]:
    """Replace each symbol's spot bars by the venue's (in USDT terms); skip or refuse others."""
    directory = root / venue / "spot"
    if not directory.is_dir():
        raise UserError(
            f"{directory}: no {venue} spot klines; fetch them with "
            f"`carrybot data fetch --venue {venue} --out {root}`"
        )
    rate: tuple[dict[int, Decimal], dict[int, Decimal]] | None = None
    out: dict[str, SymbolHistory] = {}
    for name, sym in symbols.items():
        wanted = [quotes[sym.base]] if sym.base in quotes else list(VENUE_QUOTES)
        found = next(
            ((q, p) for q in wanted if (p := _path(directory, f"{sym.base}{q}")) is not None),
            None,
        )
        if found is None:
            missing = directory / f"{sym.base}{wanted[0]}-1h.csv.gz"
            if explicit:
                raise UserError(f"{missing}: file not found; fetch it or drop {sym.base}")
            log.warning("Skipping %s: no %s spot klines (%s)", name, venue, missing)
            continue
        quote, path = found
        times, opens, closes, volumes = read_bar_rows(path, HOUR_MS, with_volume=True)
        if quote == "USD":
            rate = rate or _rate(directory)
            times, opens, closes, volumes = _in_usdt(path, times, opens, closes, volumes, rate)
        spot = BarSeries.from_bars(HOUR_MS, times, opens, closes, volumes)
        out[name] = dataclasses.replace(sym, spot=spot)
        log.info("%s: spot leg from %s %s/%s (%d bars)", name, venue, sym.base, quote, len(times))
    if not out:
        raise UserError(f"{directory}: no pair of the history has {venue} spot klines")
    return out


def _path(directory: Path, stem: str) -> Path | None:
    for suffix in ("-1h.csv.gz", "-1h.csv"):
        path = directory / f"{stem}{suffix}"
        if path.is_file():
            return path
    return None


def _rate(directory: Path) -> tuple[dict[int, Decimal], dict[int, Decimal]]:
    path = _path(directory, RATE_PAIR)
    if path is None:
        raise UserError(
            f"{directory / RATE_PAIR}-1h.csv.gz: file not found; USD pairs are converted to "
            "USDT at the USDT/USD rate of each hour (fetch USDT/USD too)"
        )
    times, opens, closes, _ = read_bar_rows(path, HOUR_MS, with_volume=True)
    return dict(zip(times, opens, strict=True)), dict(zip(times, closes, strict=True))


def _in_usdt(
    path: Path,
    times: list[int],
    opens: list[Decimal],
    closes: list[Decimal],
    volumes: list[Decimal],
    rate: tuple[dict[int, Decimal], dict[int, Decimal]],
) -> tuple[list[int], list[Decimal], list[Decimal], list[Decimal]]:
    rate_open, rate_close = rate
    kept_t: list[int] = []
    kept_o: list[Decimal] = []
    kept_c: list[Decimal] = []
    kept_v: list[Decimal] = []
    for t, o, c, v in zip(times, opens, closes, volumes, strict=True):
        ro, rc = rate_open.get(t), rate_close.get(t)
        if ro is None or rc is None:
            continue
        kept_t.append(t)
        kept_o.append(o / ro)
        kept_c.append(c / rc)
        kept_v.append(v)
    dropped = len(times) - len(kept_t)
    if dropped:
        log.warning("%s: %d bars without a USDT/USD bar of the same hour dropped", path, dropped)
    if not kept_t:
        raise UserError(f"{path}: no bar has a USDT/USD bar of the same hour")
    return kept_t, kept_o, kept_c, kept_v
