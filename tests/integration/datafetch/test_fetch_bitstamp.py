"""`carrybot data fetch --venue bitstamp`: Bitstamp spot klines from the fake Bitstamp's
`ohlc/` through ccxt, into `bitstamp/spot/`, ready for a backtest with the spot leg there."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from bot.backtest.engine import load_for
from bot.clock import SystemClock
from bot.config import ExchangeConfig, VenuesConfig, config_from_dict
from bot.datafetch import Status, fetch_history, parse_request
from bot.datafetch.bitstamp_source import BitstampHistory
from bot.datafetch.source import SourceSettings
from tests.fakes.bitstamp_fixtures import bitstamp_instruments
from tests.fakes.bitstamp_ohlc import seed_ohlc
from tests.fakes.bitstamp_server import FakeBitstamp
from tests.integration.datafetch.test_cli import run_main
from tests.unit.backtest_engine.synthetic import T0, write_flat_history

D = Decimal
START = T0 - timedelta(days=10)  # where the synthetic Binance history starts
HOURS = 45 * 24
OHLC = "/api/v2/ohlc/btcusd/"


@pytest.fixture
async def bitstamp() -> AsyncIterator[FakeBitstamp]:
    fake = FakeBitstamp(bitstamp_instruments())
    await fake.start()
    seed_ohlc(fake, "BTC/USD", START, HOURS, "19980")
    seed_ohlc(fake, "USDT/USD", START, HOURS, "0.999")
    try:
        yield fake
    finally:
        await fake.stop()


async def _fetch(fake: FakeBitstamp, out: Path, symbols: str = "BTC/USD") -> list[Status]:
    now = datetime.now(UTC)
    request = parse_request(
        symbols=symbols, start=START.isoformat(), end=(START + timedelta(hours=HOURS)).isoformat(),
        kinds="spot", out=out, now=now, venue="bitstamp",
    )  # fmt: skip
    venues = VenuesConfig(spot="bitstamp", bitstamp_api_url=fake.url)
    source = BitstampHistory(venues, ExchangeConfig(), SystemClock(), SourceSettings(attempts=1))
    try:
        results = await fetch_history(request, source, now=now)
    finally:
        await source.close()
    return [r.status for r in results]


async def test_fetch_pages_bitstamp_klines_and_a_backtest_loads_them(
    bitstamp: FakeBitstamp, tmp_path: Path
) -> None:
    data = write_flat_history(tmp_path / "data")

    statuses = await _fetch(bitstamp, data)

    assert statuses == [Status.FETCHED, Status.FETCHED]  # BTC/USD and USDT/USD with it
    pages = bitstamp.requests_to(OHLC)
    assert len(pages) == 2  # 1080 hourly bars in pages of 1000
    assert all(p.params["step"] == "3600" and "end" not in p.params for p in pages)
    assert (data / "bitstamp" / "spot" / "USDTUSD-1h.csv.gz").is_file()
    cross = config_from_dict({"venues": {"spot": "bitstamp"}, "universe": {"symbols": ["BTC/USD"]}})
    (btc,) = load_for(cross, data).symbols.values()
    assert len(btc.spot) == HOURS and set(btc.spot.opens) == {D("20000")}  # 19980 / 0.999

    bitstamp.clear_requests()
    assert await _fetch(bitstamp, data) == [Status.UP_TO_DATE, Status.UP_TO_DATE]
    assert bitstamp.requests_to(OHLC) == []


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--venue", "kraken"], "error: --venue: unknown venue 'kraken'; choose from binance, bitstamp"),
        (["--venue", "bitstamp", "--kinds", "spot,funding"],
         "error: --kinds: bitstamp has spot klines only, not funding; pass --kinds spot"),
        (["--venue", "bitstamp", "--symbols", "BTC/EUR"],
         "error: --symbols: 'BTC/EUR' has quote EUR; use one of USD, USDT (the backtest loader "
         "splits file names on these)"),
    ],
)  # fmt: skip
def test_bad_bitstamp_options_exit_2_naming_the_option(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, args: list[str], expected: str
) -> None:
    if "--symbols" not in args:
        args = [*args, "--symbols", "BTC/USD"]
    code, err = run_main(capsys, *args, "--from", "2024-01-01", "--out", str(tmp_path))

    assert (code, err) == (2, [expected])
