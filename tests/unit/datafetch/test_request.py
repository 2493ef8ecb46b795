"""Option parsing of `data fetch`: symbols, kinds, times, range checks."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.datafetch.request import (
    FetchRequest,
    Kind,
    SymbolSpec,
    parse_kinds,
    parse_request,
    parse_symbols,
)
from bot.errors import UserError

NOW = datetime(2024, 6, 1, 12, tzinfo=UTC)


def request(tmp_path: Path, **options: str | None) -> FetchRequest:
    args: dict[str, str | None] = {
        "symbols": "BTC/USDT",
        "start": "2024-01-01",
        "end": "2024-02-01",
        "kinds": "funding,mark,perp,spot",
    }
    args.update(options)
    return parse_request(
        symbols=args["symbols"] or "",
        start=args["start"] or "",
        end=args["end"],
        kinds=args["kinds"] or "",
        out=tmp_path,
        now=NOW,
    )


def test_parse_symbols_spot_and_perp_forms_give_one_spec_each() -> None:
    assert parse_symbols("btc/usdt, BTC/USDT:USDT,ETH/USDC") == (
        SymbolSpec("BTC", "USDT"),
        SymbolSpec("ETH", "USDC"),
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("BTCUSDT", "'BTCUSDT' is not a ccxt symbol"),
        ("BTC/USDT:USDT-240329", "'BTC/USDT:USDT-240329' is not a ccxt symbol"),
        ("BTC/USDT:BTC", "is not a USDⓈ-M perpetual; write BTC/USDT"),
        ("ETH/BTC", "has quote BTC; use one of USDT"),
        (" , ", "no symbol given"),
    ],
)
def test_parse_symbols_bad_format_raises_naming_the_option(raw: str, message: str) -> None:
    with pytest.raises(UserError) as info:
        parse_symbols(raw)

    assert info.value.problems[0].startswith("--symbols: ")
    assert message in info.value.problems[0]


def test_parse_kinds_any_order_gives_canonical_order() -> None:
    assert parse_kinds("spot,FUNDING,spot") == (Kind.FUNDING, Kind.SPOT)


def test_parse_request_every_bad_option_reported_at_once(tmp_path: Path) -> None:
    with pytest.raises(UserError) as info:
        request(tmp_path, symbols="BTC-USDT", start="yesterday", kinds="klines")

    assert [p.split(":")[0] for p in info.value.problems] == ["--symbols", "--kinds", "--from"]


def test_parse_request_end_defaults_to_now_and_is_capped_there(tmp_path: Path) -> None:
    assert request(tmp_path, end=None).end == NOW
    assert request(tmp_path, end="2030-01-01").end == NOW


def test_parse_request_offset_converted_to_utc(tmp_path: Path) -> None:
    parsed = request(tmp_path, start="2024-01-01T02:00+02:00")

    assert parsed.start == datetime(2024, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        ("2024-02-01", "2024-02-01", "--from 2024-02-01 is not before --to 2024-02-01"),
        ("2030-01-01", None, "--from 2030-01-01 is not in the past"),
    ],
)
def test_parse_request_empty_range_raises(
    tmp_path: Path, start: str, end: str | None, message: str
) -> None:
    with pytest.raises(UserError, match=message):
        request(tmp_path, start=start, end=end)


def test_parse_request_out_is_a_file_raises(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("")

    with pytest.raises(UserError, match=r"--out .*: is a file"):
        parse_request(
            symbols="BTC/USDT", start="2024-01-01", end=None, kinds="spot", out=target, now=NOW
        )
