"""The bot's own loop on a COIN-M perpetual: entry, funding paid in the coin, close.

`"coinm"` in `[strategy] instruments`: with USDⓈ-M funding low, no basis on either
quarterly and the COIN-M perpetual paying 0.03 % every 8 h (~33 % a year), the strategy
opens spot + COIN-M perpetual short (the coin moved to the COIN-M wallet, whole
contracts). The funding settles in the coin: the ledger records it in BTC and values it in
USDT at the mark; the close moves it back with the margin and sells it. Paper (the bot's
simulator) and live (the fake's dapi), both position modes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.domain import HedgeState
from bot.domain.ledger import TransferStatus
from bot.persistence.repositories import Ledger
from bot.reporting import build_status
from tests import kit
from tests.fakes.fixtures import coinm_instruments
from tests.integration.execution.coinm_loop_kit import (
    LOOP_MODES,
    CoinmBot,
    loop_mode_id,
    start_coinm_bot,
)

D = Decimal
pytestmark = pytest.mark.postgres
T0 = kit.T0
PERP, COINM_PERP = "BTC/USDT:USDT", "BTC/USD:BTC"
QUARTER, COINM_QUARTER = "BTC/USDT:USDT-240530", "BTC/USD:BTC-240530"
FUNDING_AT = T0 + timedelta(hours=8)


@pytest.fixture(params=LOOP_MODES, ids=loop_mode_id)
async def coinm_perp_bot(
    request: pytest.FixtureRequest, ledger: Ledger, engine: AsyncEngine
) -> AsyncIterator[CoinmBot]:
    mode, position_mode = request.param
    instruments = [*coinm_instruments(T0), kit.coinm("BTC")]
    async with start_coinm_bot(
        instruments, ledger, engine, mode=mode, position_mode=position_mode
    ) as bot:
        fake = bot.fake
        fake.set_funding(PERP, rate="0.00001")  # 1.1 % a year
        fake.set_funding(
            COINM_PERP, rate="0.0003", next_funding_time=FUNDING_AT, mark="50000", index="50000"
        )
        fake.set_quote("BTC/USDT", "49999.99", "50000.00", "5", "5")
        for future in (PERP, QUARTER, COINM_QUARTER):
            fake.set_quote(future, "50000.0", "50000.1", "500", "500")  # no basis to sell
        fake.set_quote(COINM_PERP, "50000.0", "50000.1", "500", "500")
        yield bot


async def test_the_coinm_perpetual_is_opened_its_coin_funding_valued_in_usdt_and_closed(
    coinm_perp_bot: CoinmBot, ledger: Ledger
) -> None:
    bot = coinm_perp_bot
    bot.clock.advance(timedelta(hours=1))
    snap = await bot.loop.poll()
    assert snap is not None and [p.perp.symbol for p in snap.coinm_perp_pairs] == [COINM_PERP]
    assert snap.funding[COINM_PERP].funding_rate == D("0.0003")  # dapi's premiumIndex
    await bot.loop.evaluate()

    hedge = await ledger.hedges.get(1)
    assert hedge is not None and (hedge.state, hedge.perp_symbol) == (HedgeState.OPEN, COINM_PERP)
    assert D(hedge.metrics["net_apr"]) > D("0.1")  # funding APR net of both ways' fees
    contracts = hedge.perp_quantity
    assert contracts in (9, 10)  # 1000 USDT of coin at ~50 000: whole 100 USD contracts
    (short,) = bot.sim.coinm_positions()
    assert (short.symbol, short.size, short.is_short) == (COINM_PERP, contracts, True)
    assert bot.sim.positions() == []  # no USDⓈ-M short
    (moved,) = await ledger.transfers.for_hedges([1])
    assert (moved.to_wallet, moved.status) == ("coinm", TransferStatus.DONE)
    clean_before = len(await ledger.events.recent(kind="reconcile.ok"))
    await bot.loop.reconcile()  # the short and the coin are where the ledger says
    assert len(await ledger.events.recent(kind="reconcile.ok")) == clean_before + 1

    # The funding settles in the coin: contracts × 100 USD / mark × rate.
    bot.clock.advance(timedelta(hours=7, minutes=2))
    bot.fake.settle_funding(COINM_PERP, funding_time=FUNDING_AT)
    assert await bot.loop.poll() is not None
    assert await bot.loop.capture_funding(force=True) >= 1
    (paid,) = await ledger.funding.payments(hedge_id=1)
    coin = (contracts * 100 / D(50000) * D("0.0003")).quantize(D("0.00000001"))
    assert (paid.symbol, paid.asset, paid.amount, paid.mark_price) == (
        COINM_PERP,
        "BTC",
        coin,
        D(50000),
    )
    (line,) = (await build_status(ledger, now=bot.clock.now())).open
    assert line.pnl.funding == coin * 50000  # in USDT, at the mark
    assert line.pnl.funding > 0

    # The close buys the contracts back and moves the coin back, its funding with it.
    closed = await bot.loop.executor.close(hedge, bot.loop.pairs[COINM_PERP], reason="test")
    assert closed.state is HedgeState.CLOSED
    assert bot.sim.coinm_positions() == []
    assert bot.sim.coinm_account("BTC").wallet_balance == 0  # nothing left behind
    assert D(closed.metrics["coin_funding"]) == coin
    assert bot.sim.spot_balances()["BTC"].total < kit.spot().step_size
