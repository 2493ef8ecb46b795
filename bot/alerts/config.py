"""The `[alerts]` section. Channel secrets (bot token, chat id, webhook URL) come only from
the environment: TELEGRAM_BOT_TOKEN, TELEGRAM_CHAT_ID, CARRYBOT_ALERT_WEBHOOK_URL.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AnyHttpUrl, Field

from bot.domain.frozen import FrozenModel

PositiveSeconds = Annotated[float, Field(gt=0)]


class AlertsConfig(FrozenModel):
    """When and how alerts are sent (the channels are on when their secrets are set)."""

    enabled: bool = True
    outage_seconds: PositiveSeconds = 60.0
    max_per_minute: Annotated[int, Field(ge=1, le=600)] = 20
    retry_attempts: Annotated[int, Field(ge=1, le=20)] = 5
    retry_backoff_seconds: PositiveSeconds = 2.0
    timeout_seconds: PositiveSeconds = 10.0
    queue_size: Annotated[int, Field(ge=10, le=100000)] = 1000
    telegram_api_url: AnyHttpUrl = AnyHttpUrl("https://api.telegram.org")
