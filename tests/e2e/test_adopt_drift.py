"""A short halved by hand while the bot was down: start-up halts, `status` names the hedge and
the way out, `carrybot adopt` re-bases it, `carrybot adopt --close` closes what is there."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from bot.config import ExchangeConfig
from bot.domain import HedgeState, OrderRequest, OrderType, Side
from bot.domain.ledger import TradingState
from bot.exchange.ccxt_live import LiveExchange
from tests.e2e.bot_harness import BotEnv, ledger_at, server_exposure
from tests.e2e.reliability_kit import btc_attractive_env, requests
from tests.fakes.binance_server import DEFAULT_API_KEY, DEFAULT_API_SECRET
from tests.fakes.fixtures import FakeBinanceProcess

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
D = Decimal


async def buy_back_by_hand(env: BotEnv, quantity: Decimal) -> None:
    """Reduce the short outside carrybot (an operator on the exchange's website)."""
    exchange = LiveExchange(
        ExchangeConfig(spot_api_url=env.fake.url, futures_api_url=env.fake.url),
        api_key=DEFAULT_API_KEY,
        api_secret=DEFAULT_API_SECRET,
    )
    try:
        await exchange.create_order(
            OrderRequest(
                "BTC/USDT:USDT", Side.BUY, OrderType.MARKET, quantity, "by-hand-1", reduce_only=True
            )
        )
    finally:
        await exchange.close()


async def open_and_halve(env: BotEnv) -> int:
    first = env.run_once()
    assert first.code == 0, first.stderr[-3000:]
    async with ledger_at(env.database_url) as ledger:
        (hedge,) = await ledger.hedges.active()
    await buy_back_by_hand(env, (hedge.perp_quantity / 2).quantize(D("0.001")))
    halted = env.run_once()
    assert halted.code == 0, halted.stderr[-3000:]
    async with ledger_at(env.database_url) as ledger:
        status = await ledger.trading_state.get()
        assert status is not None and status.state is TradingState.HALTED
        assert f"carrybot adopt --hedge {hedge.id}" in status.reason
    report = json.loads(env.cli("status", "--json").stdout)
    assert report["drifted_hedges"] == [hedge.id]
    assert any(f"carrybot adopt --close --hedge {hedge.id}" in line for line in report["drift"])
    return hedge.id


async def test_adopt_rebases_the_hedge_on_the_exchange_and_trading_goes_on(
    fake_proc: FakeBinanceProcess, pg_url: str, tmp_path: Path
) -> None:
    env = btc_attractive_env(fake_proc, tmp_path, pg_url)
    hedge_id = await open_and_halve(env)

    asked = env.cli("adopt", "--hedge", str(hedge_id))
    assert asked.code == 0, asked.stderr
    assert "re-based on the exchange's quantities" in asked.stdout
    pending = json.loads(env.cli("status", "--json").stdout)["adopt_requests"]
    assert [r["hedge_id"] for r in pending] == [hedge_id]
    restarted = env.run_once()
    again = env.run_once()  # the next cycle equalises the legs

    assert restarted.code == 0 and again.code == 0, restarted.stderr[-3000:]
    _, short = server_exposure(env)
    async with ledger_at(env.database_url) as ledger:
        status = await ledger.trading_state.get()
        assert status is not None and status.state is TradingState.ACTIVE
        hedge = await ledger.hedges.get(hedge_id)
        assert hedge is not None and hedge.state is HedgeState.OPEN
        assert hedge.perp_quantity == short  # the exchange's short, not the ledger's old one
        assert abs(hedge.spot_quantity - hedge.perp_quantity) <= D("0.001")
        (adopted,) = await ledger.events.recent("hedge.adopted")
        assert adopted.hedge_id == hedge_id and adopted.data["close"] is False
    report = json.loads(env.cli("status", "--json").stdout)
    assert report["drifted_hedges"] == [] and report["adopt_requests"] == []


async def test_adopt_close_closes_what_is_there_and_opens_nothing(
    fake_proc: FakeBinanceProcess, pg_url: str, tmp_path: Path
) -> None:
    env = btc_attractive_env(fake_proc, tmp_path, pg_url)
    hedge_id = await open_and_halve(env)
    env.fake.control("DELETE", "/_fake/requests")

    asked = env.cli("adopt", "--close", "--hedge", str(hedge_id))
    assert asked.code == 0, asked.stderr
    env.set_funding("BTC", "0.00001", history="0.00001")  # nothing to reopen afterwards
    restarted = env.run_once()

    assert restarted.code == 0, restarted.stderr[-3000:]
    spot, short = server_exposure(env)
    assert short == 0 and spot < D("0.0001")
    async with ledger_at(env.database_url) as ledger:
        hedge = await ledger.hedges.get(hedge_id)
        assert hedge is not None and hedge.state is HedgeState.CLOSED
        assert [e.hedge_id for e in await ledger.events.recent("hedge.adopted")] == [hedge_id]
    # Leg by leg, what was there: a spot sell and a buy back of the half short, nothing else.
    spot_sides = [o["params"]["side"] for o in requests(env, "/api/v3/order", "POST")]
    perp = requests(env, "/fapi/v1/order", "POST")
    assert spot_sides == ["SELL"]
    assert [o["params"]["side"] for o in perp] == ["BUY"]


async def test_adopt_refuses_an_unknown_hedge_with_one_line(
    fake_proc: FakeBinanceProcess, pg_url: str, tmp_path: Path
) -> None:
    env = btc_attractive_env(fake_proc, tmp_path, pg_url)

    refused = env.cli("adopt", "--hedge", "42")

    assert refused.code == 2
    assert "--hedge 42: no active hedge with that id" in refused.stderr
