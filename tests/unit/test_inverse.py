"""COIN-M maths: whole contracts with a bounded remainder, P&L in coin and in USDT."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bot.domain.inverse import contracts_for, hedge_value_usdt, short_pnl_coin

D = Decimal


def test_contracts_are_whole_and_the_remainder_is_less_than_one() -> None:
    size = contracts_for(D("1049.99"), D(100))

    assert (size.contracts, size.hedged_usd, size.unhedged_usd) == (D(10), D(1000), D("49.99"))
    assert contracts_for(D("99.99"), D(100)).contracts == 0
    with pytest.raises(ValueError, match="contract_size"):
        contracts_for(D(100), D(0))


def test_a_short_loses_coin_when_the_price_rises_and_gains_when_it_falls() -> None:
    assert short_pnl_coin(D(10), D(100), D(50000), D(40000)) == D(1000) * (
        D(1) / 40000 - D(1) / 50000
    )
    assert short_pnl_coin(D(10), D(100), D(50000), D(40000)) == D("0.005")
    assert short_pnl_coin(D(10), D(100), D(50000), D(62500)) == D("-0.004")


def test_spot_plus_coin_m_short_keeps_its_usd_value_and_earns_the_basis() -> None:
    # 1000 USD shorted at 51000 against 0.02 BTC bought at 50000 (2 % basis).
    spot_coin, contracts, size = D("0.02"), D(10), D(100)
    entry_future = D(51000)
    for delivery in (D(40000), D(50000), D(55000)):
        value = hedge_value_usdt(spot_coin, contracts, size, entry_future, delivery, delivery)
        # At delivery F = S = P: value = 1000 + 1000 × P × (1/50000 − 1/51000) USDT.
        expected = 1000 + 1000 * delivery * (D(1) / 50000 - D(1) / 51000)
        assert value == pytest.approx(expected, abs=D("1e-20"))
    # In coin the hedge holds 0.02 BTC plus the short's P&L; at 55000 that is 0.018574 BTC.
    coin = spot_coin + short_pnl_coin(contracts, size, entry_future, D(55000))
    assert round(coin, 6) == D("0.018574")
    assert round(coin * 55000, 2) == D("1021.57")
