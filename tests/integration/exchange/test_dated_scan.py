"""`scan` against the fake Binance: quarterlies' basis to expiry beside perpetual funding."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal

import pytest
from rich.console import Console

from bot.cli.scan_cmd import render_table, run_scan, strategy_params
from bot.clock import SimulatedClock
from bot.config import config_from_dict
from bot.domain import MarketKind
from strategies.scan import row_json
from tests import kit
from tests.fakes.binance_server import FakeBinance
from tests.fakes.fixtures import live_for, seed, standard_instruments

D = Decimal
T = kit.T0 + timedelta(hours=3, minutes=30)
QUARTER = "BTC/USDT:USDT-240530"  # standard_instruments: 08:00 UTC, 90 days after T0
NEXT = "BTC/USDT:USDT-240829"


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    clock = SimulatedClock(T)
    next_delivery = kit.T0.replace(hour=8) + timedelta(days=181)
    instruments = [
        *standard_instruments(kit.T0),
        kit.dated("BTC", expiry=next_delivery, contract_type="NEXT_QUARTER"),
    ]
    async with FakeBinance(instruments, clock=clock) as server:
        seed(server)
        server.set_quote("BTC/USDT", "49999.99", "50000.00", "5", "5")
        server.set_quote(QUARTER, "51000.0", "51000.1", "5", "5")  # 2% over the spot ask
        server.set_quote(NEXT, "51500.0", "51500.2", "5", "5")
        server.set_funding("BTC/USDT:USDT", rate="0.00001")
        yield server


async def test_scan_prints_the_quarterly_basis_to_expiry_beside_the_funding_apr(
    fake: FakeBinance,
) -> None:
    config = config_from_dict({"universe": {"symbols": ["BTC/USDT", "ETH/USDT"]}})
    source = live_for(fake, keys=False)

    rows, taken_at, _ = await run_scan(source, fake.clock, config, strategy_params(config), D(0))

    assert taken_at == T
    by_carry = {(r.pair, r.perp_symbol): r for r in rows}
    quarter = by_carry[("BTC/USDT", QUARTER)].dated
    assert quarter is not None
    days = D(90) + (D(8) - D("3.5")) / 24  # delivery 2024-05-30 08:00, now 03:30 on T0
    assert quarter.days_to_expiry == days
    costs = 2 * (D("0.001") + D("0.0005")) + 4 * D("0.0002")  # fees both ways, slippage
    expected = (D("51000.0") / D("50000.00") - 1 - costs) * 365 / days
    assert quarter.net_apr == expected
    assert quarter.contract_type == "CURRENT_QUARTER"
    data = row_json(by_carry[("BTC/USDT", QUARTER)])
    assert data["net_apr"] == float(expected)
    assert data["delivery_time"] == "2024-05-30T08:00:00+00:00"
    assert by_carry[("BTC/USDT", NEXT)].dated is not None
    perp = by_carry[("BTC/USDT", "BTC/USDT:USDT")]
    assert perp.signal is not None
    assert f"{expected:.4%}" == "6.5563%"
    # Funding at 0.001% pays nothing after costs; the richer quarterly is what would open.
    assert by_carry[("BTC/USDT", QUARTER)].would_enter
    assert by_carry[("BTC/USDT", NEXT)].reason == "capacity"  # the asset's better one wins
    assert (perp.would_enter, perp.reason) == (False, "better_carry")  # the quarterly wins

    console = Console(width=250, record=True)
    console.print(render_table(rows, "now", 2))
    text = console.export_text()
    quarter_line = next(line for line in text.splitlines() if "current_quarter" in line)
    perp_line = next(line for line in text.splitlines() if "perpetual" in line and "BTC" in line)
    assert f"{expected:.2%}" in quarter_line and "2024-05-30" in quarter_line
    assert f"{perp.signal.funding_apr:.2%}" in perp_line


async def test_dated_quotes_are_one_more_request_only_when_dated_carries_are_on(
    fake: FakeBinance,
) -> None:
    off = config_from_dict(
        {"universe": {"symbols": ["BTC/USDT"]}, "strategy": {"instruments": ["perpetual"]}}
    )
    source = live_for(fake, keys=False)

    rows, _, _ = await run_scan(source, fake.clock, off, strategy_params(off), D(0))

    assert {r.perp_symbol for r in rows} == {"BTC/USDT:USDT", "ETH/USDT:USDT"}
    book_tickers = [r for r in fake.requests if r.path == "/fapi/v1/ticker/bookTicker"]
    assert len(book_tickers) == 1  # perpetuals only; with quarterlies on it is two


async def test_delivery_price_is_read_from_binance_once_published(fake: FakeBinance) -> None:
    live = live_for(fake, keys=False)
    try:
        assert await live.fetch_delivery_price(QUARTER) is None
        fake.deliver(QUARTER, "50123.4")

        assert await live.fetch_delivery_price(QUARTER) == D("50123.4")
        assert await live.fetch_delivery_price(NEXT) is None
        (request,) = fake.requests_to("/futures/data/delivery-price")[-1:]
        assert request.params == {"pair": "BTCUSDT"}
    finally:
        await live.close()


COINM_QUARTER, COINM_PERP = "BTC/USD:BTC-240530", "BTC/USD:BTC"


async def test_coin_m_quarterlies_load_through_dapi_and_scan_beside_the_usdt_ones() -> None:
    clock = SimulatedClock(T)
    delivery = kit.T0.replace(hour=8) + timedelta(days=90)
    instruments = [
        *standard_instruments(kit.T0),
        kit.coinm("BTC"),
        kit.coinm("BTC", expiry=delivery),
    ]
    async with FakeBinance(instruments, clock=clock) as fake:
        seed(fake)
        fake.set_quote("BTC/USDT", "49999.99", "50000.00", "5", "5")
        fake.set_quote(COINM_QUARTER, "51000.0", "51000.1", "500", "500")  # 2 % over spot
        fake.set_quote(COINM_PERP, "50000.0", "50000.1", "500", "500")
        fake.set_funding(  # 0.02 % every 8 h, in the coin: 21.9 % a year
            COINM_PERP, rate="0.0002", next_funding_time=T + timedelta(hours=4, minutes=30),
            mark="50000", index="50000",
        )  # fmt: skip
        config = config_from_dict(
            {
                "universe": {"symbols": ["BTC/USDT"]},
                "strategy": {"instruments": ["perpetual", "quarterly", "coinm"]},
            }
        )
        live = live_for(fake, keys=False, coinm=True)
        loaded = await live.load_instruments()
        assert loaded[COINM_QUARTER] == kit.coinm("BTC", expiry=delivery)
        assert loaded[COINM_QUARTER].contract_size == 100 and loaded[COINM_QUARTER].is_inverse

        rows, _, _ = await run_scan(live, fake.clock, config, strategy_params(config), D(0))

        assert len(fake.requests_to("/dapi/v1/exchangeInfo")) == 1
        row = next(r for r in rows if r.perp_symbol == COINM_QUARTER)
        assert row.pair == "BTC/USDT" and row.dated is not None
        days = D(90) + (D(8) - D("3.5")) / 24
        costs = 2 * (D("0.001") + D("0.0005")) + 4 * D("0.0002")
        assert row.dated.net_apr == (D("51000.0") / D("50000.00") - 1 - costs) * 365 / days
        # Traded with "coinm" in the instruments, it competes: the COIN-M perpetual's 21.9 %
        # funding APR beats its ~6.6 % net basis APR and the USDⓈ-M perpetual's 10.95 %.
        assert (row.reason, row.would_enter) == ("better_carry", False)
        usdm = next(r for r in rows if r.perp_symbol == "BTC/USDT:USDT")
        coin_perp = next(r for r in rows if r.perp_symbol == COINM_PERP)
        assert (usdm.reason, coin_perp.reason, coin_perp.carry) == (
            "better_carry",
            "enter",
            "coinm perpetual",
        )
        assert coin_perp.signal is not None and coin_perp.signal.funding_rate == D("0.0002")
        assert coin_perp.signal.funding_apr == D("0.0002") * 3 * 365
        assert len(fake.requests_to("/dapi/v1/premiumIndex")) == 1
        console = Console(width=250, record=True)
        console.print(render_table(rows, "now", 1))
        line = next(x for x in console.export_text().splitlines() if "coinm perpetual" in x)
        assert "21.90%" in line and "BTC/USDT" in line


async def test_without_coinm_no_dapi_request_is_made(fake: FakeBinance) -> None:
    live = live_for(fake, keys=False)
    try:
        await live.load_instruments()
        await live.fetch_best_quotes(MarketKind.DATED_FUTURE)
    finally:
        await live.close()

    assert [r.path for r in fake.requests if r.path.startswith("/dapi/")] == []
