"""COIN-M user-data frames: dapi's ACCOUNT_UPDATE and ORDER_TRADE_UPDATE, exact or refused."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from bot.domain import OrderStatus
from bot.streams.coinm_user import CoinmAccountView, parse_coinm_account_update
from bot.streams.pro_client import redact_listen_key
from bot.streams.user import parse_order_event
from bot.streams.wire import BadFrame
from tests import kit

D = Decimal
KEY = "pqia91ma19a5s61cv6a81va65sdf19v8a65a1a5s61cv6a81va65sdf19v8a65a1"
# Binance's documented COIN-M ACCOUNT_UPDATE (dapi user data stream), trimmed to one coin.
ACCOUNT: dict[str, Any] = {
    "e": "ACCOUNT_UPDATE",
    "E": 1564745798939,
    "T": 1564745798938,
    "i": "SfsR",
    "a": {
        "m": "ORDER",
        "B": [{"a": "BTC", "wb": "122624.12345678", "cw": "100.12345678", "bc": "50.12345678"}],
        "P": [
            {
                "s": "BTCUSD_200925",
                "pa": "-20",
                "ep": "6563.66500",
                "cr": "0",
                "up": "0.0000012",
                "mt": "isolated",
                "iw": "0.0000009",
                "ps": "SHORT",
            }
        ],
    },
}


def _order_event(**o: Any) -> dict[str, Any]:
    body = {
        "s": "BTCUSD_240329",
        "c": "cb-1",
        "S": "SELL",
        "o": "MARKET",
        "f": "GTC",
        "q": "10",
        "p": "0",
        "ap": "20300.1",
        "x": "TRADE",
        "X": "FILLED",
        "i": 8886774,
        "l": "10",
        "z": "10",
        "L": "20300.1",
        "ma": "BTC",
        "N": "BTC",
        "n": "0.00002463",
        "T": 1711000000000,
        "t": 42,
        "R": False,
        "ps": "BOTH",
        "rp": "0",
        **o,
    }
    return {"e": "ORDER_TRADE_UPDATE", "E": 1711000000001, "T": 1711000000000, "o": body}


def test_an_account_update_gives_the_coin_wallet_and_positions_exactly() -> None:
    update = parse_coinm_account_update(ACCOUNT)
    view = CoinmAccountView()

    view.apply(update)

    assert update.reason == "ORDER" and view.wallets == {"BTC": D("122624.12345678")}
    row = view.positions[("BTCUSD_200925", "SHORT")]
    assert (row.contracts, row.entry_price, row.unrealized_pnl) == (
        D(-20),
        D("6563.66500"),
        D("0.0000012"),
    )


def test_a_late_account_update_does_not_go_back_in_time() -> None:
    view = CoinmAccountView()
    view.apply(parse_coinm_account_update(ACCOUNT))
    older = {
        **ACCOUNT,
        "E": ACCOUNT["E"] - 1,
        "a": {**ACCOUNT["a"], "B": [{"a": "BTC", "wb": "1"}]},
    }

    view.apply(parse_coinm_account_update(older))

    assert view.wallets["BTC"] == D("122624.12345678") and view.updates == 1


@pytest.mark.parametrize(
    ("frame", "field"),
    [
        ({**ACCOUNT, "a": "x"}, "`a`"),
        ({**ACCOUNT, "a": {"m": "ORDER", "B": [{"a": "BTC", "wb": "NaN"}]}}, "a.B[].wb"),
        ({**ACCOUNT, "a": {"m": "ORDER", "P": [{"s": "BTCUSD_200925", "pa": "1"}]}}, "a.P[]"),
        ({k: v for k, v in ACCOUNT.items() if k != "E"}, "`E`"),
    ],
)
def test_a_malformed_account_update_is_refused_naming_the_field(
    frame: dict[str, Any], field: str
) -> None:
    with pytest.raises(BadFrame, match="ACCOUNT_UPDATE") as raised:
        parse_coinm_account_update(frame)
    assert field in str(raised.value) and "\n" not in str(raised.value)


def test_a_coinm_order_event_is_in_contracts_with_its_fee_in_the_coin() -> None:
    inst = kit.coinm("BTC", expiry=kit.T0.replace(year=2024, month=3, day=29, hour=8))
    by_id = {(True, inst.exchange_symbol): inst}

    parsed = parse_order_event(_order_event(), by_id)

    assert parsed is not None
    order, trade, fee, asset = parsed
    assert (order.symbol, order.status, order.filled) == (inst.symbol, OrderStatus.FILLED, D(10))
    assert order.average_price == D("20300.1")
    assert (trade, fee, asset) == ("42", D("0.00002463"), "BTC")


@pytest.mark.parametrize(("key", "value"), [("z", "ten"), ("ap", "NaN"), ("q", None)])
def test_a_malformed_coinm_order_event_names_the_field(key: str, value: object) -> None:
    inst = kit.coinm("BTC", expiry=kit.T0.replace(year=2024, month=3, day=29, hour=8))
    frame = _order_event(**{key: value})

    with pytest.raises(BadFrame, match=f"ORDER_TRADE_UPDATE .*`{key}`"):
        parse_order_event(frame, {(True, inst.exchange_symbol): inst})


@pytest.mark.parametrize(
    "url",
    [f"wss://dstream.binance.com/ws/{KEY}", f"ws://127.0.0.1:1/f/private/ws?listenKey={KEY}"],
)
def test_listen_keys_are_redacted_from_logged_urls(url: str) -> None:
    redacted = redact_listen_key(url)
    assert KEY not in redacted and redacted.endswith("<listenKey>")
    assert (
        redact_listen_key("wss://stream.binance.com:9443/ws") == "wss://stream.binance.com:9443/ws"
    )
