"""The kill switch, one path for the CLI and the dashboard: the state is written to the
ledger (a running bot reads it every cycle) and the change is recorded as an event naming
its source.
"""

from __future__ import annotations

from datetime import datetime

from bot.domain import Event, Severity
from bot.domain.ledger import TradingState, TradingStatus
from bot.persistence.repositories import Ledger


async def set_trading_state(
    ledger: Ledger, state: TradingState, *, reason: str, source: str, at: datetime
) -> TradingStatus:
    """Write the trading state and record `control.<state>` with the source (cli, web, …)."""
    status = await ledger.trading_state.set(state, reason=reason, changed_by=source, at=at)
    verb = "resume" if state is TradingState.ACTIVE else "halt"
    await ledger.events.emit(
        Event(
            f"control.{verb}",
            f"trading {state.value.upper()} by {source}: {reason}",
            at,
            Severity.ALERT if state is not TradingState.ACTIVE else Severity.INFO,
            {"state": state.value, "reason": reason, "source": source},
        )
    )
    return status
