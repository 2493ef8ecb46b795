"""The fake Binance itself: signed-request checks, weights and limits, funding endpoints,
and the control API of the subprocess mode. Raw HTTP, so nothing of ccxt is assumed."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest

from bot.clock import SimulatedClock
from bot.domain import SettledFunding
from tests import kit
from tests.fakes.binance_server import DEFAULT_API_KEY, DEFAULT_API_SECRET, FakeBinance, Limits
from tests.fakes.fixtures import FakeBinanceProcess, seed, standard_instruments
from tests.fakes.market import Kline

D = Decimal


class Raw:
    """A bare HTTP client for the fake: signs like Binance's docs say, nothing more."""

    def __init__(self, url: str, session: aiohttp.ClientSession) -> None:
        self.url, self.session = url, session

    async def get(
        self, path: str, params: dict[str, Any] | None = None, *, signed: bool = False,
        key: str | None = DEFAULT_API_KEY, secret: str = DEFAULT_API_SECRET,
        timestamp: int | None = None, method: str = "GET",
    ) -> tuple[int, Any, dict[str, str]]:  # fmt: skip
        query = dict(params or {})
        headers = {}
        if signed:
            query["timestamp"] = timestamp or int(time.time() * 1000)
            text = urlencode(query)
            query["signature"] = hmac.new(
                secret.encode(), text.encode(), hashlib.sha256
            ).hexdigest()
            if key is not None:
                headers["X-MBX-APIKEY"] = key
        url = f"{self.url}{path}?{urlencode(query)}"
        async with self.session.request(method, url, headers=headers) as response:
            return response.status, await response.json(), dict(response.headers)


@pytest.fixture
async def clock() -> SimulatedClock:
    return SimulatedClock(kit.T0)


@pytest.fixture
async def fake(clock: SimulatedClock) -> AsyncIterator[FakeBinance]:
    limits = Limits(futures_weight=50, ban_after=2, ban_seconds=300)
    async with FakeBinance(standard_instruments(kit.T0), clock=clock, limits=limits) as server:
        seed(server)
        yield server


@pytest.fixture
async def raw(fake: FakeBinance) -> AsyncIterator[Raw]:
    async with aiohttp.ClientSession() as session:
        yield Raw(fake.url, session)


async def test_signed_request_with_valid_signature_is_served(raw: Raw) -> None:
    status, body, _ = await raw.get("/api/v3/account", signed=True)

    assert status == 200
    assert {"asset": "USDT", "free": "10000", "locked": "0"} in body["balances"]


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"key": None}, 401, -2014),
        ({"key": "someone-else"}, 401, -2015),
        ({"secret": "wrong"}, 400, -1022),
        ({"timestamp": int(time.time() * 1000) - 60_000}, 400, -1021),
        ({"timestamp": int(time.time() * 1000) + 60_000}, 400, -1021),
    ],
)
async def test_signed_request_checks_key_signature_and_timestamp(
    raw: Raw, kwargs: dict[str, Any], status: int, code: int
) -> None:
    got, body, _ = await raw.get("/fapi/v3/account", signed=True, **kwargs)

    assert (got, body["code"]) == (status, code)


@pytest.mark.parametrize(
    ("path", "params", "weight"),
    [
        ("/fapi/v1/premiumIndex", {}, 10),
        ("/fapi/v1/premiumIndex", {"symbol": "BTCUSDT"}, 1),
        ("/fapi/v1/ticker/bookTicker", {}, 5),
        ("/api/v3/ticker/bookTicker", {}, 4),
        ("/api/v3/ticker/24hr", {}, 80),
        ("/fapi/v1/ticker/24hr", {}, 40),
        ("/api/v3/exchangeInfo", {}, 20),
        ("/api/v3/depth", {"symbol": "BTCUSDT", "limit": 500}, 25),
        ("/fapi/v1/depth", {"symbol": "BTCUSDT", "limit": 1000}, 20),
    ],
)
async def test_used_weight_header_counts_binance_weights(
    raw: Raw, path: str, params: dict[str, Any], weight: int
) -> None:
    status, _, headers = await raw.get(path, params)

    assert status == 200
    assert headers["X-MBX-USED-WEIGHT-1M"] == str(weight)


async def test_over_budget_is_429_then_418_when_retry_after_is_ignored(
    raw: Raw, fake: FakeBinance, clock: SimulatedClock
) -> None:
    for _ in range(5):  # 5 x 10 = the whole futures budget of 50
        assert (await raw.get("/fapi/v1/premiumIndex"))[0] == 200

    status, body, headers = await raw.get("/fapi/v1/premiumIndex")
    again = await raw.get("/fapi/v1/premiumIndex")
    banned = await raw.get("/fapi/v1/premiumIndex")
    spot = await raw.get("/api/v3/ticker/bookTicker")
    clock.advance(timedelta(seconds=301))
    after_ban = await raw.get("/fapi/v1/premiumIndex")

    assert (status, body["code"]) == (429, -1003)
    assert 0 < int(headers["Retry-After"]) <= 60
    assert again[0] == 429 and banned[0] == 418 and int(banned[2]["Retry-After"]) <= 300
    assert spot[0] == 200  # spot has its own budget
    assert after_ban[0] == 200


