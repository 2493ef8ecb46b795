"""Look-ahead checks for replayed history: damage a copy after a cutoff, observe a source.

`damaged_copy` rewrites a history directory so that everything not yet known at `cutoff`
is wrong: rows at or after it are overwritten (or dropped), and the bar in progress at the
cutoff keeps its open but gets a wrong high, low, close and volume. `observe` records every
answer a `ReplaySource` gives at one clock time, so two sources can be compared.
"""

from __future__ import annotations

import gzip
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from bot.backtest import ReplaySource
from bot.clock import SimulatedClock
from bot.domain import MarketKind
from bot.errors import ExchangeError

_BAD_RATE = "0.0777"
_BAD_VOLUME = "987654321"


def _read(path: Path) -> list[str]:
    raw = path.read_bytes()
    if path.name.endswith(".gz"):
        raw = gzip.decompress(raw)
    return raw.decode().splitlines()


def _write(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(gzip.compress(data, compresslevel=1) if path.name.endswith(".gz") else data)


def _triple(text: str) -> str:
    return str(Decimal(text) * 3)


def _damage_bar(cells: list[str], keep_open: bool) -> list[str]:
    out = list(cells)
    for i in range(2 if keep_open else 1, 5):  # columns open, high, low, close
        out[i] = _triple(cells[i])
    if len(out) > 5:
        out[5] = _BAD_VOLUME
    return out


def damaged_copy(src: Path, dst: Path, cutoff: datetime, *, truncate: bool = False) -> Path:
    """Copy the history at `src` to `dst`, damaging everything unknown before `cutoff`."""
    for path in sorted((src / "binance").rglob("*.csv*")):
        kind = path.parent.name
        bar = timedelta(hours=8 if "-8h" in path.name else 1)
        lines = _read(path)
        out = [lines[0]]
        for line in lines[1:]:
            cells = line.split(",")
            start = datetime.fromisoformat(cells[0])
            if kind == "funding":
                if start >= cutoff:
                    if truncate:
                        continue
                    cells[2] = _BAD_RATE
            elif start >= cutoff:
                if truncate:
                    continue
                cells = _damage_bar(cells, keep_open=False)
            elif start + bar >= cutoff:  # still forming at some time before the cutoff
                cells = _damage_bar(cells, keep_open=True)
            out.append(",".join(cells))
        _write(dst / path.relative_to(src), out)
    return dst


async def observe(
    source: ReplaySource, clock: SimulatedClock, when: datetime, *, full_history: bool = False
) -> dict[str, Any]:
    """Move `clock` to `when` and record every answer of `source`."""
    clock.set(when)
    seen: dict[str, Any] = {
        "instruments": dict(await source.load_instruments()),
        "pairs": list(await source.pairs()),
        "funding": dict(await source.fetch_funding_snapshot()),
        "spot": dict(await source.fetch_best_quotes(MarketKind.SPOT)),
        "perp": dict(await source.fetch_best_quotes(MarketKind.PERPETUAL)),
        "volume_spot": dict(await source.fetch_volumes_24h(MarketKind.SPOT)),
        "volume_perp": dict(await source.fetch_volumes_24h(MarketKind.PERPETUAL)),
    }
    for symbol, instrument in source.all_instruments().items():
        try:
            seen[f"book {symbol}"] = await source.fetch_order_book(symbol, depth=5)
        except ExchangeError as exc:
            seen[f"book {symbol}"] = repr(exc)
        if instrument.kind is MarketKind.PERPETUAL:
            since = when - timedelta(days=10)
            seen[f"history {symbol}"] = list(await source.fetch_funding_history(symbol, since))
            seen[f"history+ {symbol}"] = list(
                await source.fetch_funding_history(symbol, since, when + timedelta(days=365))
            )
            if full_history:
                epoch = when - timedelta(days=10_000)
                seen[f"history* {symbol}"] = list(await source.fetch_funding_history(symbol, epoch))
    return seen
