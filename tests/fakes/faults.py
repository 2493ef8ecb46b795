"""Fault injection for the fake Binance server: per endpoint, optionally per symbol, N times."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any


class FaultKind(StrEnum):
    REJECT = "reject"  # answer `status` with {"code": code, "msg": msg} without processing
    DELAY = "delay"  # process the request, then wait `delay_ms` before answering
    RATE_LIMIT = "rate_limit"  # HTTP 429, -1003, Retry-After
    BAN = "ban"  # HTTP 418, -1003, Retry-After
    SERVER_ERROR = "server_error"  # HTTP `status` (5xx); `accept` processes the request first
    DROP = "drop"  # process the request, then close the socket without answering
    PARTIAL_FILL = "partial_fill"  # fill only `ratio` of a market order
    BODY = "body"  # answer `status` with `body` (malformed responses) without processing


@dataclass
class Fault:
    """One injected fault. `times=None` means forever; `path` is e.g. `/fapi/v1/order`, or
    `*` for every endpoint (an exchange outage)."""

    kind: FaultKind
    path: str
    method: str = "*"
    symbol: str | None = None  # exchange symbol (BTCUSDT); None matches every request
    times: int | None = 1
    code: int = -1000
    msg: str = "An unknown error occurred while processing the request."
    status: int | None = None  # default: 400 reject, 503 server error, 200 body
    delay_ms: int = 0
    retry_after: int = 1
    accept: bool = False
    ratio: Decimal = Decimal("0.5")
    body: Any = None

    def matches(self, method: str, path: str, symbol: str | None) -> bool:
        if self.times is not None and self.times <= 0:
            return False
        if self.method not in ("*", method) or self.path not in ("*", path):
            return False
        return self.symbol is None or self.symbol == symbol

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["ratio"] = str(self.ratio)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Fault:
        data = dict(data)
        data["kind"] = FaultKind(data["kind"])
        if "ratio" in data:
            data["ratio"] = Decimal(str(data["ratio"]))
        return cls(**data)


class FaultBook:
    """The active faults; the first matching one fires and uses up one of its `times`."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> Fault:
        self._faults.append(fault)
        return fault

    def clear(self) -> None:
        self._faults.clear()

    def active(self) -> list[Fault]:
        return [f for f in self._faults if f.times is None or f.times > 0]

    def take(self, method: str, path: str, symbol: str | None) -> Fault | None:
        """Return the first fault matching this request and count it as fired."""
        for fault in self._faults:
            if fault.matches(method, path, symbol):
                if fault.times is not None:
                    fault.times -= 1
                return fault
        return None
