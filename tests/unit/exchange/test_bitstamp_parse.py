"""Bitstamp JSON → domain objects, the config's Bitstamp fee defaults and key handling."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import ccxt.async_support as ccxt
import pytest

from bot.config import (
    BITSTAMP_SPOT_MAKER,
    BITSTAMP_SPOT_TAKER,
    Config,
    config_from_dict,
    redacted_settings_view,
)
from bot.domain import OrderStatus, Side
from bot.errors import UserError
from bot.exchange import bitstamp_parse as parse
from bot.settings import Settings, require_venue_keys
from bot.strategy_host import strategy_params
from tests.fakes.bitstamp_fixtures import bitstamp_instruments

D = Decimal
BTCUSD = bitstamp_instruments()[0]


async def test_default_bitstamp_fees_are_ccxts_lowest_tier() -> None:
    client = ccxt.bitstamp()
    try:
        trading = client.describe()["fees"]["trading"]
        assert (D(str(trading["taker"])), D(str(trading["maker"]))) == (
            BITSTAMP_SPOT_TAKER,
            BITSTAMP_SPOT_MAKER,
        )
    finally:
        await client.close()


def test_spot_on_bitstamp_defaults_the_spot_fees_and_keeps_explicit_ones() -> None:
    config = config_from_dict({"venues": {"spot": "bitstamp"}})
    assert (config.fees.spot_taker, strategy_params(config).fees.spot_taker) == (
        D("0.004"),
        D("0.004"),
    )
    assert config.fees.futures_taker == D("0.0005")
    explicit = config_from_dict({"venues": {"spot": "bitstamp"}, "fees": {"spot_taker": "0.002"}})
    assert explicit.fees.spot_taker == D("0.002")


def test_binance_only_config_is_unchanged_by_the_venues_section() -> None:
    plain = Config.model_validate({})
    assert plain.fees.spot_taker == D("0.001")
    assert plain.fingerprint() == config_from_dict({"venues": {"spot": "binance"}}).fingerprint()
    assert plain.fingerprint() != config_from_dict({"venues": {"spot": "bitstamp"}}).fingerprint()


def test_unknown_spot_venue_is_one_line_naming_the_key() -> None:
    with pytest.raises(UserError) as err:
        config_from_dict({"venues": {"spot": "kraken"}})
    assert "venues.spot = 'kraken'" in str(err.value)


def test_live_on_bitstamp_needs_both_bitstamp_keys_and_they_are_redacted() -> None:
    settings = Settings.model_validate({"BITSTAMP_API_KEY": "k" * 32})
    with pytest.raises(UserError, match="BITSTAMP_API_SECRET"):
        require_venue_keys(settings, "bitstamp")
    require_venue_keys(settings, "binance")
    full = Settings.model_validate({"BITSTAMP_API_KEY": "k" * 32, "BITSTAMP_API_SECRET": "s" * 32})
    require_venue_keys(full, "bitstamp")
    view = redacted_settings_view(full)
    assert view["BITSTAMP_API_KEY"] == view["BITSTAMP_API_SECRET"] == "***"
    assert "s" * 32 in full.secret_values()


def test_order_status_sums_its_transactions() -> None:
    info = {
        "id": "77", "datetime": "2024-03-01 00:00:01.500000", "type": "0", "status": "Open",
        "market": "BTC/USD", "amount_remaining": "0.01", "client_order_id": "cb-x-so1",
        "transactions": [
            {"tid": 1, "price": "50000", "btc": "0.006", "usd": "300", "fee": "1.2", "type": 2},
            {"tid": 2, "price": "50010", "btc": "0.004", "usd": "200.04", "fee": "0.8", "type": 2},
        ],
    }  # fmt: skip
    order = parse.order(info, BTCUSD, client_order_id="cb-x-so1")
    assert order.status is OrderStatus.PARTIALLY_FILLED
    assert (order.quantity, order.filled, order.fee, order.fee_asset) == (
        D("0.02"), D("0.010"), D("2.0"), "USD",
    )  # fmt: skip
    assert order.average_price == D("50004")
    assert order.created_at == datetime(2024, 3, 1, 0, 0, 1, 500000, tzinfo=UTC)


def test_user_transaction_sign_gives_the_side_and_deposits_are_skipped() -> None:
    sell = {"id": 9, "datetime": "2024-03-01 00:00:00", "type": "2", "fee": "2", "btc": "-0.01",
            "usd": "500", "btc_usd": "50000", "order_id": 77}  # fmt: skip
    fill = parse.fill(sell, BTCUSD)
    assert fill is not None and (fill.side, fill.quantity, fill.price) == (
        Side.SELL, D("0.01"), D("50000"),
    )  # fmt: skip
    assert parse.fill({**sell, "type": "0"}, BTCUSD) is None


def test_bad_rows_name_the_field() -> None:
    with pytest.raises(ValueError, match="status"):
        parse.order({"id": "1", "status": "Weird"}, BTCUSD, client_order_id="x")
    with pytest.raises(ValueError, match="bid"):
        parse.quote({"bid": "NaN", "ask": "1"}, "BTC/USD", datetime.now(UTC))
