"""`fetch_history` through real ccxt against the fake Binance: files, resume, pacing, errors."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bot.backtest.history import load_history, read_bars, read_funding
from bot.backtest.series import HOUR_MS, to_ms
from bot.clock import SimulatedClock
from bot.datafetch import (
    BinanceHistory,
    FetchSettings,
    Job,
    JobResult,
    NoProgress,
    SourceSettings,
    Status,
    fetch_history,
    parse_request,
)
from bot.errors import OrderRejected, UserError
from tests.fakes.binance_server import FakeBinance
from tests.fakes.fixtures import live_config
from tests.integration.datafetch.conftest import seeded_fake
from tests.integration.datafetch.seed import bars, drop_last_rows, funding_rows, read_lines

D = Decimal
START, END = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 4, tzinfo=UTC)
FUNDING = "/fapi/v1/fundingRate"
KLINE_PATHS = ("/fapi/v1/klines", "/fapi/v1/markPriceKlines", "/api/v3/klines")


async def fetch(
    fake: FakeBinance,
    out: Path,
    *,
    start: str = "2024-01-01",
    end: str | None = "2024-01-04",
    symbols: str = "BTC/USDT,ETH/USDT",
    kinds: str = "funding,mark,perp,spot",
    settings: FetchSettings | None = None,
    source_settings: SourceSettings | None = None,
    progress: Any = None,
) -> list[JobResult]:
    now = fake.clock.now()
    request = parse_request(symbols=symbols, start=start, end=end, kinds=kinds, out=out, now=now)
    source = BinanceHistory(live_config(fake.url), fake.clock, source_settings)
    try:
        return await fetch_history(request, source, now=now, settings=settings, progress=progress)
    finally:
        await source.close()


def requests_for(fake: FakeBinance, path: str, symbol: str = "BTCUSDT") -> list[dict[str, str]]:
    return [r.params for r in fake.requests_to(path) if r.params.get("symbol") == symbol]


def in_range(when: datetime, start: datetime = START, end: datetime = END) -> bool:
    return start <= when.replace(microsecond=0) < end


async def test_fetch_small_range_loads_and_matches_served_values(
    fake: FakeBinance, tmp_path: Path
) -> None:
    results = await fetch(fake, tmp_path)

    assert {r.status for r in results} == {Status.FETCHED}
    history = load_history(tmp_path, min_listing_quote_volume=D(0))
    assert sorted(history.symbols) == ["BTCUSDT", "ETHUSDT"]
    for base in ("BTC", "ETH"):
        sym = history.symbols[f"{base}USDT"]
        served = [r for r in funding_rows(base) if in_range(r.funding_time)]
        assert sym.funding.times == [to_ms(r.funding_time.replace(microsecond=0)) for r in served]
        assert sym.funding.rates == [r.rate for r in served]
        assert sym.perp_first_raw_ms == to_ms(START)
        assert sym.mark is not None and sym.mark.times[-1] == to_ms(END) - HOUR_MS
        for kind in ("perp", "mark", "spot"):
            expected = [k for k in bars(base, kind) if in_range(k.open_time)]
            lines = read_lines(tmp_path / "binance" / kind / f"{base}USDT-1h.csv.gz")[1:]
            assert len(lines) == len(expected) == 72
            for line, k in zip(lines, expected, strict=True):
                cells = line.split(",")
                assert cells[0] == f"{k.open_time:%Y-%m-%dT%H:%M:%SZ}"
                values = [k.open, k.high, k.low, k.close] + ([] if kind == "mark" else [k.volume])
                assert [D(c) for c in cells[1:]] == values


async def test_fetch_writes_the_shared_data_format(fake: FakeBinance, tmp_path: Path) -> None:
    await fetch(fake, tmp_path, symbols="BTC/USDT")

    root = tmp_path / "binance"
    funding = (root / "funding" / "BTCUSDT.csv").read_bytes().decode()
    assert funding.startswith(
        "funding_time_utc,funding_time_ms,funding_rate\n"
        "2024-01-01T00:00:00Z,1704067200000,0.0025\n"  # served as 0.00250000
        "2024-01-01T08:00:00Z,1704096000005,0.0001\n"  # settled 5 ms late
        "2024-01-01T16:00:00Z,1704124800017,-0.00003125\n"
        "2024-01-02T00:00:00Z,1704153600000,0.00000123\n"
    )
    assert funding.endswith("\n") and "e-" not in funding
    perp = gzip.decompress((root / "perp" / "BTCUSDT-1h.csv.gz").read_bytes()).decode()
    assert perp.startswith(
        "date,open,high,low,close,volume\n"
        "2024-01-01T00:00:00Z,42002.4,42052.4,41952.9,42002.65,12.369\n"
    )
    mark = gzip.decompress((root / "mark" / "BTCUSDT-1h.csv.gz").read_bytes()).decode()
    assert mark.splitlines()[:2] == [
        "date,open,high,low,close",
        "2024-01-01T00:00:00Z,42002.40012345,42052.40012345,41952.90012345,42002.65012345",
    ]
    spot = read_lines(root / "spot" / "BTCUSDT-1h.csv.gz")
    assert spot[1] == "2024-01-01T00:00:00Z,42002.4,42052.4,41952.9,42002.65,12.369"
    assert spot[-1].startswith("2024-01-03T23:00:00Z,")
    assert sorted(p.name for p in root.rglob("*")) == sorted(
        ["funding", "mark", "perp", "spot", "BTCUSDT.csv"] + ["BTCUSDT-1h.csv.gz"] * 3
    )


async def test_fetch_tail_deleted_requests_only_missing_rows_and_equals_fresh(
    fake: FakeBinance, tmp_path: Path
) -> None:
    fresh, resumed = tmp_path / "fresh", tmp_path / "resumed"
    await fetch(fake, fresh)
    await fetch(fake, resumed)
    root = resumed / "binance"
    drop_last_rows(root / "perp" / "BTCUSDT-1h.csv.gz", 5)
    drop_last_rows(root / "funding" / "BTCUSDT.csv", 2)
    fake.clear_requests()

    results = await fetch(fake, resumed)

    assert requests_for(fake, "/fapi/v1/klines") == [
        {
            "symbol": "BTCUSDT",
            "interval": "1h",
            "startTime": str(to_ms(END) - 5 * HOUR_MS),
            "endTime": str(to_ms(END) - 1),
            "limit": "1000",
        }
    ]
    assert requests_for(fake, "/fapi/v1/klines", "ETHUSDT") == []
    assert fake.requests_to("/fapi/v1/markPriceKlines") == []
    assert fake.requests_to("/api/v3/klines") == []
    # Funding may settle any hour, so each symbol asks once after its last row.
    kept_last = [r for r in funding_rows("BTC") if in_range(r.funding_time)][-3]
    assert [p["startTime"] for p in requests_for(fake, FUNDING)] == [
        str(to_ms(kept_last.funding_time) + 1)
    ]
    assert len(fake.requests_to(FUNDING)) == 2
    added = {r.job.label: r.added for r in results if r.added}
    assert added == {"BTCUSDT funding": 2, "BTCUSDT perp": 5}
    for path in sorted(fresh.rglob("*.*")):
        assert (resumed / path.relative_to(fresh)).read_bytes() == path.read_bytes(), path


async def test_fetch_earlier_start_fetches_only_the_head(fake: FakeBinance, tmp_path: Path) -> None:
    fresh, grown = tmp_path / "fresh", tmp_path / "grown"
    await fetch(fake, fresh, kinds="perp,funding")
    await fetch(fake, grown, start="2024-01-02", kinds="perp,funding")
    fake.clear_requests()

    await fetch(fake, grown, kinds="perp,funding")

    day2 = to_ms(datetime(2024, 1, 2, tzinfo=UTC))
    assert [(p["startTime"], p["endTime"]) for p in requests_for(fake, "/fapi/v1/klines")] == [
        (str(to_ms(START)), str(day2 - 1))
    ]
    last = [r for r in funding_rows("BTC") if in_range(r.funding_time)][-1]
    assert [(p["startTime"], p["endTime"]) for p in requests_for(fake, FUNDING)] == [
        (str(to_ms(START)), str(day2 - 1)),  # the head
        (str(to_ms(last.funding_time) + 1), str(to_ms(END) - 1)),  # any new settlement
    ]
    for path in sorted(fresh.rglob("*.*")):
        assert (grown / path.relative_to(fresh)).read_bytes() == path.read_bytes(), path


async def test_fetch_files_up_to_date_sends_no_kline_requests(
    fake: FakeBinance, tmp_path: Path
) -> None:
    await fetch(fake, tmp_path)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*.*")}
    fake.clear_requests()

    results = await fetch(fake, tmp_path)

    assert {r.status for r in results} == {Status.UP_TO_DATE}
    assert [r for r in fake.requests if r.path in KLINE_PATHS] == []
    assert {p: p.read_bytes() for p in tmp_path.rglob("*.*")} == before


async def test_fetch_writes_closed_bars_only_and_resumes_at_the_open_one(
    tmp_path: Path,
) -> None:
    clock = SimulatedClock(datetime(2024, 1, 3, 5, 30, tzinfo=UTC))
    async with seeded_fake(clock) as fake:
        await fetch(fake, tmp_path, end=None, kinds="perp")
        path = tmp_path / "binance" / "perp" / "BTCUSDT-1h.csv.gz"
        assert read_lines(path)[-1].startswith("2024-01-03T04:00:00Z,")
        clock.set(datetime(2024, 1, 3, 9, 10, tzinfo=UTC))
        fake.clear_requests()

        await fetch(fake, tmp_path, end=None, kinds="perp")

        assert [p["startTime"] for p in requests_for(fake, "/fapi/v1/klines")] == [
            str(to_ms(datetime(2024, 1, 3, 5, tzinfo=UTC)))
        ]
        assert read_bars(path, HOUR_MS, with_volume=True).times[-1] == to_ms(
            datetime(2024, 1, 3, 8, tzinfo=UTC)
        )


async def test_fetch_funding_pacing_never_exceeds_the_budget(
    fake: FakeBinance, clock: SimulatedClock, tmp_path: Path
) -> None:
    budget, window = 3, 300.0
    started = clock.monotonic()

    results = await fetch(
        fake,
        tmp_path,
        kinds="funding",
        settings=FetchSettings(page_limit=2),
        source_settings=SourceSettings(funding_requests=budget, funding_window_seconds=window),
    )

    times = sorted(r.clock_at for r in fake.requests_to(FUNDING))
    assert len(times) == 10  # 9 settlements a symbol, 2 a page: 5 pages each
    for t in times:
        assert sum(1 for u in times if t - window < u <= t) <= budget
    assert times[-1] - started >= 3 * window  # 10 requests at 3 per window: 4 windows
    assert [len(read_funding(r.job.path).times) for r in results] == [9, 9]


async def test_fetch_exchange_error_keeps_committed_rows_and_resume_completes(
    fake: FakeBinance, tmp_path: Path
) -> None:
    fresh, broken = tmp_path / "fresh", tmp_path / "broken"
    await fetch(fake, fresh, symbols="BTC/USDT", kinds="perp")

    class BreakAfterFirstPage(NoProgress):
        def advance(self, job: Job, done_ms: int, added: int) -> None:
            fake.add_fault("reject", "/fapi/v1/klines", code=-1100, msg="Illegal characters")

    settings = FetchSettings(page_limit=10, commit_every_pages=1)
    [failed] = await fetch(
        fake,
        broken,
        symbols="BTC/USDT",
        kinds="perp",
        settings=settings,
        progress=BreakAfterFirstPage(),
    )

    assert failed.status is Status.FAILED and isinstance(failed.error, OrderRejected)
    path = broken / "binance" / "perp" / "BTCUSDT-1h.csv.gz"
    assert len(read_bars(path, HOUR_MS, with_volume=True)) == failed.rows == 10
    fake.faults.clear()
    fake.clear_requests()
    [done] = await fetch(fake, broken, symbols="BTC/USDT", kinds="perp", settings=settings)
    assert done.added == 62
    assert requests_for(fake, "/fapi/v1/klines")[0]["startTime"] == str(to_ms(START) + 10 * HOUR_MS)
    assert path.read_bytes() == (fresh / path.relative_to(broken)).read_bytes()


async def test_fetch_temporary_error_is_retried(fake: FakeBinance, tmp_path: Path) -> None:
    fake.add_fault("server_error", "/api/v3/klines", times=2)

    [result] = await fetch(fake, tmp_path, symbols="BTC/USDT", kinds="spot")

    assert result.status is Status.FETCHED and result.rows == 72
    assert len(fake.requests_to("/api/v3/klines")) == 3


async def test_fetch_unknown_symbol_raises_user_error_and_writes_nothing(
    fake: FakeBinance, tmp_path: Path
) -> None:
    with pytest.raises(UserError, match="no USDⓈ-M perpetual market DOGE/USDT:USDT"):
        await fetch(fake, tmp_path, symbols="BTC/USDT,DOGE/USDT")

    assert list(tmp_path.iterdir()) == []


async def test_fetch_foreign_file_raises_user_error_naming_it(
    fake: FakeBinance, tmp_path: Path
) -> None:
    path = tmp_path / "binance" / "funding" / "BTCUSDT.csv"
    path.parent.mkdir(parents=True)
    path.write_text("time,rate\n2024-01-01T00:00:00Z,0.0001\n")

    with pytest.raises(UserError, match=r"BTCUSDT\.csv: header 'time,rate'"):
        await fetch(fake, tmp_path, symbols="BTC/USDT")
    assert fake.requests_to(FUNDING) == []
