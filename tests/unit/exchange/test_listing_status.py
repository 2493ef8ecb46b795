"""Instrument status rows: delistings announced by a delivery date, statuses leaving TRADING."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.domain import MarketKind
from bot.domain.instruments import untradable_pairs
from bot.exchange.binance_parse import listing_status
from bot.exchange.listing_status import apply_status
from tests import kit

FAR = 4133404800000  # what Binance gives a perpetual with no delivery
SOON = int(datetime(2026, 12, 20, 8, tzinfo=UTC).timestamp() * 1000)


def test_a_perpetual_delivery_date_before_2100_is_a_delisting_date() -> None:
    assert listing_status({"status": "TRADING", "deliveryDate": FAR}, MarketKind.PERPETUAL) == {
        "active": True,
        "status": "TRADING",
        "delist_at": None,
    }
    soon = listing_status({"status": "TRADING", "deliveryDate": SOON}, MarketKind.PERPETUAL)
    assert soon["delist_at"] == datetime(2026, 12, 20, 8, tzinfo=UTC) and soon["active"]
    dated = listing_status({"status": "TRADING", "deliveryDate": SOON}, MarketKind.DATED_FUTURE)
    assert dated["delist_at"] is None  # a quarterly's delivery is its expiry, not a delisting


def test_status_rows_change_only_what_they_name_and_a_vanished_perpetual_is_removed() -> None:
    btc, btc_perp, eth, eth_perp = (
        kit.spot("BTC"),
        kit.perp("BTC"),
        kit.spot("ETH"),
        kit.perp("ETH"),
    )
    instruments = {i.symbol: i for i in (btc, btc_perp, eth, eth_perp)}

    fresh, changed = apply_status(
        instruments,
        {"BTCUSDT": {"symbol": "BTCUSDT", "status": "BREAK"}},
        {"ETHUSDT": {"symbol": "ETHUSDT", "status": "TRADING", "deliveryDate": FAR}},
    )

    assert {i.symbol for i in changed} == {"BTC/USDT", "BTC/USDT:USDT", "ETH/USDT:USDT"}
    assert fresh["ETH/USDT"] is eth  # not asked for: unchanged
    assert untradable_pairs(fresh) == {"BTC/USDT": "BTC/USDT status BREAK"}
    assert fresh["BTC/USDT:USDT"].status == "REMOVED"
