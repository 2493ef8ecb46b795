"""JSON for the control API: domain dataclasses out, instruments and times in."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from bot.clock import utc_from_ms
from bot.domain import Instrument, MarketKind


def to_json(value: Any) -> Any:
    """Turn dataclasses, Decimals, datetimes and enums into JSON data (Decimal as string)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Decimal):
        return f"{value:f}"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    return value


def parse_time(value: Any) -> datetime:
    """Accept epoch milliseconds or an ISO-8601 string with a timezone."""
    if isinstance(value, int | float):
        return utc_from_ms(value)
    parsed = datetime.fromisoformat(str(value))
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp {value!r} needs a timezone")
    return parsed


def optional_decimal(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def instrument(data: dict[str, Any]) -> Instrument:
    """Build an Instrument from its `to_json` form."""
    decimals = (
        "tick_size",
        "step_size",
        "min_qty",
        "min_notional",
        "max_qty",
        "market_step_size",
        "market_min_qty",
        "market_max_qty",
        "contract_size",
    )
    kwargs: dict[str, Any] = dict(data)
    kwargs["kind"] = MarketKind(data["kind"])
    for name in decimals:
        if name in kwargs:
            kwargs[name] = optional_decimal(kwargs[name])
    for name in ("expiry", "listed_at"):
        if kwargs.get(name) is not None:
            kwargs[name] = parse_time(kwargs[name])
    return Instrument(**kwargs)
