"""The `[web]` section: where the dashboard listens (the token comes from the environment)."""

from __future__ import annotations

import ipaddress
from typing import Annotated

from pydantic import Field

from bot.domain.frozen import FrozenModel


class WebConfig(FrozenModel):
    """The dashboard, JSON API and /metrics served by the bot process."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8321


def is_loopback(host: str) -> bool:
    """True when `host` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
