"""The bot's own loop on a COIN-M quarterly: paper run from entry to take profit.

`"coinm"` in `[strategy] instruments`: with perpetual funding low and the COIN-M quarterly
2 % over spot (the USDⓈ-M one only 0.4 %), the bot buys the coin, moves it to the COIN-M
wallet and shorts whole contracts; the basis converges and it closes on take profit. Its
P&L is checked in the coin (against the inverse formula, to the satoshi) and in USDT
(against the USDT the paper account gained, to the cent).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.clock import SimulatedClock
from bot.domain import HedgeState
from bot.domain.ledger import TransferStatus
from bot.exchange.simulator import SimulatedExchange
from bot.persistence.repositories import Ledger
from bot.pnl import hedge_pnl
from bot.reporting import build_status
from tests import kit
from tests.fakes.binance_server import FakeBinance
from tests.fakes.fixtures import coinm_instruments
from tests.integration.execution.coinm_loop_kit import LOOP_MODES, loop_mode_id, start_coinm_bot

D = Decimal
pytestmark = pytest.mark.postgres
T0 = kit.T0
COINM = "BTC/USD:BTC-240530"
QUARTER = "BTC/USDT:USDT-240530"
PERP = "BTC/USDT:USDT"
SAT = D("0.00000001")


@pytest.fixture(params=LOOP_MODES, ids=loop_mode_id)
async def paper_bot(
    request: pytest.FixtureRequest, ledger: Ledger, engine: AsyncEngine
) -> AsyncIterator[tuple[FakeBinance, SimulatedClock, SimulatedExchange, object]]:
    """The bot's loop in paper mode (fills in its own simulator) or live against the fake's
    dapi endpoints (fills in the fake's account), with `"coinm"` on."""
    mode_name, position_mode = request.param
    async with start_coinm_bot(
        coinm_instruments(T0), ledger, engine, mode=mode_name, position_mode=position_mode
    ) as bot:
        fake = bot.fake
        fake.set_funding(PERP, rate="0.00001")  # 1.1 % a year: the perpetual is not worth it
        fake.set_quote("BTC/USDT", "49999.99", "50000.00", "5", "5")
        fake.set_quote(PERP, "50000.0", "50000.1", "5", "5")
        fake.set_quote(QUARTER, "50200.0", "50200.1", "5", "5")  # 0.4 %
        fake.set_quote(COINM, "51000.0", "51000.1", "500", "500")  # 2 %: the best carry
        yield fake, bot.clock, bot.sim, bot.loop


async def test_paper_run_opens_a_coinm_hedge_and_closes_it_with_pnl_right_in_coin_and_usdt(
    paper_bot: tuple[FakeBinance, SimulatedClock, SimulatedExchange, object], ledger: Ledger
) -> None:
    fake, clock, sim, loop = paper_bot
    usdt_before = sim.spot_balances()["USDT"].total

    clock.advance(timedelta(hours=1))
    assert await loop.poll() is not None  # type: ignore[attr-defined]
    await loop.evaluate()  # type: ignore[attr-defined]

    hedge = await ledger.hedges.get(1)
    assert hedge is not None and (hedge.state, hedge.perp_symbol) == (HedgeState.OPEN, COINM)
    assert hedge.perp_quantity == 10  # 1000 USDT of coin, 1020 USD at 51 000: 10 contracts
    (short,) = sim.coinm_positions()
    entry = hedge.entry_perp_price
    assert entry is not None and D("50900") < entry <= D("51000.0")  # the bid (less slippage)
    assert (short.size, short.is_short, short.entry_price) == (D(10), True, entry)
    assert sim.positions() == []  # no USDⓈ-M short
    coin = hedge.spot_quantity
    assert sim.coinm_account("BTC").wallet_balance == coin - _fee(entry)
    assert abs(D(hedge.metrics["unhedged_usd"])) < 1  # only the spot step's rounding

    # Held: reconciliation finds the short and the coin where the ledger says; equity counts
    # the COIN-M wallet, so the coin's move out of spot is no loss.
    clean_before = len(await ledger.events.recent(kind="reconcile.ok"))
    await loop.reconcile()  # type: ignore[attr-defined]
    assert len(await ledger.events.recent(kind="reconcile.ok")) == clean_before + 1  # clean
    equity = await loop.snapshot_balances()  # type: ignore[attr-defined]
    assert equity is not None and abs(equity - D(20000)) < 5  # 10 000 USDT a wallet, less fees

    # `carrybot status` lists the open hedge's transfer: Binance's tranId live, none in paper.
    (moved,) = (await build_status(ledger, now=clock.now())).transfers
    assert (moved.hedge_id, moved.to_wallet, moved.status) == (1, "coinm", TransferStatus.DONE)
    live = sim is fake.account  # the fake Binance answered the transfer
    assert moved.amount == coin and (moved.exchange_id is not None) == live

    # The COIN-M quarterly converges: 0.2 % left of the 2 % sold, 90 % captured.
    fake.set_quote(COINM, "50100.0", "50100.1", "500", "500")
    clock.advance(timedelta(hours=1))
    assert await loop.poll() is not None  # type: ignore[attr-defined]
    await loop.evaluate()  # type: ignore[attr-defined]

    hedge = await ledger.hedges.get(1)
    assert hedge is not None and hedge.state is HedgeState.CLOSED
    assert (hedge.close_reason or "").startswith("take_profit: basis captured")
    assert sim.coinm_positions() == [] and sim.coinm_account("BTC").wallet_balance == 0
    dust = sim.spot_balances()["BTC"].total
    assert dust < kit.spot().step_size

    # In the coin: 10 contracts × 100 USD × (1/exit − 1/entry), less both fees.
    exit_price = hedge.exit_perp_price
    assert exit_price is not None and D("50100.1") <= exit_price < D("50200")
    short_pnl = (1000 * (1 / exit_price - 1 / entry)).quantize(SAT)
    coin_pnl = short_pnl - _fee(entry) - _fee(exit_price)
    fills = await ledger.fills.for_hedge(hedge.id)
    pnl = hedge_pnl(hedge, fills, D(0), now=clock.now())
    assert pnl.coin_pnl == coin_pnl == D(hedge.metrics["coin_pnl"])
    assert coin_pnl > 0

    # In USDT: what the account gained (its dust valued at the exit price).
    gained = sim.spot_balances()["USDT"].total - usdt_before + dust * (hedge.exit_spot_price or 0)
    assert round(pnl.net, 2) == round(gained, 2)
    assert gained > 0
    # Moving the coin between wallets was neither drift nor a loss.
    assert await ledger.events.recent(kind="reconcile.halt") == []
    assert await ledger.events.recent(kind="reconcile.unowned") == []
    assert await ledger.events.recent(kind="hedge.transfer_failed") == []
    back = (await ledger.transfers.for_hedges([hedge.id]))[1:]
    assert [(t.to_wallet, t.status) for t in back] == [("spot", TransferStatus.DONE)]
    assert (await build_status(ledger, now=clock.now())).transfers == []  # closed: not listed


def _fee(price: Decimal) -> Decimal:
    """The taker fee of 10 contracts of 100 USD at `price`, in BTC (8 decimals)."""
    return (1000 / price * D("0.0005")).quantize(SAT)
