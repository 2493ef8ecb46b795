"""Parameter grids for sweeps: GRID.toml to one validated config per combination.

A grid names values to try for keys of `[strategy]`, `[sizing]` and `[risk]`:

    [strategy]
    entry_apr = [0.08, 0.10, 0.15]
    [sizing]
    notional_per_hedge = [500, 1000]

The sweep runs the Cartesian product, each combination laid over the base config and
checked by the normal config validation: a key that no config has is an error (exit 2), a
combination the validation refuses (say exit_apr >= entry_apr) is reported, not run.
"""

from __future__ import annotations

import copy
import itertools
import tomllib
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from bot.config import MOVED_KEYS, Config, RiskConfig, SizingConfig, config_from_dict
from bot.domain.strategy import StrategyParams
from bot.errors import UserError
from bot.strategy_host import params_model

SECTIONS = ("strategy", "sizing", "risk")

Grid = dict[str, dict[str, list[Any]]]


@dataclass(frozen=True)
class Combination:
    """One point of the grid: its overrides and the config they give (or why none)."""

    index: int
    overrides: dict[str, dict[str, Any]]
    raw: dict[str, Any]
    config: Config | None
    error: str | None

    @property
    def label(self) -> str:
        return ", ".join(
            f"{section}.{key}={_show(value)}"
            for section, values in self.overrides.items()
            for key, value in values.items()
        )


def read_toml(path: Path) -> dict[str, Any]:
    """Read a TOML file with decimals for floats; raise UserError when unreadable."""
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"), parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: not valid TOML: {exc}") from None


def load_grid(path: Path, strategy: str) -> Grid:
    """Read GRID.toml; every section and key must exist in the config of `strategy`."""
    raw = read_toml(path)
    grid: Grid = {}
    for section, values in raw.items():
        if section not in SECTIONS:
            raise UserError(
                f"{path}: [{section}]: not a sweepable section; use {', '.join(SECTIONS)}"
            )
        if not isinstance(values, dict):
            raise UserError(f"{path}: {section}: must be a table of key = [values]")
        allowed = allowed_keys(section, strategy)
        grid[section] = {}
        for key, value in values.items():
            moved = MOVED_KEYS.get((section, key))
            if moved is not None:
                raise UserError(f"{path}: {section}.{key}: moved; write {moved}")
            if key not in allowed:
                raise UserError(
                    f"{path}: {section}.{key}: unknown key in [{section}]; "
                    f"allowed keys: {', '.join(allowed)}"
                )
            listed = value if isinstance(value, list) else [value]
            if not listed:
                raise UserError(f"{path}: {section}.{key}: give at least one value")
            grid[section][key] = listed
    if not any(grid.values()):
        raise UserError(f"{path}: no parameters to sweep; add e.g. [strategy] entry_apr = [...]")
    return grid


def allowed_keys(section: str, strategy: str) -> list[str]:
    """Return the keys a grid may set in `section`."""
    if section == "strategy":
        model: type[Any] = params_model(strategy)
        skip = StrategyParams.RESERVED | {"name"}
    else:
        model = SizingConfig if section == "sizing" else RiskConfig
        skip = frozenset()
    return [name for name in model.model_fields if name not in skip]


def combinations(base: dict[str, Any], grid: Grid) -> list[Combination]:
    """Return every combination of `grid` over the `base` config dict, validated, in order."""
    axes = [
        (section, key, values) for section, keys in grid.items() for key, values in keys.items()
    ]
    out: list[Combination] = []
    for index, picked in enumerate(itertools.product(*(values for _, _, values in axes))):
        overrides: dict[str, dict[str, Any]] = {}
        raw = copy.deepcopy(base)
        for (section, key, _), value in zip(axes, picked, strict=True):
            overrides.setdefault(section, {})[key] = value
            raw.setdefault(section, {})[key] = value
        try:
            config: Config | None = config_from_dict(raw, source=f"combination {index + 1}")
            error = None
        except UserError as exc:
            config, error = None, "; ".join(exc.problems)
        out.append(Combination(index + 1, overrides, raw, config, error))
    return out


def _show(value: Any) -> str:
    return f"{value:f}" if isinstance(value, Decimal) else str(value)
