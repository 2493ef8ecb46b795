"""The bot process with streams on, against the fake's WebSocket side (paper and live).

A maintenance-like window: new stream connections are refused when the bot starts. While
they are, REST keeps the snapshot fresh and no hedge is opened; once the server accepts
again (the test ends the window after its checks) and the settle time has passed, the bot
enters by itself. `status` shows the streams.
"""

from __future__ import annotations

import json
import signal
import time
from decimal import Decimal
from functools import partial

import pytest

from bot.domain import HedgeState
from tests.e2e.bot_harness import BotEnv, ledger_at

USER_PREFIXES = ("/f/private/", "/ws-api")
REFUSED_SECONDS = 300.0  # until the checks inside the window are done, then accepted


def streams_section(env: BotEnv) -> str:
    ws = env.fake.url.replace("http://", "ws://", 1)
    return f"""
[streams]
spot_ws_url = "{ws}/stream/ws"
futures_ws_url = "{ws}/f/ws"
spot_ws_api_url = "{ws}/ws-api/v3"
settle_seconds = 2
reconnect_max_backoff_seconds = 0.5
listen_key_keepalive_minutes = 0.05
"""


async def test_no_entry_while_streams_are_refused_then_entry_after_settling(
    bot_env: BotEnv,
) -> None:
    bot_env.write_config(poll=1.0, extra=streams_section(bot_env))
    text = bot_env.config.read_text()  # observations (the status's snapshot age) every second
    bot_env.config.write_text(
        text.replace(
            "heartbeat_seconds = 5", "heartbeat_seconds = 1\nobservation_every_seconds = 1"
        )
    )
    bot_env.set_funding("BTC", "0.0006", history="0.0006")
    bot_env.set_funding("ETH", "0.00001", history="0.00001")
    bot_env.set_perp_premium("ETH", "3000", "0", tick="0.01", qty="20")
    bot_env.fake.control("POST", "/_fake/streams/refuse", {"seconds": REFUSED_SECONDS})
    started = time.monotonic()
    bot = bot_env.spawn("run", "--duration", "120", *(["--live"] if bot_env.live else []))
    try:
        bot.wait_for_log("Risk denied", timeout=30)
        time.sleep(1.0)
        # Inside the window: REST keeps the snapshot fresh, nothing is opened.
        async with ledger_at(bot_env.database_url) as ledger:
            assert await ledger.hedges.active() == []
            denied = await ledger.events.recent("risk.denied")
        assert bot_env.orders_on_server() == []
        status = json.loads(bot_env.cli("status", "--json").stdout)
        assert time.monotonic() - started < REFUSED_SECONDS  # all of this inside the window
        assert status["snapshot_age_seconds"] is not None
        assert status["snapshot_age_seconds"] < 5
        assert any("REST data only" in e.message for e in denied), [e.message for e in denied]

        # The window ends; after the settle time the bot enters on its own.
        bot_env.fake.control("POST", "/_fake/streams/refuse", {"seconds": 0})
        deadline = time.monotonic() + 40
        active = []
        while time.monotonic() < deadline:
            async with ledger_at(bot_env.database_url) as ledger:
                active = await ledger.hedges.active()
            if active and active[0].state is HedgeState.OPEN:
                break
            time.sleep(0.3)
        assert len(active) == 1, bot.log()[-5000:]
        (btc,) = active
        assert (btc.pair, btc.state) == ("BTC/USDT", HedgeState.OPEN)
        assert btc.opened_at is not None
        bot.wait_for_log("streams 3/3 live" if not bot_env.live else "streams 5/5 live", 15)
        bot.signal(signal.SIGTERM)
        assert bot.wait(timeout=60) == 0
    finally:
        bot.kill()
    status = json.loads(bot_env.cli("status", "--json").stdout)
    names = {s["name"] for s in status["streams"]}
    assert {"spot-0", "perp-0", "mark"} <= names
    assert ("user-futures" in names) == bot_env.live
    assert status["maintenance"] is None
    assert all(s["state"] == "live" and s["bad_messages"] == 0 for s in status["streams"])
    text = bot_env.cli("status").stdout
    assert "streams (as of" in text and "spot-0: live" in text


