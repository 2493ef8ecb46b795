"""`carrybot scan` rows: ranking, what the strategy would do, JSON and table cells."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from rich.console import Console

from bot.cli.scan_cmd import render_table, run_scan, strategy_params
from bot.clock import SimulatedClock
from bot.config import config_from_dict
from bot.domain import MarketSnapshot
from bot.domain.params import SizingParams
from strategies.scan import TABLE_COLUMNS, row_json, scan_rows, table_cells
from tests.unit.standin import StandIn
from tests.unit.strategies.scenario import T0, Market, market_snapshot, params

D = Decimal


def _snapshot() -> MarketSnapshot:
    return market_snapshot(
        Market("AAA", rate="0.0005"),
        Market("BBB", rate="0.0003"),
        Market("CCC", rate="0.0001"),
        Market("DDD", rate="0.0004", volume="10"),
        Market("EEE", rate="0.0001", interval_hours=4),
    )


def test_scan_rows_rank_by_net_carry_and_explain_each_decision() -> None:
    p = params(sizing=SizingParams(max_hedges=1))

    rows = scan_rows(_snapshot(), p)

    assert [r.pair for r in rows] == ["AAA/USDT", "DDD/USDT", "BBB/USDT", "EEE/USDT", "CCC/USDT"]
    assert [(r.would_enter, r.reason) for r in rows] == [
        (True, "enter"),
        (False, "volume"),  # would pay 39.2% but trades 10 USDT a day
        (False, "capacity"),  # passes every rule; max_hedges = 1 is taken
        (False, "capacity"),  # 4 h at 0.01%: 21.9% gross, 17.3% net
        (False, "net_apr"),  # 8 h at 0.01%: 6.3% net
    ]


def test_scan_rows_pairs_outside_the_automatic_top_n_say_so() -> None:
    p = params()
    p = p.model_copy(update={"universe": p.universe.model_copy(update={"top_n": 1})})

    rows = scan_rows(_snapshot(), p)

    assert {r.pair: r.reason for r in rows}["BBB/USDT"] == "not_top_n"


def test_scan_rows_min_volume_drops_thin_pairs() -> None:
    rows = scan_rows(_snapshot(), params(), min_volume=D(1000))

    assert "DDD/USDT" not in [r.pair for r in rows]
    assert len(rows) == 4


def test_scan_rows_pair_without_quotes_sorts_last_with_no_data() -> None:
    snap = _snapshot()
    quotes = {k: v for k, v in snap.perp_quotes.items() if k != "AAA/USDT:USDT"}

    rows = scan_rows(replace(snap, perp_quotes=quotes), params())

    assert (rows[-1].pair, rows[-1].signal, rows[-1].reason) == ("AAA/USDT", None, "no_data")
    assert table_cells(rows[-1])[1:3] == ["perpetual", "-"]


def test_row_json_and_table_cells_show_the_scan_columns() -> None:
    (row,) = [r for r in scan_rows(_snapshot(), params()) if r.pair == "EEE/USDT"]

    data = row_json(row)
    cells = table_cells(row)

    assert data["interval_hours"] == 4
    assert data["funding_apr"] == 0.219
    assert data["next_funding_in_seconds"] == 2 * 3600
    assert data["volume_24h"] == 1e9
    assert len(cells) == len(TABLE_COLUMNS)
    assert cells[:5] == ["EEE/USDT", "perpetual", "0.0100%", "4h", "21.90%"]
    assert cells[10:12] == ["2h00m", "1.0B"]


async def test_run_scan_takes_one_snapshot_and_closes_the_source() -> None:
    clock = SimulatedClock(T0)
    source = StandIn(clock)
    config = config_from_dict({})

    rows, taken_at, scanned = await run_scan(source, clock, config, strategy_params(config), D(0))

    assert source.closed
    assert (taken_at, scanned) == (T0, 2)
    assert {r.pair for r in rows} == {"BTC/USDT", "ETH/USDT"}
    assert source.calls["funding"] == 1


def test_render_table_lists_rows_under_the_scan_columns() -> None:
    rows = scan_rows(_snapshot(), params())
    console = Console(width=200, record=True)

    console.print(render_table(rows[:2], "2024-03-01 00:00:00 UTC", 5))
    text = console.export_text()

    assert "2 of 5 pairs by net APR" in text
    assert "AAA/USDT" in text and "net APR" in text and "break-even h" in text


def test_scan_with_expected_carry_uses_its_forecast_and_round_trip() -> None:
    from tests.unit.strategies.test_expected_carry import ev_params

    snap = market_snapshot(
        Market("AAA", rate="0.00003", history=["0.00003"] * 200),  # low but positive
        Market("BBB", rate="-0.0006", history=["0.0001"] * 150 + ["-0.0006"] * 18),
    )
    p = ev_params()

    rows = {r.pair: r for r in scan_rows(snap, p)}

    low, dip = rows["AAA/USDT"], rows["BBB/USDT"]
    assert (low.would_enter, low.reason) == (True, "enter")
    assert dip.would_enter is False and dip.reason in {"net_carry", "dip_ahead"}
    # Net APR = (forecast carry over the 2160 h holding - round trip) x 8760 / 2160.
    assert low.net_apr is not None and low.net_apr > 0
    assert low.breakeven_hours is not None and 0 < low.breakeven_hours < 2160
    assert row_json(low)["net_apr"] == float(low.net_apr)
    strategy_params(config_from_dict({"strategy": {"name": "expected_carry"}}, source="t"))
