"""Logging: text or JSON lines, and a redaction pass so secrets never reach a log line."""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

_PATTERNS = [
    # query-string / form values of Binance signed requests
    re.compile(r"(?i)(signature|apikey|api_key|secret|api_secret|password)=([^&\s'\",}]+)"),
    # headers and dict reprs: 'X-MBX-APIKEY': 'abc', "secret": "abc"
    re.compile(
        r"(?i)(['\"]?(?:x-mbx-apikey|apikey|api_key|secret|api_secret|password)['\"]?\s*:\s*)"
        r"(['\"])(.*?)\2"
    ),
]
_REDACTED = "***"


class Redactor:
    """Replace known secret values and secret-looking fields with ***."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def add(self, secrets: Iterable[str]) -> None:
        merged = set(self._secrets) | {s for s in secrets if s and len(s) >= 4}
        self._secrets = sorted(merged, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, _REDACTED)
        text = _PATTERNS[0].sub(lambda m: f"{m.group(1)}={_REDACTED}", text)
        return _PATTERNS[1].sub(lambda m: f"{m.group(1)}{m.group(2)}{_REDACTED}{m.group(2)}", text)


REDACTOR = Redactor()


class RedactingFormatter(logging.Formatter):
    """Format with an inner formatter, then redact the whole text (tracebacks included)."""

    def __init__(self, inner: logging.Formatter, redactor: Redactor = REDACTOR) -> None:
        super().__init__()
        self._inner = inner
        self._redact = redactor

    def format(self, record: logging.LogRecord) -> str:
        return self._redact(self._inner.format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, plus any `extra=` fields."""

    _STD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in self._STD and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


def configure_logging(level: str = "INFO", fmt: str = "text", secrets: Iterable[str] = ()) -> None:
    """Install one stderr handler on the root logger; register `secrets` for redaction."""
    REDACTOR.add(secrets)
    inner: logging.Formatter
    if fmt == "json":
        inner = JsonFormatter()
    else:
        inner = logging.Formatter(
            "%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S%z"
        )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter(inner))
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_carrybot", False):
            root.removeHandler(old)
    handler._carrybot = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    # ccxt logs full requests (headers with the API key) at DEBUG when verbose; keep it quiet.
    logging.getLogger("ccxt").setLevel(max(logging.INFO, logging.getLevelName(level)))
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.getLogger("aiosqlite").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
