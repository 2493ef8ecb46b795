"""Loading a history directory: series, the placeholder rule, funding keys, clear errors."""

from __future__ import annotations

import gzip
import logging
from pathlib import Path

import pytest

from bot.backtest import load_history
from bot.backtest.series import to_ms
from bot.errors import UserError
from tests.unit.backtest.synth import (
    BTC_LISTED_HOUR,
    HOURS,
    SOL_LISTED_HOUR,
    at,
    btc_perp_open,
    btc_spot_open,
    make_history_dir,
    write_text,
)


def test_load_history_synthetic_dir_loads_every_symbol(history_dir: Path) -> None:
    history = load_history(history_dir)

    assert sorted(history.symbols) == ["BTCUSDT", "SOLUSDT"]
    btc = history.symbols["BTCUSDT"]
    assert (btc.base, btc.quote, btc.spot_symbol, btc.perp_symbol) == (
        "BTC",
        "USDT",
        "BTC/USDT",
        "BTC/USDT:USDT",
    )
    assert len(btc.spot) == HOURS - 1
    assert len(btc.funding) == 8
    assert btc.mark is not None and btc.mark.bar_ms == 3_600_000
    sol_mark = history.symbols["SOLUSDT"].mark
    assert sol_mark is not None and sol_mark.bar_ms == 8 * 3_600_000


def test_load_history_placeholder_and_thin_bars_dropped_through_first_liquid(
    history_dir: Path,
) -> None:
    btc = load_history(history_dir).symbols["BTCUSDT"]

    assert btc.listed_ms == to_ms(at(BTC_LISTED_HOUR))
    assert btc.placeholder_bars == BTC_LISTED_HOUR
    assert btc.perp_first_raw_ms == to_ms(at(0))
    assert btc.perp.opens[0] == btc_perp_open(BTC_LISTED_HOUR)


def test_load_history_funding_before_perp_bars_lists_after_first_bar(history_dir: Path) -> None:
    sol = load_history(history_dir).symbols["SOLUSDT"]

    assert sol.listed_ms == to_ms(at(SOL_LISTED_HOUR))
    assert sol.placeholder_bars == 1  # its first bar is liquid, but only known at its close
    assert sol.start_ms == to_ms(at(SOL_LISTED_HOUR))
    assert sol.end_ms == to_ms(at(HOURS))


def test_load_history_jittered_funding_keyed_by_nominal_time(history_dir: Path) -> None:
    btc = load_history(history_dir).symbols["BTCUSDT"]

    assert btc.funding.times[1] == to_ms(at(16))


def test_load_history_unified_symbol_selects_it(history_dir: Path) -> None:
    history = load_history(history_dir, symbols=["BTC/USDT:USDT"])

    assert list(history.symbols) == ["BTCUSDT"]
    assert history.symbols["BTCUSDT"].spot.opens[0] == btc_spot_open(0)


def test_load_history_event_times_union_of_bars_and_funding(history_dir: Path) -> None:
    history = load_history(history_dir)

    times = history.event_times_ms(to_ms(at(29)), to_ms(at(32)))

    assert times == [to_ms(at(h)) for h in (29, 30, 31, 32)]  # BTC spot gap filled by others


def test_load_history_missing_directory_raises_naming_fix(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"no binance/funding directory; pass the directory"):
        load_history(tmp_path / "nowhere")


def test_load_history_explicit_symbol_missing_file_raises(history_dir: Path) -> None:
    (history_dir / "binance" / "perp" / "SOLUSDT-1h.csv.gz").unlink()

    with pytest.raises(UserError, match=r"SOLUSDT-1h.csv.gz: file not found; add it or drop"):
        load_history(history_dir, symbols=["SOLUSDT"])


def test_load_history_discovered_symbol_missing_file_skipped(
    history_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (history_dir / "binance" / "spot" / "SOLUSDT-1h.csv.gz").unlink()

    with caplog.at_level(logging.WARNING):
        history = load_history(history_dir)

    assert list(history.symbols) == ["BTCUSDT"]
    assert "Skipping SOLUSDT" in caplog.text


def test_load_history_no_complete_symbol_raises(tmp_path: Path) -> None:
    write_text(tmp_path / "binance" / "funding" / "BTCUSDT.csv", "funding_time_utc\n")

    with pytest.raises(UserError, match="no symbol has funding, perp and spot files"):
        load_history(tmp_path)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("2024-01-01T00:00:00Z,abc,1,1,1,1", "bad open 'abc'"),
        ("2024-01-01T00:00:00Z,0,1,1,1,1", "bad open '0'"),
        ("2024-01-01T00:00:00Z,1,1,1,1,-1", "bad volume '-1'"),
        ("2024-01-01T00:30:00Z,1,1,1,1,1", "not on a 1h boundary"),
        ("2024-01-01 00:00,1,1,1,1,1", "bad time"),
        ("2024-01-01T00:00:00Z,1,1", "3 columns, expected 6"),
    ],
)
def test_load_history_malformed_row_raises_naming_file_and_line(
    history_dir: Path, line: str, problem: str
) -> None:
    path = history_dir / "binance" / "spot" / "BTCUSDT-1h.csv.gz"
    write_text(path, f"date,open,high,low,close,volume\n{line}\n")

    with pytest.raises(UserError, match=rf"BTCUSDT-1h.csv.gz:2: .*{problem}.*re-download"):
        load_history(history_dir)


def test_load_history_unsorted_times_raise(history_dir: Path) -> None:
    path = history_dir / "binance" / "funding" / "BTCUSDT.csv"
    rows = path.read_text().splitlines()
    path.write_text("\n".join([rows[0], rows[2], rows[1], *rows[3:]]))

    with pytest.raises(UserError, match=r"BTCUSDT.csv:3: time .* is not after the previous row"):
        load_history(history_dir)


def test_load_history_funding_ms_far_from_utc_raises(history_dir: Path) -> None:
    path = history_dir / "binance" / "funding" / "BTCUSDT.csv"
    write_text(
        path,
        "funding_time_utc,funding_time_ms,funding_rate\n"
        "2024-01-01T08:00:00Z,1704096005000,0.0001\n",
    )

    with pytest.raises(UserError, match="disagrees with 2024-01-01T08:00:00Z"):
        load_history(history_dir)


def test_load_history_header_without_column_raises(history_dir: Path) -> None:
    write_text(history_dir / "binance" / "perp" / "BTCUSDT-1h.csv.gz", "date,open,close\nx\n")

    with pytest.raises(UserError, match="lacks one of date, open, close, volume"):
        load_history(history_dir)


def test_load_history_corrupt_gzip_raises(history_dir: Path) -> None:
    path = history_dir / "binance" / "perp" / "BTCUSDT-1h.csv.gz"
    path.write_bytes(gzip.compress(b"date,open\n" * 100)[:30])

    with pytest.raises(UserError, match=r"BTCUSDT-1h.csv.gz: cannot read"):
        load_history(history_dir)


def test_load_history_placeholders_only_raises(tmp_path: Path) -> None:
    root = make_history_dir(tmp_path)
    write_text(
        root / "binance" / "perp" / "BTCUSDT-1h.csv.gz",
        "date,open,high,low,close,volume\n2024-01-01T09:00:00Z,1,1,1,1,0\n",
    )

    with pytest.raises(UserError, match="lower min_listing_quote_volume"):
        load_history(root, symbols=["BTCUSDT"])
