"""A USDⓈ-M short near liquidation with `liquidation_action = "add_margin"`: the USDT moved
from spot to futures is a row of the `transfers` table, listed by `carrybot status`."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.domain import HedgeState, PositionMode
from bot.domain.ledger import TransferStatus
from bot.persistence.repositories import Ledger
from bot.reporting import build_status
from tests.fakes.fixtures import standard_instruments
from tests.integration.execution.coinm_loop_kit import start_coinm_bot
from tests.integration.execution.test_protect_then_rebalance import set_price
from tests.kit import T0

D = Decimal
pytestmark = pytest.mark.postgres


async def test_margin_added_to_a_short_near_liquidation_is_recorded_as_a_transfer(
    ledger: Ledger, engine: AsyncEngine
) -> None:
    async with start_coinm_bot(
        standard_instruments(T0),
        ledger,
        engine,
        mode="paper",
        position_mode=PositionMode.ONE_WAY,
        strategy={"min_hold_hours": 5000, "cooldown_hours": 5000},
        risk={"liquidation_action": "add_margin"},
        paper={"initial_futures_quote": 700},  # a small futures wallet: 2x is near liquidation
    ) as bot:
        set_price(bot.fake, D("50000"))
        bot.clock.advance(timedelta(hours=1))
        await bot.loop.poll()
        await bot.loop.evaluate()
        (opened,) = await ledger.hedges.active()
        assert opened.state is HedgeState.OPEN

        set_price(bot.fake, D("70000"))  # +40 %: the short nears liquidation
        bot.clock.advance(timedelta(hours=1))
        await bot.loop.poll()
        await bot.loop.evaluate()

        (added,) = await ledger.events.recent(kind="risk.margin_added")
        (moved,) = await ledger.transfers.for_hedges([opened.id])
        assert (moved.asset, moved.from_wallet, moved.to_wallet) == ("USDT", "spot", "futures")
        assert (moved.status, moved.exchange_id) == (TransferStatus.DONE, None)  # paper
        assert moved.amount == D(added.data["amount"]) > 0
        assert moved.reason.startswith("add margin: short liquidation distance")
        report = await build_status(ledger, now=bot.clock.now())
        assert [t.id for t in report.transfers] == [moved.id]
