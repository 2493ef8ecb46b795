"""Synthetic book: spread rounded outwards on the tick grid, quantities on the step grid."""

from __future__ import annotations

from decimal import Decimal
from itertools import pairwise

import pytest

from bot.backtest.book import SyntheticBook
from tests import kit

D = Decimal


def test_top_half_spread_rounds_outwards_to_tick() -> None:
    book = SyntheticBook(half_spread_bps=D("1"), top_notional=D("50000"))

    bid, ask, qty = book.top(D("93488.83"), kit.perp("BTC"))

    assert (bid, ask) == (D("93479.4"), D("93498.2"))  # 93488.83 -/+ 9.348883
    assert qty == D("0.534")  # 50000 / 93488.83 floored to 0.001


def test_top_zero_spread_on_grid_price_is_not_crossed() -> None:
    book = SyntheticBook(half_spread_bps=D(0))

    bid, ask, _ = book.top(D("100.00"), kit.spot("BTC"))

    assert (bid, ask) == (D("100.00"), D("100.01"))


def test_top_tiny_notional_uses_min_qty() -> None:
    _, _, qty = SyntheticBook(top_notional=D("0.01")).top(D("50000"), kit.perp("BTC"))

    assert qty == D("0.001")


def test_levels_depth_capped_and_strictly_monotonic() -> None:
    book = SyntheticBook(half_spread_bps=D("0.1"), depth_levels=5, level_step_bps=D("0.01"))

    bids, asks = book.levels(D("100"), kit.spot("BTC"), depth=20)

    assert len(bids) == len(asks) == 5
    assert all(a[0] > b[0] for a, b in pairwise(bids))
    assert all(a[0] < b[0] for a, b in pairwise(asks))
    assert (bids[0][0], asks[0][0], bids[0][1]) == book.top(D("100"), kit.spot("BTC"))


def test_levels_deeper_levels_carry_level_notional() -> None:
    book = SyntheticBook(top_notional=D("1000"), level_notional=D("5000"))

    bids, asks = book.levels(D("100"), kit.spot("BTC"), depth=3)

    assert [q for _, q in bids] == [D("10.00000"), D("50.00000"), D("50.00000")]
    assert bids[1][0] == D("99.97")  # 100 x (1 - 3 bps)
    assert asks[2][0] == D("100.05")


def test_synthetic_book_invalid_settings_raise() -> None:
    with pytest.raises(ValueError, match="depth_levels"):
        SyntheticBook(depth_levels=0)
    with pytest.raises(ValueError, match="must be > 0"):
        SyntheticBook(top_notional=D(0))


def test_an_inverse_contract_is_quoted_in_contracts_of_its_size() -> None:
    book = SyntheticBook(top_notional=D("50000"), level_notional=D("100000"))
    coinm = kit.coinm("BTC")  # 100 USD a contract

    _, _, qty = book.top(D("20000"), coinm)
    bids, asks = book.levels(D("20000"), coinm, 3)

    assert qty == D(500)  # 50 000 USD of contracts, not 2.5 coins floored to 2 contracts
    assert [q for _, q in bids] == [D(500), D(1000), D(1000)] == [q for _, q in asks]
