"""Command-line times: dates and ISO times, naive ones UTC."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.cli.replay_options import parse_when
from bot.errors import UserError


def test_parse_when_date_is_midnight_utc() -> None:
    assert parse_when("2021-01-01", "--from") == datetime(2021, 1, 1, tzinfo=UTC)


def test_parse_when_offset_time_converted_to_utc() -> None:
    assert parse_when("2021-01-01T10:00+02:00", "--to") == datetime(2021, 1, 1, 8, tzinfo=UTC)


def test_parse_when_garbage_names_the_option() -> None:
    with pytest.raises(UserError, match="--from 'soon'"):
        parse_when("soon", "--from")
