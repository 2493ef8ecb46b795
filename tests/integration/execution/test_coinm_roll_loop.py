"""The bot's own loop rolling a COIN-M hedge into the next quarter, then to take profit.

Paper (the simulator) and live (the fake's dapi), both position modes: the hedge opened on
the near COIN-M quarterly moves its short to the next one two days before delivery, the
coin staying in the COIN-M wallet (no transfer: one in at the open, one out at the close);
closed on take profit, its P&L is right in the coin (the ledger's figure against the
closer's) and in USDT (against the USDT the account gained, to the cent).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import assemble_loop
from bot.clock import SimulatedClock
from bot.config import config_from_dict
from bot.domain import HedgeState, OrderPurpose, PositionMode
from bot.exchange.paper import PaperExchange
from bot.exchange.port import ExchangePort
from bot.exchange.simulator import SimulatedExchange
from bot.lifecycle import start_up
from bot.persistence.outage import BufferedEventSink, OutageGuard
from bot.persistence.repositories import Ledger
from bot.pnl import hedge_pnl
from tests import kit
from tests.fakes.binance_server import FakeBinance
from tests.fakes.fixtures import coinm_instruments, live_for, seed

D = Decimal
pytestmark = pytest.mark.postgres
T0 = kit.T0
COINM = "BTC/USD:BTC-240530"
DELIVERY = T0.replace(hour=8) + timedelta(days=90)
NEXT_AT = DELIVERY + timedelta(days=91)
NEXT = f"BTC/USD:BTC-{NEXT_AT:%y%m%d}"
QUARTER = "BTC/USDT:USDT-240530"
PERP = "BTC/USDT:USDT"


@pytest.fixture(
    params=[
        ("paper", PositionMode.ONE_WAY),
        ("paper", PositionMode.HEDGE),
        ("live", PositionMode.ONE_WAY),
        ("live", PositionMode.HEDGE),
    ],
    ids=lambda p: f"{p[0]}-{p[1].value}",
)
async def paper_bot(
    request: pytest.FixtureRequest, ledger: Ledger, engine: AsyncEngine
) -> AsyncIterator[tuple[FakeBinance, SimulatedClock, SimulatedExchange, object]]:
    """The bot's loop in paper mode (fills in its own simulator) or live against the fake's
    dapi endpoints (fills in the fake's account), with `"coinm"` on."""
    mode_name, position_mode = request.param
    clock = SimulatedClock(T0)
    instruments = [
        *coinm_instruments(T0),
        kit.coinm("BTC", expiry=NEXT_AT, contract_type="NEXT_QUARTER"),
    ]
    async with FakeBinance(instruments, clock=clock, position_mode=position_mode) as fake:
        seed(fake)
        fake.set_funding(PERP, rate="0.00001")  # 1.1 % a year: the perpetual is not worth it
        fake.set_quote("BTC/USDT", "49999.99", "50000.00", "5", "5")
        fake.set_quote(PERP, "50000.0", "50000.1", "5", "5")
        fake.set_quote(QUARTER, "50200.0", "50200.1", "5", "5")  # 0.4 %
        fake.set_quote(COINM, "51000.0", "51000.1", "500", "500")  # 2 %: the best carry
        fake.set_quote(NEXT, "50600.0", "50600.1", "500", "500")  # 1.2 % over twice as long
        config = config_from_dict(
            {
                "exchange": {
                    "spot_api_url": fake.url,
                    "futures_api_url": fake.url,
                    "position_mode": position_mode.value,
                },
                "universe": {"symbols": ["BTC/USDT"]},
                "strategy": {
                    "min_hold_hours": 0,
                    "cooldown_hours": 0,
                    "instruments": ["perpetual", "quarterly", "coinm"],
                },
                "sizing": {"notional_per_hedge": 1000},
                "risk": {"max_open_hedges": 1, "close_retry_backoff_seconds": 0.01},
                "paper": {"fill_slippage_bps": 0},
            }
        )
        exchange: ExchangePort
        if mode_name == "paper":
            paper = await PaperExchange.open(
                live_for(fake, keys=False, clock=clock, coinm=True),
                clock=clock,
                fees=config.fees,
                paper=config.paper,
            )
            exchange, sim = paper, paper.simulator
        else:
            fake.account.set_instruments(fake.market.instruments)
            exchange, sim = live_for(fake, clock=clock, coinm=True), fake.account
        guard = OutageGuard(engine, clock)
        events = BufferedEventSink(ledger.events, guard)
        run = await ledger.runs.start(
            mode=mode_name,
            environment="production",
            config_hash=config.fingerprint(),
            version="test",
            at=clock.now(),
        )
        loop = await assemble_loop(config, exchange, ledger, guard, events, clock, run.id)
        await start_up(loop, exchange, events, clock)
        try:
            yield fake, clock, sim, loop
        finally:
            await exchange.close()


async def test_a_coinm_hedge_rolls_without_moving_its_coin_and_its_pnl_stays_right(
    paper_bot: tuple[FakeBinance, SimulatedClock, SimulatedExchange, object], ledger: Ledger
) -> None:
    fake, clock, sim, loop = paper_bot
    usdt_before = sim.spot_balances()["USDT"].total

    async def cycle() -> None:
        assert await loop.poll() is not None  # type: ignore[attr-defined]
        await loop.evaluate()  # type: ignore[attr-defined]

    clock.advance(timedelta(hours=1))
    await cycle()
    opened = await ledger.hedges.get(1)
    assert opened is not None and (opened.state, opened.perp_symbol) == (HedgeState.OPEN, COINM)
    wallet = sim.coinm_account("BTC").wallet_balance

    # Two days before delivery the next quarter pays 3.6 %: the short moves there.
    fake.set_quote(NEXT, "51800.0", "51800.1", "500", "500")
    clock.advance(DELIVERY - timedelta(hours=48) - clock.now())
    await cycle()

    hedge = await ledger.hedges.get(1)
    assert hedge is not None and (hedge.state, hedge.perp_symbol) == (HedgeState.OPEN, NEXT)
    assert hedge.metrics["rolled_from"] == COINM
    assert hedge.spot_quantity == opened.spot_quantity  # the coin was kept
    (short,) = sim.coinm_positions()
    assert (short.symbol, short.size) == (NEXT, hedge.perp_quantity)
    # 10 contracts' coin at the next quarter's bid: still 10 (the nearest whole number)
    assert hedge.perp_quantity == 10 and abs(D(hedge.metrics["unhedged_usd"])) <= 100
    # The coin stayed in the COIN-M wallet: only the near short's coin P&L and fees moved it.
    assert abs(sim.coinm_account("BTC").wallet_balance - wallet) < D("0.0002")
    assert len(await ledger.transfers.for_hedges([1])) == 1  # the open's, none for the roll
    kinds = [o.purpose for o in await ledger.orders.for_hedge(1)]
    assert kinds.count(OrderPurpose.ROLL_CLOSE) == kinds.count(OrderPurpose.ROLL_OPEN) == 1
    # At leverage 2 (the default) the coin margins one short, not two: the buy-back went
    # first, the new short after it, nothing refused.
    (rolled,) = await ledger.events.recent(kind="hedge.rolled")
    assert "free beside the old short" in str(rolled.data["sequential"])
    await loop.reconcile()  # type: ignore[attr-defined]
    assert await ledger.events.recent(kind="reconcile.halt") == []
    assert await ledger.events.recent(kind="reconcile.unowned") == []

    # The next quarter converges: 0.2 % left of the 3.6 % its roll sold.
    fake.set_quote(NEXT, "50100.0", "50100.1", "500", "500")
    clock.advance(timedelta(hours=1))
    await cycle()

    hedge = await ledger.hedges.get(1)
    assert hedge is not None and hedge.state is HedgeState.CLOSED
    assert (hedge.close_reason or "").startswith("take_profit")
    assert sim.coinm_positions() == [] and sim.coinm_account("BTC").wallet_balance == 0
    fills = await ledger.fills.for_hedge(hedge.id)
    assert {f.symbol for f in fills} == {"BTC/USDT", COINM, NEXT}
    pnl = hedge_pnl(hedge, fills, D(0), now=clock.now())
    assert pnl.coin_pnl == D(hedge.metrics["coin_pnl"]) and pnl.coin_pnl is not None
    assert pnl.coin_pnl > 0
    dust = sim.spot_balances()["BTC"].total
    gained = sim.spot_balances()["USDT"].total - usdt_before + dust * (hedge.exit_spot_price or 0)
    assert round(pnl.net, 2) == round(gained, 2)
    assert len(await ledger.transfers.for_hedges([1])) == 2  # in at the open, out at the close
