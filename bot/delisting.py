"""Hedges on pairs that stop trading: no new entry there, and the held hedge is closed.

A perpetual given a delivery date is about to be delisted; one in SETTLING, CLOSE or
PENDING_TRADING, or a spot pair in BREAK/HALT, cannot be traded normally. The market data's
status refresh (every `instrument_status_seconds`) lists such pairs in
`MarketSnapshot.untradable`; this turns them into closes, with one alert per hedge.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from bot.clock import Clock
from bot.domain import CloseHedge, Event, EventSink, Hedge, HedgeState, Intent, OpenHedge, Severity
from bot.domain.market import MarketSnapshot


class DelistingWatch:
    """Closes hedges whose pair no longer trades, and keeps entries off those pairs."""

    def __init__(self, events: EventSink, clock: Clock) -> None:
        self._events = events
        self._clock = clock
        self._alerted: set[int] = set()

    async def closes(self, hedges: Iterable[Hedge], snap: MarketSnapshot) -> list[CloseHedge]:
        """A close for every OPEN hedge on an untradable pair (alerting once per hedge)."""
        if not snap.untradable:
            return []
        out: list[CloseHedge] = []
        for hedge in hedges:
            reason = snap.untradable.get(hedge.pair)
            if reason is None or hedge.state is not HedgeState.OPEN:
                continue
            if not _concerns(reason, hedge.pair, hedge.perp_symbol):
                continue  # e.g. a dated hedge on a pair whose perpetual is delisted
            if hedge.id not in self._alerted:
                self._alerted.add(hedge.id)
                await self._events.emit(
                    Event(
                        "hedge.delisting",
                        f"hedge {hedge.id} on {hedge.pair}: {reason}; closing it",
                        self._clock.now(),
                        Severity.ALERT,
                        {"pair": hedge.pair, "reason": reason},
                        hedge.id,
                    )
                )
            out.append(CloseHedge(hedge.id, reason=f"delisting: {reason}"))
        return out

    @staticmethod
    def merge(
        closes: Sequence[CloseHedge], intents: Iterable[Intent], snap: MarketSnapshot
    ) -> list[Intent]:
        """`closes` first, then the strategy's intents minus entries on untradable pairs and
        anything else about a hedge being closed here."""
        closing = {c.hedge_id for c in closes}
        kept: list[Intent] = list(closes)
        for intent in intents:
            if isinstance(intent, OpenHedge):
                reason = snap.untradable.get(intent.pair)
                short = intent.future_symbol or f"{intent.pair}:{intent.pair.split('/')[-1]}"
                if reason is not None and _concerns(reason, intent.pair, short):
                    continue
            elif getattr(intent, "hedge_id", None) in closing:
                continue
            kept.append(intent)
        return kept


def _concerns(reason: str, spot_symbol: str, short_symbol: str) -> bool:
    """Whether an untradable reason (it starts with the symbol) is about one of these legs."""
    return reason.startswith((f"{spot_symbol} ", f"{short_symbol} "))
