"""The heartbeat: one log line on the bot's health, for the operator and the log monitor."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from bot.domain import HedgeState
from bot.trading.context import LoopContext

log = logging.getLogger(__name__)


class Heartbeat:
    """Say how the loop is doing: open hedges, equity, data age, trading state, timings."""

    def __init__(
        self, ctx: LoopContext, parts: Sequence[Callable[[], Awaitable[str]]] = ()
    ) -> None:
        self._ctx = ctx
        self._parts = tuple(parts)  # e.g. stream health

    async def beat(self) -> str:
        """Log one line: open hedges, equity, snapshot age, trading state."""
        ctx, state = self._ctx, self._ctx.state
        snap = state.latest
        age = (ctx.clock.now() - snap.taken_at).total_seconds() if snap else None
        try:
            open_count = len(await ctx.ledger.hedges.in_states([HedgeState.OPEN]))
        except Exception:
            open_count = -1
        known = state.daily.equity
        equity = f"{known:.2f} USDT" if known is not None else "unknown"
        line = f"Heartbeat: {open_count if open_count >= 0 else '?'} open hedge(s), equity {equity}"
        line += (
            f", last snapshot {'never' if age is None else f'{age:.0f}s ago'}, "
            f"trading {state.trading.value.upper()}"
            f"{', database DOWN' if not ctx.guard.healthy else ''}"
        )
        for name, samples in (("poll", state.poll_ms), ("evaluate", state.evaluate_ms)):
            if samples:
                ordered = sorted(samples)
                p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
                line += f", {name} mean {sum(ordered) / len(ordered):.1f} ms p99 {p99:.1f} ms"
        for part in self._parts:
            line += f", {await part()}"
        log.info("%s", line)
        return line
