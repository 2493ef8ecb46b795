"""An explicit universe is checked against the pairs listed on both markets."""

from __future__ import annotations

import pytest

from bot.errors import UserError
from bot.listings import check_explicit_symbols, nearest_listed

LISTED = ["BTC/USDT", "ETH/USDT", "SOL/USDT", "ETHFI/USDT"]


@pytest.mark.parametrize(
    ("symbol", "nearest"),
    [
        ("BTCUSDT", "BTC/USDT"),
        ("eth/usdt", "ETH/USDT"),
        ("SOL/USDT:USDT", "SOL/USDT"),
        ("ETHF/USDT", "ETHFI/USDT"),
        ("QQQ/ZZ", None),
    ],
)
def test_nearest_listed_ignores_case_and_separators(symbol: str, nearest: str | None) -> None:
    assert nearest_listed(symbol, LISTED) == nearest


def test_every_unlisted_pair_is_one_line_and_listed_ones_pass() -> None:
    check_explicit_symbols(["BTC/USDT", "ETH/USDT"], LISTED, "binance")

    with pytest.raises(UserError) as refused:
        check_explicit_symbols(["BTCUSDT", "BTC/USDT", "NOPE/USDT"], LISTED, "binance")

    assert refused.value.problems[0] == (
        "universe.symbols: 'BTCUSDT' must be a spot pair written BASE/QUOTE; "
        "nearest listed: 'BTC/USDT'"
    )
    assert refused.value.problems[1].startswith(
        "universe.symbols: 'NOPE/USDT' is not listed on both markets of binance"
    )
    assert len(refused.value.problems) == 2
