"""Alerts to Telegram and a JSON webhook: rules (`rules.py`), channels (`channels.py`) and a
dispatcher that never blocks the loop (`dispatcher.py`). `build_alerts` wires them from
`[alerts]` and the environment; `AlertingEventSink` feeds them every event the bot emits.
"""

from __future__ import annotations

from bot.alerts.channels import Channel, TelegramChannel, WebhookChannel
from bot.alerts.config import AlertsConfig
from bot.alerts.dispatcher import AlertDispatcher, Describe
from bot.clock import Clock
from bot.domain import Event
from bot.persistence.outage import BufferedEventSink, OutageGuard
from bot.settings import Settings

__all__ = ["AlertDispatcher", "AlertingEventSink", "AlertsConfig", "build_alerts"]


def build_alerts(
    config: AlertsConfig, settings: Settings, clock: Clock, *, describe_hedge: Describe | None
) -> AlertDispatcher | None:
    """The dispatcher for the channels whose secrets are set, or None when there are none."""
    if not config.enabled:
        return None
    channels: list[Channel] = []
    if settings.telegram_bot_token is not None and settings.telegram_chat_id:
        channels.append(
            TelegramChannel(
                str(config.telegram_api_url),
                settings.telegram_bot_token.get_secret_value(),
                settings.telegram_chat_id,
            )
        )
    if settings.alert_webhook_url is not None:
        channels.append(WebhookChannel(settings.alert_webhook_url.get_secret_value()))
    if not channels:
        return None
    return AlertDispatcher(config, channels, clock, describe_hedge=describe_hedge)


class AlertingEventSink(BufferedEventSink):
    """The bot's event sink (buffered through database outages) that also feeds the alerts."""

    def __init__(self, inner: object, guard: OutageGuard, alerts: AlertDispatcher) -> None:
        super().__init__(inner, guard)
        self._alerts = alerts

    async def emit(self, event: Event) -> None:
        self._alerts.observe_event(event)
        await super().emit(event)
