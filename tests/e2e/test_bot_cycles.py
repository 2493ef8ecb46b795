"""`carrybot run --once` end to end: open on high funding, rotate, capture funding once."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from bot.domain import HedgeState
from tests.e2e.bot_harness import BotEnv, ledger_at
from tests.e2e.conftest import make_env
from tests.fakes.fixtures import FakeBinanceProcess

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
D = Decimal


async def test_high_btc_funding_opens_then_rotation_to_eth_then_funding_recorded_once(
    bot_env: BotEnv,
) -> None:
    # Arrange: BTC pays ~66% APR; ETH barely pays and its perp trades at the index.
    bot_env.set_funding("BTC", "0.0006", history="0.0006")
    bot_env.set_funding("ETH", "0.00001", history="0.00001")
    bot_env.set_perp_premium("ETH", "3000", "0", tick="0.01", qty="20")

    # Act 1: one cycle opens BTC.
    first = bot_env.run_once()

    assert first.code == 0, first.stderr[-3000:]
    async with ledger_at(bot_env.database_url) as ledger:
        (btc,) = await ledger.hedges.active()
        assert (btc.pair, btc.state) == ("BTC/USDT", HedgeState.OPEN)
        orders = await ledger.orders.for_hedge(btc.id)
        assert {o.status.value for o in orders} == {"filled"}
        if bot_env.live:  # the account's fees were read over ccxt and put in force
            (fees,) = await ledger.events.recent("fees.updated")
            assert fees.data["vip_tier"] == 0 and fees.data["spot_taker"] == "0.001"
    if bot_env.live:
        cids = {r["params"]["newClientOrderId"] for r in bot_env.orders_on_server("/api/v3/order")}
        cids |= {r["params"]["newClientOrderId"] for r in bot_env.orders_on_server()}
        assert cids == {o.client_order_id for o in orders}

    # Act 2: ETH now pays far more than BTC: the next cycle rotates.
    bot_env.set_funding("BTC", "-0.0002", history="-0.0002")
    bot_env.set_funding("ETH", "0.0008", history="0.0008")
    bot_env.set_perp_premium("ETH", "3000", "3", tick="0.01", qty="20")
    second = bot_env.run_once()

    assert second.code == 0, second.stderr[-3000:]
    async with ledger_at(bot_env.database_url) as ledger:
        closed = await ledger.hedges.get(btc.id)
        assert closed is not None and closed.state is HedgeState.CLOSED
        (eth,) = await ledger.hedges.active()
        assert (eth.pair, eth.state) == ("ETH/USDT", HedgeState.OPEN)

    # Act 3: a funding settlement on the exchange is recorded exactly once.
    settled_at = datetime.now(UTC).isoformat()
    bot_env.fake.control(
        "POST",
        "/_fake/funding/settle",
        {"symbol": "ETH/USDT:USDT", "rate": "0.0008", "mark": "3003", "funding_time": settled_at},
    )
    third = bot_env.run_once()
    fourth = bot_env.run_once()

    assert third.code == 0 and fourth.code == 0, third.stderr[-2000:] + fourth.stderr[-2000:]
    async with ledger_at(bot_env.database_url) as ledger:
        payments = [p for p in await ledger.funding.payments() if p.symbol == "ETH/USDT:USDT"]
        assert len(payments) == 1
        assert payments[0].amount > 0
        assert payments[0].amount == D("0.0008") * eth.perp_quantity * D("3003")
        assert (await ledger.funding.totals_by_hedge())[eth.id] == payments[0].amount

    # The status report reads the same ledger: one closed BTC hedge, ETH open with its funding.
    status = bot_env.cli("status", "--json")
    assert status.code == 0, status.stderr[-2000:]
    report = json.loads(status.stdout)
    assert [h["pair"] for h in report["open_hedges"]] == ["ETH/USDT"]
    assert [h["pair"] for h in report["closed_hedges"]] == ["BTC/USDT"]
    assert D(report["open_hedges"][0]["funding"]) == payments[0].amount
    assert report["trading_state"] == "active" and report["snapshot_age_seconds"] is not None
    totals = report["totals"]
    assert D(totals["net"]) == D(totals["funding"]) + D(totals["basis_pnl"]) - D(totals["fees"])


async def test_live_refuses_a_ledger_holding_paper_hedges(
    fake_proc: FakeBinanceProcess, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}"
    paper = make_env(fake_proc, tmp_path, url, live=False)
    paper.set_funding("BTC", "0.0006", history="0.0006")
    paper.set_perp_premium("ETH", "3000", "0", tick="0.01", qty="20")
    assert paper.run_once().code == 0

    live = BotEnv(fake_proc, tmp_path, url, live=True)
    refused = live.run_once()

    assert refused.code == 2
    assert "holds active paper hedges" in refused.stderr
    assert "use a separate database per mode" in refused.stderr
    assert live.orders_on_server("/api/v3/order") == []
