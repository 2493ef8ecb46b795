"""Instrument filters for replayed symbols."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from bot.backtest.filters import build_instruments, generic_filters
from bot.domain import MarketKind

D = Decimal
WHEN = datetime(2024, 1, 1, tzinfo=UTC)


def test_build_instruments_btc_uses_binance_filters() -> None:
    spot, perp = build_instruments(
        "BTC", "USDT", D("40000"), spot_listed_at=WHEN, perp_listed_at=WHEN
    )

    assert (spot.symbol, spot.kind) == ("BTC/USDT", MarketKind.SPOT)
    assert (spot.step_size, spot.tick_size, spot.min_notional) == (D("0.00001"), D("0.01"), D(5))
    assert (perp.symbol, perp.kind, perp.settle) == ("BTC/USDT:USDT", MarketKind.PERPETUAL, "USDT")
    assert (perp.step_size, perp.tick_size, perp.min_notional) == (D("0.001"), D("0.1"), D(100))
    assert perp.listed_at == WHEN


def test_build_instruments_eth_perp_min_notional_is_20() -> None:
    _, perp = build_instruments("ETH", "USDT", D("3000"), spot_listed_at=WHEN, perp_listed_at=WHEN)

    assert perp.min_notional == D(20)


def test_generic_filters_scale_with_price() -> None:
    cheap, dear = generic_filters(D("0.0899")), generic_filters(D("101.77"))

    assert (cheap.tick_size, cheap.step_size) == (D("0.000001"), D("1"))
    assert (dear.tick_size, dear.step_size) == (D("0.01"), D("0.0001"))
