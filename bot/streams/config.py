"""`[streams]`: WebSocket market and user data, their health limits and maintenance windows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from typing import Annotated, Self

from pydantic import Field, field_validator, model_validator

from bot.domain.frozen import FrozenModel

PositiveSeconds = Annotated[float, Field(gt=0)]

BINANCE_SPOT_STREAMS = (
    "wss://stream.binance.com:9443/ws",
    "wss://stream.binance.com:443/ws",
    "wss://data-stream.binance.vision/ws",  # market data only
)
BINANCE_FUTURES_STREAMS = ("wss://fstream.binance.com/ws",)
BINANCE_COINM_STREAMS = ("wss://dstream.binance.com/ws",)  # COIN-M user data: /ws/<listenKey>
FUTURES_STREAMS_PER_CONNECTION = 200  # Binance's USDⓈ-M limit (spot allows 1024)


class MaintenanceWindow(FrozenModel):
    """An announced exchange maintenance: UTC start and duration."""

    start: datetime
    duration_minutes: Annotated[float, Field(gt=0, le=7 * 24 * 60)]

    @field_validator("start")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError(
                f"start = {value.isoformat()}: needs a UTC offset, e.g. 2026-07-09T07:00:00Z"
            )
        return value.astimezone(UTC)

    @property
    def end(self) -> datetime:
        return self.start + timedelta(minutes=self.duration_minutes)


class StreamsConfig(FrozenModel):
    """WebSocket streams. `enabled = false` is REST polling only (the bot before streams).

    With `[exchange] spot_api_url` / `futures_api_url` pointing at another server, the stream
    URLs must be given too (`spot_ws_url`, `futures_ws_url`): streams from Binance next to
    REST from elsewhere would mix two venues, so streams stay off until they are.
    """

    enabled: bool = True
    spot_ws_url: str | None = None
    futures_ws_url: str | None = None
    spot_ws_api_url: str | None = None
    coinm_ws_url: str | None = None
    spot_ws_fallbacks: list[str] | None = None
    futures_ws_fallbacks: list[str] | None = None
    coinm_ws_fallbacks: list[str] | None = None
    symbols_per_connection: Annotated[int, Field(ge=1, le=FUTURES_STREAMS_PER_CONNECTION)] = 100
    max_quote_age_seconds: PositiveSeconds = 5.0
    silence_seconds: PositiveSeconds = 1.5
    ping_seconds: PositiveSeconds = 5.0
    settle_seconds: Annotated[float, Field(ge=0)] = 10.0
    max_spread_bps: Annotated[Decimal, Field(gt=0)] = Decimal("20")
    reconnect_max_backoff_seconds: PositiveSeconds = 5.0
    recycle_hours: Annotated[float, Field(gt=0, lt=24)] = 23.0
    listen_key_keepalive_minutes: Annotated[float, Field(gt=0, lt=60)] = 30.0
    user_data: bool = True
    maintenance: list[MaintenanceWindow] = Field(default_factory=list)
    maintenance_lead_minutes: Annotated[float, Field(ge=0)] = 10.0

    @field_validator("spot_ws_url", "futures_ws_url", "spot_ws_api_url", "coinm_ws_url")
    @classmethod
    def _ws_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("ws://", "wss://")):
            raise ValueError(f"{value!r}: must start with ws:// or wss://")
        return value.rstrip("/") if value is not None else None

    @field_validator("spot_ws_fallbacks", "futures_ws_fallbacks", "coinm_ws_fallbacks")
    @classmethod
    def _ws_schemes(cls, value: list[str] | None) -> list[str] | None:
        for url in value or ():
            if not url.startswith(("ws://", "wss://")):
                raise ValueError(f"{url!r}: must start with ws:// or wss://")
        return [u.rstrip("/") for u in value] if value is not None else None

    @model_validator(mode="after")
    def _windows_do_not_overlap(self) -> Self:
        ordered = sorted(self.maintenance, key=lambda w: w.start)
        for before, after in pairwise(ordered):
            if after.start < before.end:
                raise ValueError(
                    f"maintenance: windows starting {before.start.isoformat()} and "
                    f"{after.start.isoformat()} overlap; merge them into one"
                )
        return self

    def spot_endpoints(self) -> list[str]:
        """Spot stream endpoints, tried in this order (failover)."""
        if self.spot_ws_url is None:
            return list(self.spot_ws_fallbacks or BINANCE_SPOT_STREAMS)
        return [self.spot_ws_url, *(self.spot_ws_fallbacks or [])]

    def futures_endpoints(self) -> list[str]:
        """USDⓈ-M stream endpoints, tried in this order (failover)."""
        if self.futures_ws_url is None:
            return list(self.futures_ws_fallbacks or BINANCE_FUTURES_STREAMS)
        return [self.futures_ws_url, *(self.futures_ws_fallbacks or [])]

    def coinm_endpoints(self) -> list[str]:
        """COIN-M (dapi) stream endpoints, tried in this order (failover)."""
        if self.coinm_ws_url is None:
            return list(self.coinm_ws_fallbacks or BINANCE_COINM_STREAMS)
        return [self.coinm_ws_url, *(self.coinm_ws_fallbacks or [])]
