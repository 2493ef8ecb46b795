"""Funding bookkeeping of the simulated account: who held what when, what has been settled.

Binance pays funding on the position held at the funding time. Settlement can come later
than that (history rows are published with a lag), so the book keeps a timeline of position
sizes per symbol and a window per symbol from which funding may still be unsettled. A
window opens when a symbol gets a position and closes once a funding time later than the
symbol went flat has been settled.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from bot.domain import FundingPayment, PositionSide
from bot.exchange import sim_state as codec

Sizes = dict[PositionSide, Decimal]


@dataclass(slots=True)
class FundingWindow:
    """Funding times from `start` on may be unsettled; `end` is when the symbol went flat."""

    start: datetime
    end: datetime | None = None


class FundingBook:
    """Exposure timeline, settled funding times and payments of one account."""

    def __init__(self) -> None:
        self._payments: list[FundingPayment] = []
        # _latest[i]: the latest funding time among _payments[: i + 1] (never decreases).
        self._latest: list[datetime] = []
        self._settled: set[tuple[str, datetime]] = set()
        self._windows: dict[str, FundingWindow] = {}
        self._exposure: dict[str, list[tuple[datetime, Sizes]]] = {}
        self._income_seq = 0

    def record_exposure(self, symbol: str, sizes: Sizes, at: datetime) -> None:
        """Note the symbol's signed sizes per position side from `at` on."""
        timeline = self._exposure.setdefault(symbol, [])
        was_exposed = bool(timeline and timeline[-1][1])
        if timeline and timeline[-1][0] == at:
            timeline[-1] = (at, dict(sizes))
        else:
            timeline.append((at, dict(sizes)))
        window = self._windows.get(symbol)
        if sizes and not was_exposed:
            if window is None:
                self._windows[symbol] = FundingWindow(at)
            else:
                window.end = None
        elif was_exposed and not sizes and window is not None:
            window.end = at

    def sizes_at(self, symbol: str, when: datetime) -> Sizes:
        """Return the signed sizes per position side held at `when` (empty: flat)."""
        for at, sizes in reversed(self._exposure.get(symbol, [])):
            if at <= when:
                return dict(sizes)
        return {}

    def is_settled(self, symbol: str, when: datetime) -> bool:
        return (symbol, when) in self._settled

    def settle(
        self,
        symbol: str,
        when: datetime,
        rate: Decimal,
        mark: Decimal,
        *,
        asset: str = "USDT",
        unit_value: Decimal | None = None,
        quantum: Decimal | None = None,
    ) -> FundingPayment | None:
        """Settle one funding time once; return the payment (None when flat or done).

        A unit of position is worth `mark` (USDⓈ-M), or `unit_value` in `asset` (COIN-M:
        contract size / mark, in the coin); `quantum` rounds the amount (8 decimals of coin).
        """
        payment = None
        if (symbol, when) not in self._settled:
            self._settled.add((symbol, when))
            net = sum(self.sizes_at(symbol, when).values(), Decimal(0))
            if net != 0:
                self._income_seq += 1
                amount = -net * (mark if unit_value is None else unit_value) * rate
                payment = FundingPayment(
                    symbol=symbol,
                    funding_time=when,
                    amount=amount.quantize(quantum) if quantum is not None else amount,
                    asset=asset,
                    rate=rate,
                    mark_price=mark,
                    position_size=net,
                    income_id=str(self._income_seq),
                )
                self._append(payment)
        self._advance(symbol, when)
        return payment

    def due(self) -> dict[str, datetime]:
        """Return, per symbol, the time from which funding may still be unsettled."""
        return {symbol: w.start for symbol, w in sorted(self._windows.items())}

    def payments(
        self, since: datetime | None = None, symbol: str | None = None
    ) -> list[FundingPayment]:
        """Return the payments at or after `since`, oldest first."""
        # Payments before `start` are all older than `since`: skip them without a look.
        start = 0 if since is None else bisect_left(self._latest, since)
        return [
            p
            for p in self._payments[start:]
            if (since is None or p.funding_time >= since) and (symbol is None or p.symbol == symbol)
        ]

    def _append(self, payment: FundingPayment) -> None:
        latest = self._latest[-1] if self._latest else payment.funding_time
        self._payments.append(payment)
        self._latest.append(max(latest, payment.funding_time))

    def _advance(self, symbol: str, when: datetime) -> None:
        window = self._windows.get(symbol)
        if window is None or when < window.start:
            return
        window.start = when
        if window.end is not None and when >= window.end:
            del self._windows[symbol]
            self._exposure.pop(symbol, None)
            return
        # Keep the entry in force at `when` and everything after it.
        timeline = self._exposure.get(symbol, [])
        keep = max((i for i, (at, _) in enumerate(timeline) if at <= when), default=0)
        del timeline[:keep]

    # --- persistence --------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        """Return the book as JSON data."""
        enc_time = codec.enc_time
        return {
            "funding": [codec.encode_payment(p) for p in self._payments],
            "settled": [[s, enc_time(t)] for s, t in sorted(self._settled)],
            "funding_windows": {
                s: {"start": enc_time(w.start), "end": enc_time(w.end) if w.end else None}
                for s, w in sorted(self._windows.items())
            },
            "exposure": {
                s: [
                    [enc_time(t), {side.value: str(v) for side, v in sizes.items()}]
                    for t, sizes in timeline
                ]
                for s, timeline in sorted(self._exposure.items())
            },
            "income_seq": self._income_seq,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> FundingBook:
        """Rebuild a book from `to_state` data (raises KeyError/ValueError when malformed)."""
        time = codec.time
        book = cls()
        for payment in state["funding"]:
            book._append(codec.decode_payment(payment))
        book._settled = {(s, time(t)) for s, t in state["settled"]}
        book._windows = {
            s: FundingWindow(time(w["start"]), codec.opt_time(w["end"]))
            for s, w in state["funding_windows"].items()
        }
        book._exposure = {
            s: [
                (time(t), {PositionSide(k): codec.dec(v) for k, v in sizes.items()})
                for t, sizes in timeline
            ]
            for s, timeline in state["exposure"].items()
        }
        book._income_seq = int(state["income_seq"])
        return book