async def test_order_post_returns_order_count_headers(raw: Raw) -> None:
    params = {"symbol": "BTCUSDT", "side": "SELL", "type": "MARKET", "quantity": "0.01"}

    status, body, headers = await raw.get("/fapi/v1/order", params, signed=True, method="POST")

    assert status == 200 and body["status"] == "FILLED"
    assert headers["X-MBX-ORDER-COUNT-1M"] == "1"


async def test_funding_info_lists_only_adjusted_symbols(raw: Raw) -> None:
    _, body, _ = await raw.get("/fapi/v1/fundingInfo")

    assert [(r["symbol"], r["fundingIntervalHours"]) for r in body] == [("ETHUSDT", 4)]


async def test_funding_rate_pages_from_start_time_or_returns_the_latest(
    raw: Raw, fake: FakeBinance
) -> None:
    rows = [
        SettledFunding("BTC/USDT:USDT", kit.T0 + timedelta(hours=8 * i), D("0.0001"), D("50000"))
        for i in range(10)
    ]
    fake.add_funding_history("BTC/USDT:USDT", rows)
    t0 = int(kit.T0.timestamp() * 1000)

    _, first, _ = await raw.get(
        "/fapi/v1/fundingRate", {"symbol": "BTCUSDT", "startTime": t0, "limit": 3}
    )
    _, latest, _ = await raw.get("/fapi/v1/fundingRate", {"symbol": "BTCUSDT", "limit": 2})

    assert [r["fundingTime"] for r in first] == [t0, t0 + 28_800_000, t0 + 57_600_000]
    assert [r["fundingTime"] for r in latest] == [t0 + 8 * 28_800_000, t0 + 9 * 28_800_000]
    assert first[0] == {"symbol": "BTCUSDT", "fundingTime": t0, "fundingRate": "0.0001",
                        "markPrice": "50000"}  # fmt: skip


async def test_klines_and_mark_price_klines(raw: Raw, fake: FakeBinance) -> None:
    candle = Kline(kit.T0, D("1"), D("2"), D("0.5"), D("1.5"), D("10"), D("15"))
    fake.add_klines("BTC/USDT:USDT", [candle], interval="1h")
    fake.add_klines("BTC/USDT:USDT", [candle], interval="1h", price="mark")

    _, last, _ = await raw.get("/fapi/v1/klines", {"symbol": "BTCUSDT", "interval": "1h"})
    _, mark, _ = await raw.get("/fapi/v1/markPriceKlines", {"symbol": "BTCUSDT", "interval": "1h"})

    assert last[0][1:6] == ["1", "2", "0.5", "1.5", "10"]
    assert mark[0][1:6] == ["1", "2", "0.5", "1.5", "0"]


async def test_settle_funding_writes_history_and_pays_the_account(
    raw: Raw, fake: FakeBinance
) -> None:
    params = {"symbol": "BTCUSDT", "side": "SELL", "type": "MARKET", "quantity": "0.01"}
    await raw.get("/fapi/v1/order", params, signed=True, method="POST")
    when = fake.market.funding["BTC/USDT:USDT"].next_funding_time

    payment = fake.settle_funding("BTC/USDT:USDT")

    _, history, _ = await raw.get("/fapi/v1/fundingRate", {"symbol": "BTCUSDT"})
    _, income, _ = await raw.get("/fapi/v1/income", {"incomeType": "FUNDING_FEE"}, signed=True)
    assert payment is not None and payment.amount == D("0.0001") * D("50010") * D("0.01")
    assert [r["fundingTime"] for r in history] == [int(when.timestamp() * 1000)]
    assert [(r["symbol"], r["income"]) for r in income] == [("BTCUSDT", "0.050010")]
    assert fake.market.funding["BTC/USDT:USDT"].next_funding_time == when + timedelta(hours=8)


def test_subprocess_serves_the_control_api() -> None:
    proc = FakeBinanceProcess()
    try:
        proc.control("POST", "/_fake/universe", {"n": 3, "at": "2024-03-01T00:00:00+00:00"})
        proc.control("POST", "/_fake/quote", {"symbol": "X000/USDT", "bid": "99", "ask": "101"})
        proc.control("POST", "/_fake/account/deposit",
                     {"wallet": "futures", "asset": "USDT", "amount": "500"})  # fmt: skip
        proc.control("POST", "/_fake/faults", {"kind": "reject", "path": "/fapi/v1/order",
                                                "code": -2019, "msg": "Margin is insufficient."})  # fmt: skip
        paid = proc.control("POST", "/_fake/funding/settle", {"symbol": "X001/USDT:USDT"})
        state = proc.control("GET", "/_fake/state")
        account = proc.control("GET", "/_fake/account")
        faults = proc.control("GET", "/_fake/faults")
        log = proc.control("GET", "/_fake/requests")
    finally:
        proc.stop()

    assert proc.url.startswith("http://127.0.0.1:")
    assert state["instruments"] == 8  # 3 pairs and 2 quarterlies
    assert paid == {"payment": None}  # no position, nothing paid
    assert account and [f["code"] for f in faults] == [-2019]
    assert log == []
