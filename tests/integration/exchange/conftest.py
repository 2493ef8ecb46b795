"""Fixtures of the exchange integration tests: the fake Binance server and a live adapter."""

from tests.fakes.fixtures import (  # noqa: F401
    fake_binance,
    fake_binance_process,
    live_exchange,
    live_exchange_events,
)
