"""Secrets never reach a log line, in either format, tracebacks included."""

from __future__ import annotations

import io
import logging

import pytest

from bot.logsetup import JsonFormatter, RedactingFormatter, Redactor

SECRET = "Zx9SECRETvalue0123456789abcdefghijklmnopqrstuvw"


def render(fmt: logging.Formatter, msg: str, *args: object, exc: bool = False) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingFormatter(fmt, Redactor([SECRET])))
    logger = logging.getLogger("test.redaction")
    logger.handlers = [handler]
    logger.propagate = False
    if exc:
        try:
            raise RuntimeError(f"boom with {SECRET}")
        except RuntimeError:
            logger.exception(msg, *args)
    else:
        logger.warning(msg, *args)
    return stream.getvalue()


@pytest.mark.parametrize("formatter", [logging.Formatter("%(message)s"), JsonFormatter()])
def test_known_secret_is_redacted_everywhere(formatter: logging.Formatter) -> None:
    out = render(formatter, "key is %s", SECRET, exc=True)

    assert SECRET not in out
    assert "***" in out


def test_signature_and_api_key_fields_are_redacted_even_if_unknown() -> None:
    out = render(
        logging.Formatter("%(message)s"),
        "GET /api/v3/account?timestamp=1&signature=abcdef0123 headers {'X-MBX-APIKEY': 'anotherkey'}",
    )

    assert "abcdef0123" not in out
    assert "anotherkey" not in out
