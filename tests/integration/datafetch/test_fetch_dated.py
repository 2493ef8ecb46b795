"""`data fetch` of quarterly history: continuous klines per contract type, delivery prices."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from bot.backtest.history import read_bars
from bot.backtest.series import HOUR_MS
from bot.datafetch import Status, parse_request
from bot.domain import SettledFunding
from bot.errors import UserError
from tests import kit
from tests.fakes.binance_server import FakeBinance
from tests.fakes.market import Kline
from tests.integration.datafetch.seed import read_lines
from tests.integration.datafetch.test_fetch import fetch

D = Decimal
START = datetime(2024, 1, 1, tzinfo=UTC)
CONTINUOUS = "/fapi/v1/continuousKlines"


def quarter_bars(premium: str, hours: int = 72) -> list[Kline]:
    out = []
    for i in range(hours):
        price = D(42000) + D(i) + D(premium)
        out.append(Kline(START + timedelta(hours=i), price, price + 5, price - 5, price + 1,
                         D("3.5"), D("147000")))  # fmt: skip
    return out


@pytest.fixture
def dated_fake(fake: FakeBinance) -> FakeBinance:
    fake.market.add_klines("BTCUSDT", "CURRENT_QUARTER", "1h", quarter_bars("600.5"))
    fake.market.add_klines("BTCUSDT", "NEXT_QUARTER", "1h", quarter_bars("1400.25"))
    for when, price in (("2023-12-29T08:00:00", "42100.1"), ("2024-03-29T08:00:00", "69990.2")):
        at = datetime.fromisoformat(when).replace(tzinfo=UTC)
        fake.market.delivery_prices[("BTCUSDT", int(at.timestamp() * 1000))] = D(price)
    return fake


async def test_quarterly_bars_and_delivery_prices_land_in_their_own_files(
    dated_fake: FakeBinance, tmp_path: Path
) -> None:
    results = await fetch(
        dated_fake, tmp_path, symbols="BTC/USDT", kinds="current_quarter,next_quarter,delivery",
        start="2023-12-01",
    )  # fmt: skip

    assert {r.job.kind.value: r.status for r in results} == {
        "current_quarter": Status.FETCHED,
        "next_quarter": Status.FETCHED,
        "delivery": Status.FETCHED,
    }
    current = read_bars(
        tmp_path / "binance/current_quarter/BTCUSDT-1h.csv.gz", HOUR_MS, with_volume=True
    )
    assert len(current.times) == 72 and current.opens[0] == D("42600.5")
    nxt = read_lines(tmp_path / "binance/next_quarter/BTCUSDT-1h.csv.gz")
    assert nxt[1] == "2024-01-01T00:00:00Z,43400.25,43405.25,43395.25,43401.25,3.5"
    assert read_lines(tmp_path / "binance/delivery/BTCUSDT.csv") == [
        "delivery_time_utc,delivery_time_ms,delivery_price",
        "2023-12-29T08:00:00Z,1703836800000,42100.1",
    ]  # the March delivery is after --to
    params = [r.params for r in dated_fake.requests_to(CONTINUOUS)]
    assert {(p["pair"], p["contractType"], p["interval"]) for p in params} == {
        ("BTCUSDT", "CURRENT_QUARTER", "1h"),
        ("BTCUSDT", "NEXT_QUARTER", "1h"),
    }


async def test_a_second_run_fetches_nothing_new(dated_fake: FakeBinance, tmp_path: Path) -> None:
    kinds = "current_quarter,delivery"
    await fetch(dated_fake, tmp_path, symbols="BTC/USDT", kinds=kinds, start="2023-12-01")
    dated_fake.clear_requests()

    again = await fetch(dated_fake, tmp_path, symbols="BTC/USDT", kinds=kinds, start="2023-12-01")

    assert {r.status for r in again} == {Status.UP_TO_DATE}
    assert len(dated_fake.requests_to(CONTINUOUS)) <= 1


def test_dated_kinds_are_named_in_the_error_for_an_unknown_kind(tmp_path: Path) -> None:
    with pytest.raises(UserError) as err:
        parse_request(symbols="BTC/USDT", start="2024-01-01", end=None, kinds="quarterly",
                      out=tmp_path, now=START + timedelta(days=9))  # fmt: skip
    assert "current_quarter, next_quarter, delivery" in err.value.problems[0]


async def test_coinm_quarterly_bars_and_delivery_prices_come_from_dapi(
    fake: FakeBinance, tmp_path: Path
) -> None:
    fake.set_instruments(
        [*fake.market.instruments.values(), kit.coinm("BTC", expiry=START + timedelta(days=88))]
    )
    fake.market.add_klines("BTCUSD", "CURRENT_QUARTER", "1h", quarter_bars("700.5"))
    at = datetime(2023, 12, 29, 8, tzinfo=UTC)
    fake.market.delivery_prices[("BTCUSD", int(at.timestamp() * 1000))] = D("42090.7")

    results = await fetch(
        fake, tmp_path, symbols="BTC/USDT", kinds="coinm_current_quarter,coinm_delivery",
        start="2023-12-01",
    )  # fmt: skip

    assert {r.job.kind.value: r.status for r in results} == {
        "coinm_current_quarter": Status.FETCHED,
        "coinm_delivery": Status.FETCHED,
    }
    bars = read_lines(tmp_path / "binance/coinm_current_quarter/BTCUSDT-1h.csv.gz")
    # the base asset volume ([7] of a dapi kline), not the contracts ([5])
    assert bars[1] == "2024-01-01T00:00:00Z,42700.5,42705.5,42695.5,42701.5,147000.0"
    assert len(bars) == 73
    assert read_lines(tmp_path / "binance/coinm_delivery/BTCUSDT.csv")[1:] == [
        "2023-12-29T08:00:00Z,1703836800000,42090.7"
    ]
    (first, *_) = [r.params for r in fake.requests_to("/dapi/v1/continuousKlines")]
    assert (first["pair"], first["contractType"]) == ("BTCUSD", "CURRENT_QUARTER")
    assert fake.requests_to(CONTINUOUS) == []  # nothing asked of USDⓈ-M


async def test_coinm_perpetual_bars_and_funding_come_from_dapi(
    fake: FakeBinance, tmp_path: Path
) -> None:
    fake.set_instruments([*fake.market.instruments.values(), kit.coinm("BTC")])  # BTCUSD_PERP
    fake.market.add_klines("BTCUSD", "PERPETUAL", "1h", quarter_bars("20.5", hours=24))
    fake.add_funding_history(
        "BTC/USD:BTC",
        [
            SettledFunding("BTC/USD:BTC", START + timedelta(hours=h), D(rate), D("42010"))
            for h, rate in ((0, "0.00010000"), (8, "-0.00002500"), (16, "0.00007310"))
        ],
    )

    results = await fetch(
        fake, tmp_path, symbols="BTC/USDT", kinds="coinm_perp,coinm_funding",
        start="2024-01-01", end="2024-01-02",
    )  # fmt: skip

    assert {r.job.kind.value: r.status for r in results} == {
        "coinm_perp": Status.FETCHED,
        "coinm_funding": Status.FETCHED,
    }
    bars = read_lines(tmp_path / "binance/coinm_perp/BTCUSDT-1h.csv.gz")
    assert bars[1] == "2024-01-01T00:00:00Z,42020.5,42025.5,42015.5,42021.5,147000.0"
    assert len(bars) == 25
    assert read_lines(tmp_path / "binance/coinm_funding/BTCUSDT.csv")[1:] == [
        "2024-01-01T00:00:00Z,1704067200000,0.0001",  # the exchange's decimals, as sent
        "2024-01-01T08:00:00Z,1704096000000,-0.000025",
        "2024-01-01T16:00:00Z,1704124800000,0.0000731",
    ]
    (first, *_) = [r.params for r in fake.requests_to("/dapi/v1/continuousKlines")]
    assert (first["pair"], first["contractType"]) == ("BTCUSD", "PERPETUAL")
    assert {r.params["symbol"] for r in fake.requests_to("/dapi/v1/fundingRate")} == {"BTCUSD_PERP"}
    assert fake.requests_to("/fapi/v1/fundingRate") == []  # nothing asked of USDⓈ-M
