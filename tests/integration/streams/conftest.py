"""A fake Binance with streams and a `StreamingSource` on it (real ccxt.pro, real sockets)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import pytest

from bot.clock import Clock, SystemClock
from bot.config import Config, config_from_dict
from bot.streams.factory import streaming_source
from bot.streams.gate import EntryGate
from bot.streams.health import StreamHealth, StreamState
from bot.streams.market import MarketStreams
from bot.streams.source import StreamingSource
from tests.fakes.binance_server import FakeBinance
from tests.fakes.fixtures import live_for, seed, standard_instruments


@dataclass
class Rig:
    fake: FakeBinance
    source: StreamingSource
    gate: EntryGate
    config: Config

    async def started(self) -> None:
        """Start the streams and wait until every stream is live."""
        await self.source.start()
        await wait_for(lambda: self.all_live(), timeout=5)

    def all_live(self) -> bool:
        streams = self.source.health.all()
        return bool(streams) and all(h.state is StreamState.LIVE for h in streams)

    def reconnects(self) -> int:
        return sum(h.reconnects for h in self.source.health.all())

    @property
    def streams(self) -> MarketStreams:
        """The market streams of the started source."""
        assert self.source.streams is not None, "start the rig first"
        return self.source.streams

    def health(self, name: str) -> StreamHealth:
        """The health of the connection `name` (e.g. "spot-0"), which must exist."""
        health = self.source.health.get(name)
        assert health is not None, f"no stream named {name!r}"
        return health


class JumpClock(SystemClock):
    """The wall clock plus an offset a test can jump forward (a 60 s window in no time)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def jump(self, seconds: float) -> None:
        self.offset += seconds

    def now(self) -> datetime:
        return super().now() + timedelta(seconds=self.offset)

    def monotonic(self) -> float:
        return super().monotonic() + self.offset


def rig_config(fake: FakeBinance, *, symbols: list[str] | None = None, **streams: Any) -> Config:
    return config_from_dict(
        {
            "exchange": {"spot_api_url": fake.url, "futures_api_url": fake.url},
            "universe": {"symbols": ["BTC/USDT", "ETH/USDT"] if symbols is None else symbols},
            "streams": {
                "spot_ws_url": fake.spot_ws_url,
                "futures_ws_url": fake.futures_ws_url,
                "spot_ws_api_url": fake.ws_api_url,
                "silence_seconds": 1.0,
                "settle_seconds": 0.5,
                "max_quote_age_seconds": 1.0,
                "reconnect_max_backoff_seconds": 0.4,
                **streams,
            },
        }
    )


async def wait_for(condition: Callable[[], bool], *, timeout: float) -> float:
    """Wait until `condition()` holds; return the seconds it took (fails after `timeout`)."""
    started = time.perf_counter()
    while not condition():
        if time.perf_counter() - started > timeout:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.01)
    return time.perf_counter() - started


class MakeRig(Protocol):
    """The `make_rig` fixture: start a fake Binance and a streaming source on it."""

    async def __call__(
        self,
        *,
        spot_fallback_paths: tuple[str, ...] = (),
        clock: Clock | None = None,
        symbols: list[str] | None = None,
        **streams: Any,
    ) -> Rig: ...


@pytest.fixture
async def make_rig() -> AsyncIterator[MakeRig]:
    made: list[tuple[FakeBinance, StreamingSource]] = []

    async def make(
        *,
        spot_fallback_paths: tuple[str, ...] = (),
        clock: Clock | None = None,
        symbols: list[str] | None = None,
        **streams: Any,
    ) -> Rig:
        fake = FakeBinance(standard_instruments(datetime.now(UTC)), clock=clock)
        await fake.start()
        seed(fake)
        if spot_fallback_paths:
            base = fake.url.replace("http://", "ws://", 1)
            streams["spot_ws_fallbacks"] = [base + path for path in spot_fallback_paths]
        config = rig_config(fake, symbols=symbols, **streams)
        source = streaming_source(live_for(fake, keys=False), config, fake.clock)
        assert source is not None
        made.append((fake, source))
        gate = EntryGate(config.streams, fake.clock, source, {})
        return Rig(fake, source, gate, config)

    try:
        yield make
    finally:
        for fake, source in made:
            await source.close()
            await fake.stop()
