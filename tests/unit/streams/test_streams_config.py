"""`[streams]`: validation lines, endpoint lists, when streams stay off, maintenance windows."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.config import config_from_dict
from bot.errors import UserError
from bot.streams.config import BINANCE_SPOT_STREAMS
from bot.streams.factory import streams_off_reason
from bot.streams.gate import maintenance_block


def _config(streams: dict[str, object], exchange: dict[str, object] | None = None):  # type: ignore[no-untyped-def]
    return config_from_dict({"streams": streams, "exchange": exchange or {}})


def test_defaults_run_streams_on_binance_with_spot_failover() -> None:
    config = _config({})
    assert streams_off_reason(config) is None
    assert config.streams.spot_endpoints() == list(BINANCE_SPOT_STREAMS)
    assert config.streams.futures_endpoints() == ["wss://fstream.binance.com/ws"]


def test_an_override_is_the_only_endpoint_unless_fallbacks_are_given() -> None:
    config = _config({"spot_ws_url": "ws://h/stream/ws/", "spot_ws_fallbacks": ["ws://g/ws"]})
    assert config.streams.spot_endpoints() == ["ws://h/stream/ws", "ws://g/ws"]


def test_rest_pointed_elsewhere_without_stream_urls_keeps_streams_off() -> None:
    reason = streams_off_reason(_config({}, {"spot_api_url": "http://127.0.0.1:1"}))
    assert reason is not None and "streams.spot_ws_url" in reason
    assert streams_off_reason(_config({"enabled": False})) == "[streams] enabled = false"


@pytest.mark.parametrize(
    ("streams", "named"),
    [
        ({"spot_ws_url": "http://x"}, "streams.spot_ws_url"),
        ({"symbols_per_connection": 500}, "streams.symbols_per_connection = 500"),
        ({"recycle_hours": 24}, "streams.recycle_hours = 24"),
        ({"maintenance": [{"start": "2026-07-09T07:00:00", "duration_minutes": 60}]}, "UTC offset"),
        ({"maintenance": [{"start": "2026-07-09T07:00:00Z"}]}, "duration_minutes"),
        ({"nope": 1}, "streams.nope: unknown key"),
    ],
)
def test_bad_values_are_one_line_naming_the_key(streams: dict[str, object], named: str) -> None:
    with pytest.raises(UserError) as raised:
        _config(streams)
    assert named in str(raised.value)


def test_overlapping_windows_are_refused() -> None:
    with pytest.raises(UserError, match="overlap"):
        _config(
            {
                "maintenance": [
                    {"start": "2026-07-09T07:00:00Z", "duration_minutes": 60},
                    {"start": "2026-07-09T07:30:00Z", "duration_minutes": 60},
                ]
            }
        )


def test_maintenance_blocks_from_the_lead_time_until_the_end() -> None:
    streams = _config(
        {
            "maintenance": [{"start": "2026-07-09T07:00:00Z", "duration_minutes": 60}],
            "maintenance_lead_minutes": 10,
        }
    ).streams

    def at(hour: int, minute: int) -> datetime:
        return datetime(2026, 7, 9, hour, minute, tzinfo=UTC)

    assert maintenance_block(streams, at(6, 49)) is None
    before = maintenance_block(streams, at(6, 50))
    assert before is not None and "starts in 10 min" in before[1]
    during = maintenance_block(streams, at(7, 59))
    assert during is not None and "no new hedges until 08:00 UTC" in during[1]
    assert maintenance_block(streams, at(8, 0)) is None


def test_the_entry_gate_blocks_during_a_window_even_with_streams_off() -> None:
    from bot.clock import SimulatedClock
    from bot.streams.gate import EntryGate

    streams = _config(
        {
            "enabled": False,
            "maintenance": [{"start": "2026-07-09T07:00:00Z", "duration_minutes": 60}],
        }
    ).streams
    clock = SimulatedClock(datetime(2026, 7, 9, 7, 30, tzinfo=UTC))
    gate = EntryGate(streams, clock, None, {})
    reason = gate("BTC/USDT")
    assert reason is not None and "is running" in reason
    clock.set(datetime(2026, 7, 9, 8, 0, tzinfo=UTC))
    assert gate("BTC/USDT") is None
