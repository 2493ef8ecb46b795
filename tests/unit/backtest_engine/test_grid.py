"""Sweep grids: unknown keys refused, combinations validated, rows ranked."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from bot.backtest.grid import combinations, load_grid
from bot.backtest.sweep import SweepRow, check_metric, rank
from bot.errors import UserError

D = Decimal


def _grid(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "grid.toml"
    path.write_text(text)
    return path


def test_load_grid_unknown_key_names_it_and_the_allowed_keys(tmp_path: Path) -> None:
    path = _grid(tmp_path, "[strategy]\nentry_aprr = [0.1]\n")

    with pytest.raises(UserError) as err:
        load_grid(path, "funding_carry")

    (problem,) = err.value.problems
    assert "strategy.entry_aprr: unknown key in [strategy]" in problem
    assert "entry_apr" in problem


def test_load_grid_section_outside_strategy_sizing_risk_is_refused(tmp_path: Path) -> None:
    path = _grid(tmp_path, "[fees]\nspot_taker = [0.001]\n")

    with pytest.raises(UserError, match=r"\[fees\]: not a sweepable section"):
        load_grid(path, "funding_carry")


def test_combinations_cartesian_product_with_invalid_ones_reported(tmp_path: Path) -> None:
    path = _grid(
        tmp_path,
        "[strategy]\nentry_apr = [0.05, 0.1]\nexit_apr = [0.02, 0.08]\n"
        "[sizing]\nnotional_per_hedge = 500\n",
    )

    combos = combinations(
        {"strategy": {"name": "funding_carry"}, "risk": {"max_open_hedges": 4}},
        load_grid(path, "funding_carry"),
    )

    assert [c.index for c in combos] == [1, 2, 3, 4]
    assert combos[0].label == (
        "strategy.entry_apr=0.05, strategy.exit_apr=0.02, sizing.notional_per_hedge=500"
    )
    invalid = [c for c in combos if c.config is None]
    assert [c.index for c in invalid] == [2]  # exit 8% >= entry 5%
    assert invalid[0].error is not None and "exit_apr" in invalid[0].error
    valid = combos[3].config
    assert valid is not None and valid.risk.max_open_hedges == 4  # the base config kept
    assert valid.sizing.notional_per_hedge == D("500")


def test_rank_best_metric_first_errors_and_missing_last() -> None:
    rows = [
        SweepRow(1, "a", bot={"net_apr": "0.05", "max_drawdown": "10"}),
        SweepRow(2, "b", error="boom"),
        SweepRow(3, "c", bot={"net_apr": "0.09", "max_drawdown": "30"}),
        SweepRow(4, "d", bot={"net_apr": None, "max_drawdown": "0"}),
    ]

    assert [r.index for r in rank(rows, "net_apr")] == [3, 1, 4, 2]
    assert [r.index for r in rank(rows, "max_drawdown")] == [4, 1, 3, 2]


def test_check_metric_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(UserError, match="net_apr"):
        check_metric("sharpe")
