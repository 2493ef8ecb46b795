"""Fixtures and helpers around the fake Binance server.

Import the fixtures into a conftest.py: `from tests.fakes.fixtures import fake_binance, ...`.

- `fake_binance`: an in-process FakeBinance on a random port with BTC and ETH (spot,
  perpetual) and a BTC quarterly, deep books, funding, and 10 000 USDT in each wallet;
- `live_exchange`: a keyed LiveExchange pointed at it (events in `live_exchange_events`);
- `fake_binance_process`: the fake as a subprocess (`FakeBinanceProcess`), driven through
  its `/_fake/...` control API.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from bot.clock import Clock
from bot.config import ExchangeConfig
from bot.domain import EventSink, Instrument, ListEventSink, OrderBook
from bot.exchange.ccxt_live import LiveExchange
from tests import kit
from tests.conftest import REPO_ROOT
from tests.fakes.binance_server import DEFAULT_API_KEY, DEFAULT_API_SECRET, FakeBinance

D = Decimal
WALLET_USDT = D("10000")
PRICES = {"BTC": D("50000"), "ETH": D("3000")}


def standard_instruments(at: datetime = kit.T0) -> list[Instrument]:
    """BTC and ETH spot + perpetual (Binance's real filters) and a BTC quarterly."""
    delivery = at.replace(hour=8, minute=0, second=0, microsecond=0) + timedelta(days=90)
    return [
        kit.spot("BTC"),
        kit.perp("BTC"),
        kit.spot("ETH"),
        kit.perp("ETH"),
        kit.dated("BTC", expiry=delivery),
    ]


def deep_book(inst: Instrument, mid: Decimal, at: datetime, levels: int = 10) -> OrderBook:
    """A book with `levels` levels a side, one tick apart from a one-tick spread around `mid`."""
    tick = inst.tick_size
    qty = D("2") if inst.base == "BTC" else D("20")
    bids = tuple((mid - tick * i, qty) for i in range(levels))
    asks = tuple((mid + tick * (i + 1), qty) for i in range(levels))
    return OrderBook(inst.symbol, bids, asks, at)


def seed(fake: FakeBinance, at: datetime | None = None) -> None:
    """Give every standard instrument a deep book, perpetuals funding, and fund the account."""
    at = at or fake.clock.now()
    for inst in fake.market.instruments.values():
        price = PRICES.get(inst.base, D("100"))
        mid = price + (D("10") if inst.is_derivative else D(0))
        fake.set_book(deep_book(inst, mid, at))
        fake.set_volume(inst.symbol, D("900000000"))
    for base, price in PRICES.items():
        fake.set_funding(
            f"{base}/USDT:USDT",
            rate="0.0001",
            next_funding_time=at + timedelta(hours=8),
            mark=price + D("10"),
            index=price,
        )
    fake.set_funding("ETH/USDT:USDT", interval_hours=4, cap="0.03", floor="-0.03")
    fake.account.deposit("spot", "USDT", WALLET_USDT)
    fake.account.deposit("futures", "USDT", WALLET_USDT)


def coinm_instruments(at: datetime = kit.T0) -> list[Instrument]:
    """The standard instruments plus BTC's COIN-M quarterly (BTCUSD_YYMMDD, 100 USD a
    contract) delivering with the USDⓈ-M quarterly."""
    delivery = at.replace(hour=8, minute=0, second=0, microsecond=0) + timedelta(days=90)
    return [*standard_instruments(at), kit.coinm("BTC", expiry=delivery)]


def seed_coinm(fake: FakeBinance, *, bid: str = "51000.0", at: datetime | None = None) -> None:
    """Give every COIN-M contract a deep book (5 000 contracts a level) bid at `bid`."""
    at = at or fake.clock.now()
    for inst in fake.market.of_coinm():
        tick = inst.tick_size
        top = D(bid)
        bids = tuple((top - tick * i, D(5000)) for i in range(10))
        asks = tuple((top + tick * (i + 1), D(5000)) for i in range(10))
        fake.set_book(OrderBook(inst.symbol, bids, asks, at))


def live_config(fake_url: str, **overrides: Any) -> ExchangeConfig:
    """An ExchangeConfig pointing both markets at the fake."""
    return ExchangeConfig.model_validate(
        {"spot_api_url": fake_url, "futures_api_url": fake_url, **overrides}
    )


def live_for(
    fake: FakeBinance,
    *,
    keys: bool = True,
    clock: Clock | None = None,
    events: EventSink | None = None,
    coinm: bool = False,
    **config: Any,
) -> LiveExchange:
    """A LiveExchange on the fake (keys of the fake unless `keys=False`)."""
    return LiveExchange(
        live_config(fake.url, **config),
        api_key=DEFAULT_API_KEY if keys else None,
        api_secret=DEFAULT_API_SECRET if keys else None,
        clock=clock or fake.clock,
        events=events,
        coinm=coinm,
    )


@pytest.fixture
async def fake_binance() -> AsyncIterator[FakeBinance]:
    async with FakeBinance(standard_instruments(datetime.now(UTC))) as fake:
        seed(fake)
        yield fake


@pytest.fixture
def live_exchange_events() -> ListEventSink:
    return ListEventSink()


@pytest.fixture
async def live_exchange(
    fake_binance: FakeBinance, live_exchange_events: ListEventSink
) -> AsyncIterator[LiveExchange]:
    exchange = live_for(fake_binance, events=live_exchange_events)
    try:
        yield exchange
    finally:
        await exchange.close()


class FakeBinanceProcess:
    """The fake Binance as a subprocess (`python -m tests.fakes.binance_server --port 0`)."""

    def __init__(
        self, *, universe: int = 0, standard: bool = False, book_interval: float = 0.1
    ) -> None:
        args = [sys.executable, "-m", "tests.fakes.binance_server", "--port", "0"]
        args += ["--book-interval", str(book_interval)]
        if universe:
            args += ["--universe", str(universe)]
        if standard:
            args.append("--standard")
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        self._proc = subprocess.Popen(
            args, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, text=True
        )
        assert self._proc.stdout is not None
        self.url = self._proc.stdout.readline().strip()
        if not self.url.startswith("http://"):
            self.stop()
            raise RuntimeError(f"fake Binance did not start (printed {self.url!r})")
        self.api_key, self.api_secret = DEFAULT_API_KEY, DEFAULT_API_SECRET

    def control(self, method: str, path: str, body: Any = None) -> Any:
        """Call the control API (`/_fake/...`) and return its JSON answer."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 - our own http://127.0.0.1 server
            f"{self.url}{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return json.loads(response.read())

    def __enter__(self) -> FakeBinanceProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


@pytest.fixture
def fake_binance_process() -> Iterator[FakeBinanceProcess]:
    proc = FakeBinanceProcess()
    try:
        yield proc
    finally:
        proc.stop()
