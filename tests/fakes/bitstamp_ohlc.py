"""The fake Bitstamp's `GET /api/v2/ohlc/<pair>/`: klines a test seeds, in Bitstamp's shape.

`seed_ohlc(fake, symbol, start, bars, price, step=3600)` writes bars; the route answers
`step` (one of Bitstamp's), `limit` (1..1000), `start` (bars from it) and `end` (with or
without `start`: the `limit` bars before it, as Bitstamp does when both are given).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.fakes.bitstamp_server import FakeBitstamp

STEPS = (60, 180, 300, 900, 1800, 3600, 7200, 14400, 21600, 43200, 86400, 259200)


class OhlcError(ValueError):
    """A bad request: the reason Bitstamp gives."""


def _key(symbol: str, step: int) -> str:
    return symbol if step == 3600 else f"{symbol}@{step}"


def seed_ohlc(
    fake: FakeBitstamp,
    symbol: str,
    start: datetime,
    bars: int,
    price: Decimal | str,
    *,
    step: int = 3600,
) -> None:
    """`bars` bars of `step` seconds of `symbol` from `start`, all at `price` (volume 2)."""
    rows = fake.ohlc.setdefault(_key(symbol, step), {})
    for h in range(bars):
        stamp = int((start + timedelta(seconds=h * step)).timestamp())
        rows[stamp] = {"timestamp": str(stamp), "open": str(price), "high": str(price),
                       "low": str(price), "close": str(price), "volume": "2.00000000"}  # fmt: skip


def answer(fake: FakeBitstamp, symbol: str, params: dict[str, str]) -> dict[str, Any]:
    """The `ohlc/` answer for `symbol`, or OhlcError."""
    step, limit = int(params.get("step", "0") or 0), int(params.get("limit", "0") or 0)
    if step not in STEPS:
        raise OhlcError(f"step: must be one of {', '.join(map(str, STEPS))}")
    if not 1 <= limit <= 1000:
        raise OhlcError("limit: must be between 1 and 1000")
    seeded = fake.ohlc.get(_key(symbol, step), {})
    rows = [seeded[t] for t in sorted(seeded)]
    if params.get("end"):
        end = int(params["end"])
        chosen = [r for r in rows if int(r["timestamp"]) <= end][-limit:]
    else:
        start = int(params.get("start", "0") or 0)
        chosen = [r for r in rows if int(r["timestamp"]) >= start][:limit]
    return {"data": {"pair": symbol, "ohlc": chosen}}
