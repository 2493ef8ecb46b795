"""Bad input at start-up is refused with one `error:` line, exit 2, no traceback, no order.

Loose config numbers, pairs that are not listed, ledgers the bot cannot use, and API keys the
exchange refuses: each is the user's to fix, so each is said at once and nothing is traded.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.conftest import PG_HOST, PG_PORT
from tests.e2e.bot_harness import BotEnv, fake_process
from tests.e2e.conftest import make_env
from tests.fakes.binance_server import DEFAULT_API_KEY, DEFAULT_API_SECRET

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def module_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BotEnv]:
    """One fake and one migrated ledger for the module: nothing here changes their state."""
    workdir = tmp_path_factory.mktemp("refused")
    for fake in fake_process(standard=True):
        env = make_env(fake, workdir, f"sqlite+aiosqlite:///{workdir / 'ledger.db'}", live=True)
        env.set_funding("BTC", "0.0006", history="0.0006")  # attractive: a bot would enter
        yield env


@pytest.fixture
def live(module_env: BotEnv) -> BotEnv:
    module_env.write_config()
    module_env.fake.control("DELETE", "/_fake/requests")
    return module_env


def refused_once(env: BotEnv, **environ: str) -> str:
    """Run `run --live --once`; assert exit 2, one error line, no traceback, no order."""
    result = env.run_once(**environ)
    assert result.code == 2, result.stdout + result.stderr
    lines = [x for x in result.stderr.splitlines() if x.startswith("error: ")]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert env.orders_on_server("/api/v3/order") == []
    assert env.orders_on_server("/fapi/v1/order") == []
    return lines[0]


def with_section(env: BotEnv, section: str, line: str) -> None:
    text = env.config.read_text()
    env.config.write_text(text.replace(f"[{section}]\n", f"[{section}]\n{line}\n", 1))


@pytest.mark.parametrize(
    ("section", "line", "field"),
    [
        ("exchange", "leverage = true", "exchange.leverage = true"),
        ("risk", "max_open_hedges = false", "risk.max_open_hedges = false"),
        ("risk", "daily_loss_limit = true", "risk.daily_loss_limit = true"),
        ("schedule", "poll_seconds = true", "schedule.poll_seconds = true"),
        ("exchange", 'recv_window_ms = "5000"', "exchange.recv_window_ms = '5000'"),
    ],
)
def test_a_boolean_or_string_for_a_number_is_refused_naming_the_field(
    live: BotEnv, section: str, line: str, field: str
) -> None:
    text = live.config.read_text()
    key = line.split(" = ")[0]
    live.config.write_text("\n".join(x for x in text.splitlines() if not x.startswith(f"{key} =")))
    with_section(live, section, line)

    error = refused_once(live)

    assert field in error and "must be a number" in error


@pytest.mark.parametrize(
    ("symbol", "nearest"),
    [("BTCUSDT", "BTC/USDT"), ("ETH/USDT:USDT", "ETH/USDT"), ("BTC/USDC", "BTC/USDT")],
)
def test_a_pair_not_listed_on_both_markets_is_refused_naming_the_nearest(
    live: BotEnv, symbol: str, nearest: str
) -> None:
    live.config.write_text(
        live.config.read_text().replace(
            'symbols = ["BTC/USDT", "ETH/USDT"]', f'symbols = ["{symbol}", "ETH/USDT"]'
        )
    )

    error = refused_once(live)

    assert f"universe.symbols: {symbol!r}" in error
    assert f"nearest listed: {nearest!r}" in error


def test_a_pair_nothing_resembles_says_where_to_find_listed_ones(live: BotEnv) -> None:
    live.config.write_text(
        live.config.read_text().replace(
            'symbols = ["BTC/USDT", "ETH/USDT"]', 'symbols = ["QQQ/ZZ"]'
        )
    )

    error = refused_once(live)

    assert "'QQQ/ZZ' is not listed on both markets" in error and "carrybot scan" in error


def _ro_copy(env: BotEnv) -> str:
    return f"sqlite+aiosqlite:///file:{env.workdir / 'ledger.db'}?mode=ro&uri=true"


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("sqlite+aiosqlite:///{tmp}/missing/dir/ledger.db", "does not exist: create it (mkdir -p"),
        ("readonly", "the ledger file is read-only: make it writable"),
        (f"postgresql+asyncpg://postgres:hunter2@{PG_HOST}:1/carrybot", "cannot reach PostgreSQL"),
        (
            f"postgresql+asyncpg://postgres:hunter2@{PG_HOST}:{PG_PORT}/carrybot_no_such_db",
            "has no database 'carrybot_no_such_db': create it (createdb",
        ),
    ],
)
def test_a_ledger_the_bot_cannot_use_is_one_line_naming_the_url_and_the_fix(
    live: BotEnv, url: str, says: str
) -> None:
    url = _ro_copy(live) if url == "readonly" else url.format(tmp=live.workdir)
    error = refused_once(live, DATABASE_URL=url)

    assert says in error
    assert "hunter2" not in error
    if "hunter2" in url:
        assert "postgres:***@" in error


@pytest.mark.parametrize(
    ("key", "secret", "code"),
    [("wrong-key", DEFAULT_API_SECRET, "-2015"), (DEFAULT_API_KEY, "not-the-secret", "-1022")],
)
def test_a_refused_api_key_exits_2_at_once_without_retrying(
    live: BotEnv, key: str, secret: str, code: str
) -> None:
    started = time.monotonic()

    error = refused_once(live, BINANCE_API_KEY=key, BINANCE_API_SECRET=secret)

    assert time.monotonic() - started < 20  # no backoff-and-retry cycle
    assert "refused the API key" in error and "BINANCE_API_KEY" in error and code in error
    assert secret not in error
    signed = [r for r in live.fake.control("GET", "/_fake/requests") if "signature" in r["params"]]
    assert len(signed) == 1, signed  # one refused request, not three rounds of them
