"""What runs beside the trading loop for its operator: the dashboard (with /metrics) and the
alerts. `carrybot run` builds one `Operations`; both parts are optional and neither can
stop or slow the loop (the dashboard serves in the same event loop, alerts go out on
background tasks).
"""

from __future__ import annotations

import logging
from decimal import Decimal

from bot.alerts import AlertDispatcher, AlertingEventSink, build_alerts
from bot.clock import Clock
from bot.config import Config
from bot.persistence.outage import BufferedEventSink, OutageGuard
from bot.persistence.repositories import Ledger
from bot.reporting import build_status
from bot.settings import Settings
from bot.trading import TradingLoop
from bot.web import DashboardServer, Metrics, start_dashboard
from bot.web.live import LoopProbe

log = logging.getLogger(__name__)


class Operations:
    """The dashboard and alerts of one bot run."""

    def __init__(
        self, config: Config, settings: Settings, ledger: Ledger, clock: Clock, mode: str
    ) -> None:
        self.config = config
        self.ledger = ledger
        self.clock = clock
        self.mode = mode
        self.token = settings.web_token.get_secret_value() if settings.web_token else None
        self.metrics = Metrics()
        self.alerts: AlertDispatcher | None = build_alerts(
            config.alerts, settings, clock, describe_hedge=self._hedge_net
        )
        self.dashboard: DashboardServer | None = None

    def event_sink(self, guard: OutageGuard) -> BufferedEventSink:
        """The bot's event sink; it feeds the alerts too when a channel is configured."""
        if self.alerts is None:
            return BufferedEventSink(self.ledger.events, guard)
        self.alerts.start()
        return AlertingEventSink(self.ledger.events, guard, self.alerts)

    async def start(self, loop: TradingLoop) -> None:
        """Serve the dashboard and watch the loop's state for alerts."""
        channels = self.alerts.health if self.alerts is not None else None
        probe = LoopProbe(loop, self.mode, channels)
        if self.alerts is not None:
            self.alerts.watch(probe, self._state_reason)
        self.dashboard = await start_dashboard(
            self.config.web,
            self.ledger,
            self.clock,
            token=self.token,
            leverage=self.config.exchange.leverage,
            live=probe,
            metrics=self.metrics,
        )

    async def stop(self) -> None:
        if self.dashboard is not None:
            await self.dashboard.stop()
            self.dashboard = None
        if self.alerts is not None:
            await self.alerts.stop()

    async def _state_reason(self) -> str:
        status = await self.ledger.trading_state.get()
        return f"{status.reason}, by {status.changed_by}" if status else "-"

    async def _hedge_net(self, hedge_id: int) -> str | None:
        report = await build_status(
            self.ledger, now=self.clock.now(), leverage=self.config.exchange.leverage
        )
        for line in report.open + report.closed:
            if line.hedge.id == hedge_id:
                p = line.pnl
                return (
                    f"net {_m(p.net)} USDT: funding {_m(p.funding)}, basis {_m(p.basis_pnl)}, "
                    f"fees {_m(p.fees)}"
                )
        return None


def _m(value: Decimal) -> str:
    return f"{value:,.2f}"
