"""The on-disk layout of ../shared/data: where each file lives, what is in it, atomic rewrites.

    binance/funding/{SYMBOL}.csv         binance/mark/{SYMBOL}-1h.csv.gz
    binance/perp/{SYMBOL}-1h.csv.gz      binance/spot/{SYMBOL}-1h.csv.gz
    binance/current_quarter/{SYMBOL}-1h.csv.gz   binance/next_quarter/{SYMBOL}-1h.csv.gz
    binance/delivery/{SYMBOL}.csv        (quarterly delivery prices; dated kinds are opt-in)
    binance/coinm_current_quarter/{SYMBOL}-1h.csv.gz  binance/coinm_next_quarter/…
    binance/coinm_delivery/{SYMBOL}.csv  (COIN-M BASEUSD quarterlies, under the spot stem)
    binance/coinm_perp/{SYMBOL}-1h.csv.gz  binance/coinm_funding/{SYMBOL}.csv  (BASEUSD_PERP)

A file is only ever replaced whole: written to a hidden temporary file next to it and
renamed over it, so an interrupted run leaves either the old or the new valid file.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bot.backtest.history import read_bars, read_funding
from bot.backtest.series import HOUR_MS
from bot.datafetch.request import Kind
from bot.datafetch.rows import header
from bot.errors import UserError


@dataclass(frozen=True, slots=True)
class OnDisk:
    """The data rows of an existing file and the span they cover (nominal times)."""

    lines: list[str]
    first_ms: int
    last_ms: int
    next_ms: int
    """`startTime` of the request that continues after the last row."""


def path_for(root: Path, kind: Kind, stem: str, venue: str = "binance") -> Path:
    """Return the file of `kind` for the symbol `stem` (`BTCUSDT`) under `root`/`venue`."""
    name = f"{stem}.csv" if kind.is_funding or kind.is_delivery else f"{stem}-1h.csv.gz"
    return root / venue / kind.value / name


def read_existing(path: Path, kind: Kind) -> OnDisk | None:
    """Read and validate an existing file; None when there is none (or it has no rows)."""
    if not path.is_file():
        return None
    try:
        raw = path.read_bytes()
        text = (gzip.decompress(raw) if path.name.endswith(".gz") else raw).decode("utf-8")
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read ({exc}); delete it to download it again") from None
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        return None
    expected = header(kind)
    if lines[0].strip() != expected:
        raise UserError(
            f"{path}: header {lines[0].strip()!r} is not {expected!r}; move the file away "
            "or pass another --out"
        )
    if len(lines) == 1:
        return None
    if kind.is_funding:
        times = read_funding(path).times
        next_ms = int(lines[-1].split(",")[1]) + 1
    elif kind.is_delivery:
        times = [int(line.split(",")[1]) for line in lines[1:]]
        next_ms = times[-1] + 1
    else:
        times = read_bars(path, HOUR_MS, with_volume=kind is not Kind.MARK).times
        next_ms = times[-1] + HOUR_MS
    return OnDisk(lines[1:], times[0], times[-1], next_ms)


def write_atomic(path: Path, kind: Kind, lines: Sequence[str]) -> None:
    """Replace `path` with the header and `lines`: temporary file, fsync, rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "\n".join([header(kind), *lines, ""]).encode("utf-8")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with tmp.open("xb") as f:
            if path.name.endswith(".gz"):
                # mtime=0 and the final name make the bytes depend on the content only.
                inner = path.name.removesuffix(".gz")
                with gzip.GzipFile(inner, "wb", compresslevel=9, fileobj=f, mtime=0) as gz:
                    gz.write(data)
            else:
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
