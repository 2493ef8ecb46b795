"""Start-up check of an explicit universe: every pair must be listed on both markets.

A pair written in the wrong form (`BTCUSDT`) or not listed would otherwise leave the bot
running and trading nothing, silently; instead start-up refuses it, naming the nearest pair
that is listed.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from bot.errors import UserError


def _squash(symbol: str) -> str:
    return symbol.upper().replace("/", "").replace(":", "").replace("-", "").replace("_", "")


def nearest_listed(symbol: str, listed: Iterable[str]) -> str | None:
    """The listed pair closest to `symbol` (ignoring case and separators), if any is close."""
    by_squashed = {_squash(s): s for s in listed}
    match = difflib.get_close_matches(_squash(symbol), list(by_squashed), n=1, cutoff=0.5)
    return by_squashed[match[0]] if match else None


def check_explicit_symbols(symbols: Iterable[str], listed: Iterable[str], venue: str) -> None:
    """Raise UserError (one line per pair) for each of `symbols` not among `listed` pairs."""
    listed = sorted(set(listed))
    problems: list[str] = []
    for symbol in symbols:
        if symbol in listed:
            continue
        nearest = nearest_listed(symbol, listed)
        hint = f"; nearest listed: {nearest!r}" if nearest else "; `carrybot scan` lists them"
        if "/" not in symbol or ":" in symbol:
            what = "must be a spot pair written BASE/QUOTE"
        else:
            what = f"is not listed on both markets of {venue} (spot and perpetual)"
        problems.append(f"universe.symbols: {symbol!r} {what}{hint}")
    if problems:
        raise UserError(problems)
