"""The COIN-M user-data stream (dapi listenKey) through real ccxt.pro's `binancecoinm`.

Against the fake's `/dapi/v1/listenKey` and `/d/ws/<listenKey>`: an order's final state
from the stream wins the race with REST, a gap is resolved by the REST look-up and a resync,
bad frames are one logged line, the key is kept alive and renewed apart from USDⓈ-M's.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from bot.config import Config, config_from_dict
from bot.domain import Instrument, OrderRequest, OrderStatus, OrderType, Side
from bot.streams.exchange import StreamedExchange
from bot.streams.factory import coinm_user_off_reason, with_streams
from bot.streams.health import StreamState
from bot.streams.status import snapshot_rows, status_lines
from bot.streams.user import COINM_USER, FUTURES_USER, UserStreams
from tests.fakes.binance_server import DEFAULT_API_KEY, DEFAULT_API_SECRET, FakeBinance
from tests.fakes.fixtures import coinm_instruments, live_for, seed, seed_coinm
from tests.integration.streams.conftest import wait_for

D = Decimal
DAPI_ORDER = "/dapi/v1/order"
Rig = tuple[FakeBinance, StreamedExchange, Instrument]


def _config(fake: FakeBinance, **streams: object) -> Config:
    return config_from_dict(
        {
            "exchange": {"spot_api_url": fake.url, "futures_api_url": fake.url},
            "universe": {"symbols": ["BTC/USDT"]},
            "strategy": {"instruments": ["perpetual", "quarterly", "coinm"]},
            "streams": {
                "spot_ws_url": fake.spot_ws_url,
                "futures_ws_url": fake.futures_ws_url,
                "spot_ws_api_url": fake.ws_api_url,
                "coinm_ws_url": fake.coinm_ws_url,
                "silence_seconds": 1.0,
                "settle_seconds": 0.5,
                "reconnect_max_backoff_seconds": 0.4,
                **streams,
            },
        }
    )


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    fake = FakeBinance(coinm_instruments(datetime.now(UTC)))
    await fake.start()
    seed(fake)
    seed_coinm(fake)
    fake.account.deposit("spot", "BTC", D("1"))
    fake.account.transfer("BTC", D("1"), from_wallet="spot", to_wallet="coinm")
    config = _config(fake, listen_key_keepalive_minutes=0.01)  # every 0.6 s
    live = live_for(fake, coinm=True)
    exchange = with_streams(
        live, config, fake.clock, api_key=DEFAULT_API_KEY, api_secret=DEFAULT_API_SECRET
    )
    assert isinstance(exchange, StreamedExchange)
    try:
        await exchange.source.start()
        user = _user(exchange)
        await wait_for(lambda: user.live(FUTURES_USER) and user.live(COINM_USER), timeout=5)
        inst = next(i for i in (await live.load_instruments()).values() if i.is_inverse)
        yield fake, exchange, inst
    finally:
        await exchange.close()
        await fake.stop()


def _user(exchange: StreamedExchange) -> UserStreams:
    user = exchange.source.user
    assert user is not None
    return user


def _short(inst: Instrument, cid: str, contracts: str = "2") -> OrderRequest:
    return OrderRequest(inst.symbol, Side.SELL, OrderType.MARKET, D(contracts), cid)


async def test_a_coinm_fill_whose_response_is_lost_is_known_from_the_stream(rig: Rig) -> None:
    fake, exchange, inst = rig
    fake.add_fault("drop", DAPI_ORDER, method="POST")

    order = await exchange.create_order(_short(inst, "cb-cm-lost"))

    assert (order.status, order.filled, order.symbol) == (OrderStatus.FILLED, D(2), inst.symbol)
    assert order.average_price is not None and order.average_price > 0
    assert order.fee is not None and order.fee > 0 and order.fee_asset == "BTC"  # in the coin
    assert fake.requests_to(DAPI_ORDER, "GET") == []  # no REST look-up
    assert exchange.stream_fills == 1
    again = await exchange.fetch_order(inst.symbol, "cb-cm-lost")
    assert again == order and (exchange.stream_lookups, exchange.rest_lookups) == (1, 0)
    server = fake.account.fetch_order(inst.symbol, "cb-cm-lost")
    assert (server.filled, server.average_price) == (order.filled, order.average_price)


async def test_account_updates_give_the_coin_wallet_and_the_short(rig: Rig) -> None:
    fake, exchange, inst = rig
    user = _user(exchange)
    await exchange.create_order(_short(inst, "cb-cm-acct", "3"))

    await wait_for(lambda: user.coinm.updates >= 1, timeout=3)

    position = user.coinm.positions[(inst.exchange_symbol, "BOTH")]
    assert position.contracts == D(-3)
    wallet = fake.account.coinm_account("BTC").wallet_balance
    assert user.coinm.wallets["BTC"] == wallet


async def test_the_coinm_listen_key_is_kept_alive_apart_from_usdm(rig: Rig) -> None:
    fake, exchange, _ = rig
    keys = {k.market: k for k in fake.streams.listen_keys.values()}
    assert set(keys) == {"fapi", "dapi"} and keys["fapi"].key != keys["dapi"].key
    await wait_for(lambda: keys["dapi"].keepalives >= 2 and keys["fapi"].keepalives >= 2, timeout=4)
    assert _user(exchange).coinm_keepalives >= 2
    assert {m for m, _ in fake.streams.coinm_listen_key_requests} == {"POST", "PUT"}


async def test_an_expired_coinm_listen_key_is_renewed_and_the_stream_reconnects(rig: Rig) -> None:
    fake, exchange, inst = rig
    user = _user(exchange)
    assert fake.streams.expire_listen_key(market="dapi") == 1
    await wait_for(
        lambda: sum(k.market == "dapi" for k in fake.streams.listen_keys.values()) == 2, timeout=4
    )
    health = exchange.source.health.get(COINM_USER)
    assert health is not None
    await wait_for(lambda: health.reconnects >= 1 and user.live(COINM_USER), timeout=4)
    futures = exchange.source.health.get(FUTURES_USER)
    assert futures is not None and futures.reconnects == 0  # USDⓈ-M's key untouched
    await exchange.create_order(_short(inst, "cb-cm-renewed"))
    await wait_for(lambda: user.final_order("cb-cm-renewed") is not None, timeout=3)


async def test_an_order_during_a_disconnect_is_resolved_by_rest_and_a_resync(rig: Rig) -> None:
    fake, exchange, inst = rig
    user = _user(exchange)
    resyncs: list[int] = []
    exchange.source.on_user_resync = lambda: resyncs.append(1)
    fake.streams.refuse_for(1.5, prefix="/d/")
    await fake.streams.drop_all(prefix="/d/ws/")
    await wait_for(lambda: not user.live(COINM_USER), timeout=2)
    fake.add_fault("drop", DAPI_ORDER, method="POST")  # and the response is lost too

    placed = await exchange.create_order(_short(inst, "cb-cm-gap"))

    assert (placed.status, placed.filled) == (OrderStatus.FILLED, D(2))
    assert len(fake.requests_to(DAPI_ORDER, "GET")) >= 1  # looked up by client order id
    assert len(fake.requests_to(DAPI_ORDER, "POST")) == 1  # never sent twice
    await wait_for(lambda: user.live(COINM_USER), timeout=6)
    assert resyncs == [1]  # the reconciler checks the orders in flight by REST
    fake.clear_requests()
    found = await exchange.fetch_order(inst.symbol, "cb-cm-gap")
    assert (found.filled, found.status) == (D(2), OrderStatus.FILLED)
    assert len(fake.requests_to(DAPI_ORDER, "GET")) == 1
    assert user.final_order("cb-cm-gap") is None  # never replayed, never counted twice


async def test_malformed_coinm_frames_are_one_line_each_and_lose_nothing(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    fake, exchange, inst = rig
    user = _user(exchange)
    health = exchange.source.health.get(COINM_USER)
    assert health is not None
    await exchange.create_order(_short(inst, "cb-cm-before"))
    await wait_for(lambda: user.coinm.updates >= 1, timeout=3)
    wallets_before = dict(user.coinm.wallets)
    bad_order = json.dumps(
        {
            "e": "ORDER_TRADE_UPDATE",
            "E": 1,
            "T": 1,
            "o": {
                "s": inst.exchange_symbol,
                "c": "cb-cm-bad",
                "S": "SELL",
                "o": "MARKET",
                "q": "2",
                "p": "0",
                "ap": "50000",
                "X": "FILLED",
                "x": "TRADE",
                "i": 9,
                "z": "two",
                "t": 5,
                "n": "0",
                "N": "BTC",
                "T": 1,
            },
        }
    )
    bad_account = '{"e":"ACCOUNT_UPDATE","E":2,"T":2,"a":{"m":"ORDER","B":[{"a":"BTC","wb":"x"}]}}'
    caplog.set_level(logging.WARNING)

    assert await fake.streams.send_raw(bad_order, prefix="/d/ws/") == 1
    assert await fake.streams.send_raw(bad_account, prefix="/d/ws/") == 1
    await wait_for(lambda: health.bad_messages == 2, timeout=3)

    lines = [r.getMessage() for r in caplog.records if r.name.startswith("bot.")]
    assert len(lines) == 2 and all("\n" not in line for line in lines)
    assert "ORDER_TRADE_UPDATE" in lines[0] and "cb-cm-bad" in lines[0] and "`z`" in lines[0]
    assert "a.B[].wb" in lines[1]
    assert not any(k in line for k in fake.streams.listen_keys for line in lines)  # no key
    assert user.final_order("cb-cm-bad") is None and user.coinm.wallets == wallets_before
    assert user.live(COINM_USER) and health.reconnects == 0
    order = await exchange.create_order(_short(inst, "cb-cm-after"))  # the stream still works
    await wait_for(lambda: user.final_order("cb-cm-after") is not None, timeout=3)
    streamed = user.final_order("cb-cm-after")
    assert streamed is not None and (streamed.filled, streamed.status) == (
        order.filled,
        order.status,
    )


async def test_coinm_stream_health_is_in_status_and_the_heartbeat(rig: Rig) -> None:
    fake, exchange, inst = rig
    await exchange.create_order(_short(inst, "cb-cm-health"))
    health = exchange.source.health.get(COINM_USER)
    assert health is not None and health.state is StreamState.LIVE
    await wait_for(lambda: health.messages >= 2, timeout=3)  # order + account update
    assert health.endpoint == fake.coinm_ws_url  # the base, never the listenKey
    rows = {r.name: r for r in snapshot_rows(exchange.source.health, fake.clock)}
    assert rows[COINM_USER].state == "live" and rows[COINM_USER].messages >= 2
    lines = status_lines(list(rows.values()), _config(fake).streams, fake.clock.now())
    assert any(COINM_USER in line and "live" in line for line in lines)
    assert "/6 live" in exchange.source.health.summary()  # counted with the others
    assert COINM_USER not in exchange.source.health.summary()  # named only when not live
    fake.streams.refuse_for(5, prefix="/d/")
    await fake.streams.drop_all(prefix="/d/ws/")
    await wait_for(lambda: COINM_USER in exchange.source.health.summary(), timeout=3)
    rows = {r.name: r for r in snapshot_rows(exchange.source.health, fake.clock)}
    assert rows[COINM_USER].state != "live"


def test_the_coinm_user_stream_needs_its_url_when_dapi_points_elsewhere() -> None:
    config = config_from_dict(
        {
            "exchange": {"futures_api_url": "http://127.0.0.1:1"},
            "strategy": {"instruments": ["perpetual", "coinm"]},
            "streams": {"futures_ws_url": "ws://127.0.0.1:1/f/ws"},
        }
    )
    reason = coinm_user_off_reason(config)
    assert reason is not None and "streams.coinm_ws_url" in reason
    assert coinm_user_off_reason(config_from_dict({})) is None  # Binance's dstream