def set_spot_book(env: BotEnv, mid: str, half_spread: str) -> None:
    """A 10-level BTC spot book around `mid`, `half_spread` from mid to each best price."""
    m, h, tick = Decimal(mid), Decimal(half_spread), Decimal("0.01")
    bids = [[str(m - h - tick * i), "2"] for i in range(10)]
    asks = [[str(m + h + tick * i), "2"] for i in range(10)]
    env.fake.control("POST", "/_fake/book", {"symbol": "BTC/USDT", "bids": bids, "asks": asks})


@pytest.mark.parametrize("bot_env", ["live"], indirect=True)
async def test_a_fill_while_the_user_streams_are_down_is_recorded_once_after_the_resync(
    bot_env: BotEnv,
) -> None:
    bot_env.write_config(poll=1.0, extra=streams_section(bot_env))
    bot_env.set_funding("BTC", "0.0006", history="0.0006")
    bot_env.set_funding("ETH", "0.00001", history="0.00001")
    bot_env.set_perp_premium("ETH", "3000", "0", tick="0.01", qty="20")
    spot_book = partial(set_spot_book, bot_env)
    spot_book("50000", "100")  # a wide BTC book (40 bps): no entry yet
    bot = bot_env.spawn("run", "--duration", "120", "--live")
    try:
        bot.wait_for_log("streams 5/5 live", timeout=40)
        time.sleep(2)
        assert bot_env.orders_on_server() == []
        for prefix in USER_PREFIXES:  # the user-data streams go down and stay down
            bot_env.fake.control(
                "POST", "/_fake/streams/refuse", {"seconds": 300, "prefix": prefix}
            )
            bot_env.fake.control("POST", "/_fake/streams/drop", {"prefix": prefix})
        bot.wait_for_log("Stream user-futures down", timeout=10)
        for path in ("/api/v3/order", "/fapi/v1/order"):  # both responses lost as well
            bot_env.fake.control(
                "POST", "/_fake/faults", {"kind": "drop", "path": path, "method": "POST"}
            )
        spot_book("50000", "0.01")  # the book is tight again: the bot enters, in the gap
        deadline, active = time.monotonic() + 40, []
        while time.monotonic() < deadline:
            async with ledger_at(bot_env.database_url) as ledger:
                active = await ledger.hedges.active()
            if active and active[0].state is HedgeState.OPEN:
                break
            time.sleep(0.3)
        assert len(active) == 1 and active[0].state is HedgeState.OPEN, bot.log()[-5000:]
        assert "response lost" in bot.log()  # and the user streams down: a REST look-up

        for prefix in USER_PREFIXES:
            bot_env.fake.control("POST", "/_fake/streams/refuse", {"seconds": 0, "prefix": prefix})
        bot.wait_for_log("back: checking orders in flight by REST", timeout=15)
        time.sleep(3)  # the resync's reconciliation runs
        text = bot.log()
        bot.signal(signal.SIGTERM)
        assert bot.wait(timeout=60) == 0
    finally:
        bot.kill()
    server_fills = [
        f for f in bot_env.account()["fills"] if (f.get("client_order_id") or "").startswith("cb-")
    ]
    async with ledger_at(bot_env.database_url) as ledger:
        recorded = await ledger.fills.all()
        (hedge,) = await ledger.hedges.active()
        orders = await ledger.orders.for_hedge(hedge.id)
    keys = [(f.symbol, f.trade_id) for f in recorded]
    assert len(keys) == len(set(keys)) == len(server_fills) >= 2  # each fill once, none lost
    assert {f.client_order_id for f in recorded} == {o.client_order_id for o in orders}
    assert "drift" not in text and "Reconciliation" not in text.split("back: checking")[1]
