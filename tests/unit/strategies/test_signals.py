"""The carry signal of one pair: blend of predicted and settled funding, basis, costs, net carry."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

from strategies.signals import CarrySignal, carry_signal, quantize_metric, smoothed_apr
from tests import kit
from tests.unit.strategies.scenario import Market, market_snapshot, params

D = Decimal
SIZE = D(1000)


def _signal(m: Market, periods: int = 21, **overrides: Any) -> CarrySignal | None:
    snap = market_snapshot(m, periods=periods)
    return carry_signal(snap.pairs[0], snap, params(**overrides), SIZE)


def test_carry_signal_baseline_funding_hand_computed() -> None:
    # Rate 0.01% / 8 h, no premium, no spread: funding 0.9% over 30 days, costs 0.38%.
    sig = _signal(Market("BTC", rate="0.0001"), predicted_weight=D("0.5"))

    assert sig is not None
    assert sig.funding_apr == D("0.1095")
    assert sig.predicted_rate == D("0.0001")
    assert sig.smoothed_apr == D("0.1095")
    assert (sig.fees, sig.slippage) == (D("0.003"), D("0.0008"))
    assert sig.net_carry == D("0.0052")
    assert sig.net_apr == D("0.0052") * 8760 / 720
    assert sig.breakeven_hours == D("304")


def test_carry_signal_4h_symbol_annualises_with_its_own_interval() -> None:
    sig = _signal(Market("ETH", rate="0.0001", interval_hours=4))

    assert sig is not None
    assert sig.interval_hours == 4
    assert sig.funding_apr == D("0.219")
    assert sig.smoothed_apr == D("0.219")  # 21 settled 4 h periods at the same rate


def test_carry_signal_negative_rate_gives_negative_carry_and_no_breakeven() -> None:
    sig = _signal(Market("BTC", rate="-0.0002"))

    assert sig is not None
    assert sig.smoothed_apr == D("-0.219")
    assert sig.net_apr < 0
    assert sig.breakeven_hours is None
    assert sig.negative_run == 21


def test_carry_signal_blends_predicted_rate_and_history_with_the_weight() -> None:
    # Premium 0.2%: predicted F = 0.2% − 0.05% = 0.15% (164.25% APR); history 0.01% (10.95%).
    sig = _signal(Market("BTC", rate="0.0001", premium="0.002"), predicted_weight=D("0.25"))

    assert sig is not None
    assert sig.predicted_rate == D("0.0015")
    assert sig.predicted_minus_exchange == D("0.0014")
    assert sig.smoothed_apr == D("0.25") * D("1.6425") + D("0.75") * D("0.1095")


def test_carry_signal_without_history_uses_the_exchange_rate_for_the_history_term() -> None:
    sig = _signal(Market("BTC", rate="0.0003", history=[]))

    assert sig is not None
    assert sig.ewma_apr is None
    assert sig.history_used == 0
    assert sig.smoothed_apr == D("0.3285")


def test_carry_signal_short_history_is_trusted_in_proportion_to_its_length() -> None:
    # 3 settled periods of a 9-period half-life: 1/3 EWMA (10.95%), 2/3 exchange (32.85%).
    sig = _signal(Market("BTC", rate="0.0003", history=["0.0001"] * 3))

    assert sig is not None
    assert abs(sig.smoothed_apr - (D("0.1095") / 3 + D("0.3285") * 2 / 3)) < D("1e-20")


def test_smoothed_apr_full_history_ignores_the_exchange_rate() -> None:
    assert smoothed_apr(D("0.2"), D("5"), D("0.1"), 21, D("0.5"), D("9")) == D("0.15")


def test_carry_signal_entry_basis_uses_executable_prices() -> None:
    snap = market_snapshot(Market("BTC", premium="0.002"))
    pair = snap.pairs[0]
    spot_q = kit.quote(pair.spot.symbol, "99.9", "100")
    perp_q = kit.quote(pair.perp.symbol, "100.2", "100.3")
    snap = replace(
        snap, spot_quotes={pair.spot.symbol: spot_q}, perp_quotes={pair.perp.symbol: perp_q}
    )

    sig = carry_signal(pair, snap, params(), SIZE)

    assert sig is not None
    assert sig.entry_basis == D("0.002")  # perp bid 100.2 vs spot ask 100
    assert sig.exit_basis == (D("100.3") - D("99.9")) / D("99.9")  # perp ask vs spot bid
    assert sig.captured_basis == sig.entry_basis - (sig.exit_basis - sig.mid_basis)


def test_carry_signal_walks_books_when_present() -> None:
    books = {
        "BTC/USDT": kit.book(
            "BTC/USDT", [("100", "5"), ("99", "10")], [("100", "5"), ("101", "5")]
        ),
        "BTC/USDT:USDT": kit.book("BTC/USDT:USDT", [("100", "20")], [("100", "20")]),
    }
    sig = _signal(Market("BTC", books=books))

    assert sig is not None
    # spot buy 1/201, perp sell 0, spot sell 1/199, perp buy 0
    assert abs(sig.slippage - (D(1) / 201 + D(1) / 199)) < D("1e-20")


def test_carry_signal_missing_quote_gives_none() -> None:
    snap = market_snapshot(Market("BTC"))
    snap = replace(snap, perp_quotes={})

    assert carry_signal(snap.pairs[0], snap, params(), SIZE) is None


def test_carry_signal_metrics_are_short_decimals_for_the_ledger() -> None:
    sig = _signal(Market("BTC", rate="0.0001"))
    assert sig is not None

    metrics = sig.metrics()

    assert metrics["net_apr"] == D("0.0632666667")
    assert metrics["interval_hours"] == D(8) and str(metrics["interval_hours"]) == "8"
    assert {"funding_apr", "smoothed_apr", "entry_basis", "cost", "breakeven_hours"} <= set(metrics)


@pytest.mark.parametrize(
    ("value", "text"),
    [("0E-10", "0"), ("0.000500000", "0.0005"), ("1000", "1000"), ("1E+30", "1E+30")],
)
def test_quantize_metric_drops_trailing_zeros(value: str, text: str) -> None:
    assert str(quantize_metric(D(value))) == text
