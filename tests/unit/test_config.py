"""Config validation: the example is valid; bad files get a specific one-line message each."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from bot.config import Config, load_config, parse_config_text
from bot.domain.params import FeeParams, SizingParams
from bot.domain.strategy import StrategyParams
from bot.errors import UserError
from bot.settings import Mode, Settings, resolve_mode
from bot.strategy_host import strategy_params
from strategies.expected_carry import ExpectedCarryParams
from strategies.funding_carry import FundingCarryParams
from tests.conftest import REPO_ROOT

EXAMPLE = REPO_ROOT / "config.example.toml"


def problems_of(text: str) -> list[str]:
    with pytest.raises(UserError) as info:
        parse_config_text(text, source="t.toml")
    return info.value.problems


def test_example_config_validates_and_equals_the_defaults() -> None:
    config = load_config(EXAMPLE)

    assert config.strategy.name == "expected_carry"
    assert config.fingerprint() == Config.model_validate({}).fingerprint()


def test_config_floats_become_exact_decimals() -> None:
    config = parse_config_text(
        '[strategy]\nname = "funding_carry"\nentry_apr = 0.1\nexit_apr = 0.07\n'
    )

    assert isinstance(config.strategy, FundingCarryParams)
    assert config.strategy.entry_apr == Decimal("0.1")
    assert isinstance(config.risk.max_total_notional, Decimal)


def test_strategy_sees_the_same_sizing_fees_and_universe_as_the_bot() -> None:
    config = parse_config_text(
        '[sizing]\nnotional_per_hedge = 500\n[universe]\nsymbols = ["SOL/USDT"]\n'
        "[fees]\nvip_tier = 2\n"
    )

    params = strategy_params(config)
    assert params.sizing.notional_per_hedge == Decimal(500)
    assert params.universe == config.universe and params.universe.symbols == ("SOL/USDT",)
    assert params.fees == config.fees and params.fees.futures_taker != FeeParams().futures_taker
    shared = set(StrategyParams.RESERVED)
    assert params.model_dump(exclude=shared) == config.strategy.model_dump(exclude=shared)


def test_the_strategy_sizes_within_the_risk_limits() -> None:
    """One home for each limit: the strategy allocates within what the risk gate enforces."""
    default = strategy_params(parse_config_text(""))
    config = parse_config_text(
        "[risk]\nmax_open_hedges = 1\nmax_total_notional = 1500\nmax_notional_per_symbol = 1200\n"
    )

    assert default.sizing == SizingParams()  # the old [sizing] defaults: 3, 3000, 1000
    sizing = strategy_params(config).sizing
    assert (sizing.max_hedges, sizing.max_total_notional, sizing.max_notional_per_symbol) == (
        1,
        Decimal(1500),
        Decimal(1200),
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "[risk]\nmax_notional_per_symbol = 500\n",
            "t.toml: risk.max_notional_per_symbol = 500: below sizing.notional_per_hedge (1000)",
        ),
        (
            "[risk]\nmax_total_notional = 500\n",
            "t.toml: risk.max_total_notional = 500: below sizing.notional_per_hedge (1000)",
        ),
    ],
)
def test_a_limit_below_one_hedge_is_refused(text: str, expected: str) -> None:
    problems = problems_of(text)

    assert any(p.startswith(expected) for p in problems), problems


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "[exchange]\nfoo = 1\n",
            "t.toml: exchange.foo: unknown key in [exchange]; allowed keys: environment",
        ),
        (
            "[nonsense]\na = 1\n",
            "t.toml: nonsense: unknown key in [top level]; allowed keys: exchange",
        ),
        (
            '[exchange]\nleverage = "two"\n',
            "t.toml: exchange.leverage = 'two': must be a number, not a string",
        ),
        (
            "[exchange]\nleverage = 200\n",
            "t.toml: exchange.leverage = 200: input should be less than or equal to 125",
        ),
        (
            '[exchange]\nenvironment = "mainnet"\n',
            "t.toml: exchange.environment = 'mainnet': input should be 'production', 'testnet' or 'demo'",
        ),
        (
            "[sizing]\nnotional_per_hedge = -5\n",
            "t.toml: sizing.notional_per_hedge = -5: input should be greater than 0",
        ),
        (
            '[strategy]\nname = "funding_carry"\nexit_apr = 0.2\n',
            "t.toml: strategy.exit_apr = 0.2: must be below entry_apr (0.10)",
        ),
        (
            '[strategy]\nname = "grid"\n',
            "t.toml: strategy.name = 'grid': input should be 'expected_carry' or 'funding_carry'",
        ),
        (
            '[strategy]\nname = "expected_carry"\nentry_apr = 0.2\n',
            "t.toml: strategy.entry_apr: unknown key in [strategy]; allowed keys: name, "
            "instruments, dated, expected_holding_hours",
        ),
        (
            '[strategy]\nname = "funding_carry"\nentry_aprr = 0.2\n',
            "t.toml: strategy.entry_aprr: unknown key in [strategy]; allowed keys: name, "
            "instruments, dated, entry_apr",
        ),
        (
            '[database]\nurl = "mysql://root@x/db"\n',
            "t.toml: database.url: must be sqlite+aiosqlite:///FILE.db or postgresql+asyncpg://USER@HOST/DB",
        ),
        (
            "[sizing]\nnotional_per_hedge = 5000\n",
            "t.toml: sizing.notional_per_hedge = 5000: exceeds risk.max_notional_per_hedge (2000)",
        ),
        (
            "[exchange]\nleverage = 5\n",
            "t.toml: exchange.leverage = 5: exceeds risk.max_leverage (3)",
        ),
        (
            "[risk]\nmin_liquidation_distance = 1.5\n",
            "t.toml: risk.min_liquidation_distance = 1.5: input should be less than or equal to 1",
        ),
        (
            "[schedule]\npoll_seconds = 0\n",
            "t.toml: schedule.poll_seconds = 0: input should be greater than 0",
        ),
        (
            '[exchange]\nspot_api_url = "not a url"\n',
            "t.toml: exchange.spot_api_url = 'not a url': input should be a valid URL",
        ),
        (
            '[exchange]\nenvironment = "testnet"\n',
            "t.toml: exchange.environment = 'testnet': Binance's spot testnet has no USDⓈ-M futures",
        ),
        ("[strategy]\nsizing = {}\n", "t.toml: strategy.sizing: set [sizing] at the top level"),
        ("[strategy\n", "t.toml: not valid TOML"),
    ],
)
def test_bad_config_gets_a_specific_message(text: str, expected: str) -> None:
    problems = problems_of(text)

    assert any(p.startswith(expected) for p in problems), problems
    assert all("\n" not in p for p in problems)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "[paper]\nslippage_bps = 5\n",
            "t.toml: paper.slippage_bps: renamed; write paper.fill_slippage_bps",
        ),
        (
            "[strategy]\nslippage_bps = 2\n",
            "t.toml: strategy.slippage_bps: renamed; write strategy.assumed_slippage_bps",
        ),
        (
            "[strategy.dated]\nslippage_bps = 2\n",
            "t.toml: strategy.dated.slippage_bps: renamed; write "
            "strategy.dated.assumed_slippage_bps",
        ),
        (
            "[sizing]\nmax_hedges = 2\n",
            "t.toml: sizing.max_hedges: moved; write risk.max_open_hedges",
        ),
        (
            "[sizing]\nmax_total_notional = 2000\n",
            "t.toml: sizing.max_total_notional: moved; write risk.max_total_notional",
        ),
        (
            "[sizing]\nmax_notional_per_symbol = 2000\n",
            "t.toml: sizing.max_notional_per_symbol: moved; write risk.max_notional_per_symbol",
        ),
    ],
)
def test_a_renamed_key_names_its_new_name(text: str, expected: str) -> None:
    problems = problems_of(text)

    assert [p for p in problems if p.startswith(expected)] == problems, problems


def test_the_two_slippages_are_read_from_their_own_keys() -> None:
    config = parse_config_text(
        "[paper]\nfill_slippage_bps = 7\n[strategy]\nassumed_slippage_bps = 3\n"
    )

    assert config.paper.fill_slippage_bps == Decimal(7)
    assert isinstance(config.strategy, ExpectedCarryParams)
    assert config.strategy.assumed_slippage_bps == Decimal(3)


def test_every_problem_is_reported_not_only_the_first() -> None:
    problems = problems_of("[exchange]\nleverage = 0\nfoo = 1\n[risk]\nmax_open_hedges = 0\n")

    assert len(problems) == 3


def test_missing_config_file_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not found; pass --config FILE"):
        load_config(tmp_path / "nope.toml")


def test_live_mode_without_keys_is_refused_with_the_missing_names() -> None:
    settings = Settings.model_validate({"BINANCE_API_KEY": "k" * 64})

    with pytest.raises(UserError, match="live mode needs BINANCE_API_SECRET"):
        resolve_mode(settings, live_flag=True)


def test_keys_without_the_live_flag_still_run_paper() -> None:
    settings = Settings.model_validate(
        {"BINANCE_API_KEY": "k" * 64, "BINANCE_API_SECRET": "s" * 64}
    )

    assert resolve_mode(settings, live_flag=False) is Mode.PAPER
    assert resolve_mode(settings, live_flag=True) is Mode.LIVE


def test_carrybot_mode_live_counts_as_the_live_flag() -> None:
    settings = Settings.model_validate(
        {"CARRYBOT_MODE": "LIVE", "BINANCE_API_KEY": "k" * 64, "BINANCE_API_SECRET": "s" * 64}
    )

    assert resolve_mode(settings, live_flag=False) is Mode.LIVE


def test_plain_postgres_url_is_mapped_to_the_async_driver() -> None:
    config = parse_config_text('[database]\nurl = "postgresql://postgres@127.0.0.1/x"\n')

    assert config.database.url == "postgresql+asyncpg://postgres@127.0.0.1/x"


def test_every_config_key_is_in_the_example_file_and_the_readme() -> None:
    example = EXAMPLE.read_text()
    readme = (REPO_ROOT / "README.md").read_text()
    dumped = Config.model_validate({}).model_dump()
    missing = []
    tables = [(section, values) for section, values in dumped.items()]
    for section, values in tables:
        for key, value in values.items():
            if section == "strategy" and key in {"sizing", "fees", "universe"}:
                continue
            if isinstance(value, dict) and value:  # a sub-table such as [strategy.dated]
                tables.append((f"{section}.{key}", value))
                if f"\n[{section}.{key}]" not in example:
                    missing.append(f"example: [{section}.{key}]")
                if f"`[{section}.{key}]`" not in readme:
                    missing.append(f"README: [{section}.{key}]")
                continue
            if f"\n{key} =" not in example and f"\n# {key} =" not in example:
                missing.append(f"example: {section}.{key}")
            if f"`{key}`" not in readme:
                missing.append(f"README: {section}.{key}")

    assert missing == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[exchange]\nleverage = true\n", "t.toml: exchange.leverage = true: must be a number"),
        (
            "[risk]\nmax_open_hedges = false\n",
            "t.toml: risk.max_open_hedges = false: must be a number",
        ),
        ("[risk]\nmax_net_delta_usdt = true\n", "risk.max_net_delta_usdt = true: must be a number"),
        ("[risk]\nmax_net_delta_base = { BTC = true }\n", "the value of BTC must be a number"),
        ("[schedule]\npoll_seconds = false\n", "schedule.poll_seconds = false: must be a number"),
        ('[exchange]\nleverage = "2"\n', "exchange.leverage = '2': must be a number, not a string"),
        (
            "[strategy]\nhistory_periods = true\n",
            "strategy.history_periods = true: must be a number",
        ),
    ],
)
def test_booleans_and_strings_are_not_numbers(text: str, expected: str) -> None:
    (problem,) = problems_of(text)

    assert problem.startswith("t.toml: ") and expected in problem


def test_an_exact_decimal_may_be_written_as_a_string() -> None:
    config = parse_config_text('[fees]\nspot_taker = "0.00075"\n[exchange]\nleverage = 3\n')

    assert config.fees.spot_taker == Decimal("0.00075")
    assert config.exchange.leverage == 3
