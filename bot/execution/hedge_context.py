"""What every part of the hedge executor shares: the ports, the settings, and event output."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from bot.clock import Clock
from bot.config import RiskConfig
from bot.domain import Event, EventSink, Severity
from bot.exchange.port import ExchangePort
from bot.execution.account_setup import AccountSetup
from bot.execution.legs import LegResult, LegSender
from bot.persistence.port import LedgerPort

log = logging.getLogger(__name__)

ZERO = Decimal(0)


@dataclass(slots=True)  # not frozen: `base_fee` follows the live account's fees
class HedgeContext:
    """The exchange, ledger, clock, account set-up and limits the executor's parts act on.

    `base_fee` is the spot fee rate a buy pays in the base asset (0 where it is paid in
    quote), so a buy is grossed up by it.
    """

    exchange: ExchangePort
    ledger: LedgerPort
    clock: Clock
    setup: AccountSetup
    risk: RiskConfig
    base_fee: Decimal
    events: EventSink
    sender: LegSender

    async def emit(
        self,
        kind: str,
        message: str,
        severity: Severity,
        data: Mapping[str, object],
        hedge_id: int | None = None,
    ) -> None:
        """Log `message` and send it as an event."""
        log.log(
            logging.WARNING if severity in (Severity.ALERT, Severity.ERROR) else logging.INFO,
            "%s",
            message,
        )
        await self.events.emit(
            Event(kind, message, self.clock.now(), severity, dict(data), hedge_id)
        )


def outcome(result: LegResult) -> str:
    """Describe how one leg's order ended, for a reason or an alert."""
    if result.error is None:
        return "filled" if result.filled > 0 else "no fill"
    return str(result.error)
