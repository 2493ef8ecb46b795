"""The bot's own loop on dated carries: paper run to take profit, rolls and their faults.

The loop is assembled by `bot.app.assemble_loop` (the composition root of `carrybot run`)
over the fake Binance: paper mode takes the fake's public data and fills in the simulator;
the live adapter (keyed) sends the orders to the fake, whose faults then apply.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import assemble_loop
from bot.clock import SimulatedClock
from bot.config import Config, config_from_dict
from bot.domain import Hedge, HedgeState, OrderPurpose, Side
from bot.exchange.paper import PaperExchange
from bot.exchange.port import ExchangePort
from bot.lifecycle import start_up
from bot.persistence.outage import BufferedEventSink, OutageGuard
from bot.persistence.repositories import Ledger
from bot.pnl import hedge_pnl
from bot.reporting import build_status
from bot.trading import TradingLoop
from tests import kit
from tests.fakes.binance_server import FakeBinance
from tests.fakes.fixtures import live_for, seed, standard_instruments
from tests.integration.execution.rig import PERP_ORDER

D = Decimal
pytestmark = pytest.mark.postgres
T0 = kit.T0
QUARTER = "BTC/USDT:USDT-240530"  # standard_instruments: delivery 2024-05-30 08:00 UTC
NEXT = "BTC/USDT:USDT-240829"
NEXT_ID = "BTCUSDT_240829"
PERP = "BTC/USDT:USDT"
SPOT_FEE, FUTURES_FEE = D("0.001"), D("0.0005")


@dataclass
class Bot:
    fake: FakeBinance
    clock: SimulatedClock
    exchange: ExchangePort
    loop: TradingLoop
    ledger: Ledger

    async def cycle(self, hours: float = 1) -> None:
        """Advance the clock, then poll and evaluate as the scheduler does."""
        self.clock.advance(timedelta(hours=hours))
        assert await self.loop.poll() is not None
        await self.loop.evaluate()

    async def hedges(self) -> list[Hedge]:
        out = []
        for hedge_id in range(1, 10):
            hedge = await self.ledger.hedges.get(hedge_id)
            if hedge is not None:
                out.append(hedge)
        return out

    def short(self, symbol: str) -> Decimal:
        account = self.fake.account if not isinstance(self.exchange, PaperExchange) else None
        positions = (account or self.exchange.simulator).positions()  # type: ignore[attr-defined]
        return sum(
            (-p.size if p.is_short else p.size for p in positions if p.symbol == symbol), D(0)
        )

    def spot(self) -> Decimal:
        sim = self.exchange.simulator if isinstance(self.exchange, PaperExchange) else None
        balances = (sim or self.fake.account).spot_balances()
        btc = balances.get("BTC")
        return btc.total if btc else D(0)


BotFactory = Callable[..., Awaitable[Bot]]


def bot_config(url: str, **strategy: Any) -> Config:
    return config_from_dict(
        {
            "exchange": {"spot_api_url": url, "futures_api_url": url},
            "universe": {"symbols": ["BTC/USDT"]},
            "strategy": {"min_hold_hours": 0, "cooldown_hours": 0, **strategy},
            "sizing": {"notional_per_hedge": 1000},
            "risk": {"max_open_hedges": 1, "close_retry_backoff_seconds": 0.01},
        }
    )


@pytest.fixture
async def bot_factory(ledger: Ledger, engine: AsyncEngine) -> AsyncIterator[BotFactory]:
    made: list[tuple[FakeBinance, ExchangePort]] = []

    async def build(*, paper: bool, **strategy: Any) -> Bot:
        clock = SimulatedClock(T0)
        next_delivery = T0.replace(hour=8) + timedelta(days=181)
        instruments = [
            *standard_instruments(T0),
            kit.dated("BTC", expiry=next_delivery, contract_type="NEXT_QUARTER"),
        ]
        fake = FakeBinance(instruments, clock=clock)
        await fake.start()
        seed(fake)
        fake.set_funding(PERP, rate="0.00001")  # 1.1 % a year: the perpetual is not worth it
        fake.set_quote("BTC/USDT", "49999.99", "50000.00", "5", "5")
        fake.set_quote(PERP, "50000.0", "50000.1", "5", "5")
        fake.set_quote(QUARTER, "51000.0", "51000.1", "5", "5")  # 2 %: 6.6 % a year net
        fake.set_quote(NEXT, "50600.0", "50600.1", "5", "5")  # 1.2 % over twice as long
        config = bot_config(fake.url, **strategy)
        exchange: ExchangePort
        if paper:
            exchange = await PaperExchange.open(
                live_for(fake, keys=False, clock=clock),
                clock=clock,
                fees=config.fees,
                paper=config.paper,
            )
        else:
            exchange = live_for(fake, clock=clock)
        made.append((fake, exchange))
        guard = OutageGuard(engine, clock)
        events = BufferedEventSink(ledger.events, guard)
        run = await ledger.runs.start(
            mode="paper" if paper else "live",
            environment="production",
            config_hash=config.fingerprint(),
            version="test",
            at=clock.now(),
        )
        loop = await assemble_loop(config, exchange, ledger, guard, events, clock, run.id)
        await start_up(loop, exchange, events, clock)
        return Bot(fake, clock, exchange, loop, ledger)

    try:
        yield build
    finally:
        for fake, exchange in made:
            await exchange.close()
            await fake.stop()


async def test_paper_run_opens_spot_and_quarterly_and_closes_on_take_profit_to_the_cent(
    bot_factory: BotFactory,
) -> None:
    bot = await bot_factory(paper=True)

    await bot.cycle()

    (hedge,) = await bot.hedges()
    assert (hedge.state, hedge.perp_symbol) == (HedgeState.OPEN, QUARTER)
    assert "net basis APR" in (hedge.open_reason or "")
    q = hedge.perp_quantity
    assert q == D("0.02") and bot.short(QUARTER) == -q and bot.short(PERP) == 0

    # The quarterly converges: 0.2 % left of the 2 % sold, so 90 % is captured (>= 80 %).
    bot.fake.set_quote(QUARTER, "50100.0", "50100.1", "5", "5")
    await bot.cycle()

    (hedge,) = await bot.hedges()
    assert hedge.state is HedgeState.CLOSED
    assert (hedge.close_reason or "").startswith("take_profit: basis captured")
    assert bot.short(QUARTER) == 0 and bot.spot() < kit.spot().step_size
    fills = await bot.ledger.fills.for_hedge(hedge.id)
    assert {f.symbol for f in fills} == {"BTC/USDT", QUARTER}  # the perpetual never traded
    bought = sum((f.quantity for f in fills if f.symbol == "BTC/USDT" and f.side is Side.BUY), D(0))
    pnl = hedge_pnl(hedge, fills, D(0), now=bot.clock.now())

    captured = q * ((D("51000.0") - D("50000.00")) - (D("50100.1") - D("49999.99")))
    fees = (
        bought * SPOT_FEE * D("50000.00")  # paid in BTC on the buy
        + q * D("49999.99") * SPOT_FEE
        + q * D("51000.0") * FUTURES_FEE
        + q * D("50100.1") * FUTURES_FEE
    )
    assert captured == D("17.9978")
    assert round(pnl.net, 2) == round(captured - fees, 2) == D("14.99")
    assert round(pnl.fees, 2) == round(fees, 2)


async def _open_then_reach_the_roll_window(bot: Bot) -> Hedge:
    """Open on the quarterly; the next quarter richens; go to 2 days before delivery."""
    await bot.cycle()
    (hedge,) = await bot.hedges()
    assert (hedge.state, hedge.perp_symbol) == (HedgeState.OPEN, QUARTER)
    bot.fake.set_quote(NEXT, "51200.0", "51200.1", "5", "5")  # 2.4 % to late August: pays
    delivery = T0.replace(hour=8) + timedelta(days=90)
    bot.clock.advance(delivery - timedelta(hours=48) - bot.clock.now())
    return hedge


@pytest.mark.parametrize("paper", [True, False], ids=["paper", "live"])
async def test_near_delivery_the_short_rolls_into_the_next_quarter_and_the_spot_stays(
    bot_factory: BotFactory, paper: bool
) -> None:
    bot = await bot_factory(paper=paper, dated={"take_profit_basis": 1})
    before = await _open_then_reach_the_roll_window(bot)

    await bot.cycle(0)

    (hedge,) = await bot.hedges()  # one hedge: the same id, its spot kept
    assert (hedge.id, hedge.state, hedge.perp_symbol) == (before.id, HedgeState.OPEN, NEXT)
    assert hedge.spot_quantity == before.spot_quantity
    assert hedge.perp_quantity == before.perp_quantity
    assert hedge.metrics["rolled_from"] == QUARTER and "roll_to" not in hedge.metrics
    assert bot.short(QUARTER) == 0 and bot.short(NEXT) == -hedge.perp_quantity
    orders = await bot.ledger.orders.for_hedge(hedge.id)
    spot_orders = [o for o in orders if o.symbol == "BTC/USDT"]
    assert [o.purpose for o in spot_orders] == [OrderPurpose.OPEN]  # no spot round trip
    rolled = [(o.purpose, o.symbol, o.side) for o in orders if o.purpose.value.startswith("roll")]
    assert rolled == [
        (OrderPurpose.ROLL_CLOSE, QUARTER, Side.BUY),
        (OrderPurpose.ROLL_OPEN, NEXT, Side.SELL),
    ]
    fills = await bot.ledger.fills.for_hedge(hedge.id)
    assert {f.symbol for f in fills} == {"BTC/USDT", QUARTER, NEXT}
    (sold_next,) = [f for f in fills if f.symbol == NEXT]
    assert hedge.entry_perp_price == sold_next.price
    # The short's P&L counts both contracts: the quarter sold and bought back, the next
    # quarter sold and valued at its price now.
    quarter = {f.side: f.price for f in fills if f.symbol == QUARTER}
    q = hedge.perp_quantity
    pnl = hedge_pnl(hedge, fills, D(0), now=bot.clock.now(), perp_price=D("51100"))
    assert pnl.perp_pnl == q * (quarter[Side.SELL] - quarter[Side.BUY]) + q * (
        sold_next.price - D("51100")
    )
    events = await bot.ledger.events.recent(kind="hedge.rolled")
    assert events and events[0].data["to"] == NEXT


async def test_a_roll_whose_buy_back_fails_once_reduces_the_double_short_and_rolls(
    bot_factory: BotFactory,
) -> None:
    bot = await bot_factory(paper=False, dated={"take_profit_basis": 1})
    before = await _open_then_reach_the_roll_window(bot)
    bot.fake.add_fault("reject", PERP_ORDER, method="POST", symbol="BTCUSDT_240530", code=-1000)

    await bot.cycle(0)

    (hedge,) = await bot.hedges()
    assert (hedge.id, hedge.state, hedge.perp_symbol) == (before.id, HedgeState.OPEN, NEXT)
    assert bot.short(QUARTER) == 0 and bot.short(NEXT) == -hedge.perp_quantity
    assert hedge.spot_quantity == before.spot_quantity


async def test_a_roll_whose_buy_back_never_fills_buys_the_new_short_back(
    bot_factory: BotFactory,
) -> None:
    bot = await bot_factory(paper=False, dated={"take_profit_basis": 1})
    before = await _open_then_reach_the_roll_window(bot)
    bot.fake.add_fault(
        "reject", PERP_ORDER, method="POST", symbol="BTCUSDT_240530", code=-1000, times=None
    )

    await bot.cycle(0)

    (hedge,) = await bot.hedges()  # as before the roll: no double short, nothing naked
    assert (hedge.state, hedge.perp_symbol) == (HedgeState.OPEN, QUARTER)
    assert hedge.perp_quantity == before.perp_quantity and "roll_to" not in hedge.metrics
    assert bot.short(QUARTER) == -before.perp_quantity and bot.short(NEXT) == 0
    assert await bot.ledger.events.recent(kind="hedge.roll_failed")


@pytest.mark.parametrize(
    ("code", "msg"),
    [(-2019, "Margin is insufficient."), (-1013, "Filter failure: NOTIONAL")],
    ids=["margin", "filter"],
)
async def test_a_roll_whose_new_short_is_always_rejected_sells_the_spot_and_ends_flat(
    bot_factory: BotFactory, code: int, msg: str
) -> None:
    bot = await bot_factory(paper=False, dated={"take_profit_basis": 1})
    await _open_then_reach_the_roll_window(bot)
    bot.fake.add_fault(
        "reject", PERP_ORDER, method="POST", symbol=NEXT_ID, code=code, msg=msg, times=None
    )

    await bot.cycle(0)

    (hedge,) = await bot.hedges()
    assert hedge.state is HedgeState.CLOSED
    assert "failed after the buy-back" in (hedge.close_reason or "")
    assert bot.short(QUARTER) == 0 and bot.short(NEXT) == 0
    assert bot.spot() < kit.spot().step_size
    purposes = [o.purpose for o in await bot.ledger.orders.for_hedge(hedge.id)]
    assert purposes.count(OrderPurpose.ROLL_OPEN) == 1 + 5  # retried close_retry_attempts
    assert OrderPurpose.CLOSE in purposes  # the spot sold


@pytest.mark.parametrize("paper", [True, False], ids=["paper", "live"])
async def test_held_to_settlement_the_short_is_delivered_and_the_spot_sold(
    bot_factory: BotFactory, paper: bool
) -> None:
    bot = await bot_factory(paper=paper, dated={"hold_to_settlement": True, "take_profit_basis": 1})
    await bot.cycle()
    (hedge,) = await bot.hedges()
    assert hedge.perp_symbol == QUARTER
    q, entry_future = hedge.perp_quantity, hedge.entry_perp_price
    assert entry_future is not None
    delivery = T0.replace(hour=8) + timedelta(days=90)
    bot.fake.set_quote(QUARTER, "50000.0", "50000.1", "5", "5")  # converged by then
    bot.clock.advance(delivery + timedelta(minutes=1) - bot.clock.now())
    if paper:  # the exchange publishes the price; the simulator settles the paper short
        bot.fake.market.delivery_prices[("BTCUSDT", int(delivery.timestamp() * 1000))] = D(
            "50000.5"
        )
    else:  # the exchange settles the account and publishes the price
        bot.fake.deliver(QUARTER, "50000.5")

    await bot.cycle(0)

    (hedge,) = await bot.hedges()
    assert hedge.state is HedgeState.CLOSED
    assert (hedge.close_reason or "").startswith(f"delivered: {QUARTER} settled")
    assert (hedge.perp_quantity, hedge.exit_perp_price) == (D(0), D("50000.5"))
    assert bot.short(QUARTER) == 0 and bot.spot() < kit.spot().step_size
    fills = await bot.ledger.fills.for_hedge(hedge.id)
    future_fills = [f for f in fills if f.symbol == QUARTER]
    assert [f.side for f in future_fills] == [Side.SELL]  # no trade at delivery
    pnl = hedge_pnl(hedge, fills, D(0), now=bot.clock.now())
    assert pnl.perp_pnl == q * (entry_future - D("50000.5"))
    events = [e.kind for e in await bot.ledger.events.recent()]
    assert "hedge.delivered" in events


@pytest.mark.parametrize("published", [True, False], ids=["price_published", "price_pending"])
async def test_reconciliation_after_delivery_is_not_drift(
    bot_factory: BotFactory, published: bool
) -> None:
    bot = await bot_factory(paper=False, dated={"hold_to_settlement": True, "take_profit_basis": 1})
    await bot.cycle()
    (hedge,) = await bot.hedges()
    delivery = T0.replace(hour=8) + timedelta(days=90)
    bot.clock.advance(delivery + timedelta(minutes=1) - bot.clock.now())
    if published:
        bot.fake.deliver(QUARTER, "50000.5")
    else:  # the exchange has settled the position but not published the price yet
        bot.fake.account.deliver(QUARTER, D("50000.5"))

    await bot.loop.reconcile()

    status = await bot.ledger.trading_state.get()
    assert status is None or status.state.value == "active"
    (after,) = await bot.hedges()
    assert after.state is HedgeState.OPEN
    assert after.perp_quantity == (0 if published else hedge.perp_quantity)
    kinds = [e.kind for e in await bot.ledger.events.recent()]
    assert "reconcile.drift" not in kinds


async def test_an_open_dated_hedge_is_observed_and_valued_by_status(
    bot_factory: BotFactory,
) -> None:
    bot = await bot_factory(paper=True)
    await bot.cycle()
    bot.fake.set_quote(QUARTER, "50800.0", "50800.1", "5", "5")  # 40 % of the basis captured

    await bot.cycle()

    (obs,) = await bot.ledger.observations.for_symbol(QUARTER, limit=1)
    assert (obs.perp_bid, obs.perp_ask) == (D("50800.0"), D("50800.1"))
    report = await build_status(bot.ledger, now=bot.clock.now())
    (line,) = report.open
    assert line.hedge.perp_symbol == QUARTER
    # Valued at the observed mids: the short gained about 0.02 x 200 = 4 USDT so far.
    assert D("3.9") < line.pnl.perp_pnl < D("4.1")


async def test_a_roll_whose_outcome_is_unknown_is_finished_next_cycle_never_resent(
    bot_factory: BotFactory,
) -> None:
    bot = await bot_factory(paper=False, dated={"take_profit_basis": 1})
    before = await _open_then_reach_the_roll_window(bot)
    bot.fake.add_fault("drop", PERP_ORDER, method="POST", symbol=NEXT_ID)  # done, unanswered
    bot.fake.add_fault("server_error", PERP_ORDER, method="GET", times=None)  # no look-up

    await bot.cycle(0)

    (pending,) = await bot.hedges()
    assert (pending.state, pending.perp_symbol) == (HedgeState.OPEN, QUARTER)
    assert pending.metrics["roll_to"] == NEXT
    assert bot.short(NEXT) == -before.perp_quantity  # the exchange did it; unknown to the bot
    assert await bot.ledger.events.recent(kind="hedge.unresolved")
    bot.fake.faults.clear()

    await bot.cycle(0.1)  # the next cycle looks the order up first, then finishes the roll

    (hedge,) = await bot.hedges()
    assert (hedge.id, hedge.state, hedge.perp_symbol) == (before.id, HedgeState.OPEN, NEXT)
    assert "roll_to" not in hedge.metrics
    assert bot.short(QUARTER) == 0 and bot.short(NEXT) == -hedge.perp_quantity
    posts = [r for r in bot.fake.requests_to(PERP_ORDER, "POST") if r.params["symbol"] == NEXT_ID]
    assert len(posts) == 1  # never sent twice


QUARTER_ID = "BTCUSDT_240530"


@pytest.mark.parametrize("migrated_url", ["sqlite"], indirect=True)  # no database case here
async def test_a_roll_always_refused_backs_off_reports_once_then_closes_before_delivery(
    bot_factory: BotFactory,
) -> None:
    """The quarter's buy-back is refused for four hours of 2-minute cycles (120 of them):
    each try sends the pair, the buy-back's retries and the new short's buy-back (8 orders)
    and leaves the hedge on its quarter; tries back off 60 s, doubling to 3600 s, so 9 are
    made, not 120; each condition is one event. Past `exit_before_delivery_hours` the close
    takes over (the exchange takes the quarter's orders again by then)."""
    bot = await bot_factory(paper=False, dated={"take_profit_basis": 1})
    before = await _open_then_reach_the_roll_window(bot)
    opened_orders = len(await bot.ledger.orders.for_hedge(before.id))
    bot.fake.add_fault(
        "reject", PERP_ORDER, method="POST", symbol=QUARTER_ID, code=-1000, times=None
    )

    for _ in range(120):
        await bot.cycle(2 / 60)

    (hedge,) = await bot.hedges()
    assert (hedge.state, hedge.perp_symbol) == (HedgeState.OPEN, QUARTER)
    assert bot.short(QUARTER) == -before.perp_quantity and bot.short(NEXT) == 0
    orders = (await bot.ledger.orders.for_hedge(hedge.id))[opened_orders:]
    tries = [o for o in orders if o.purpose is OrderPurpose.ROLL_OPEN and o.symbol == NEXT]
    assert len(tries) == 9  # at 0, 2, 4, 8, 16, 32, 64, 124 and 184 minutes
    assert len(orders) == 9 * 8
    recent = await bot.ledger.events.recent(limit=2000)
    kinds = [e.kind for e in recent]
    assert kinds.count("hedge.roll_failed") == 1  # each condition once: the roll not done,
    assert kinds.count("order.failed") == 2  # the pair's buy-back refused, its retry refused
    accepted = [e for e in recent if e.kind == "risk.accepted" and e.data["intent"] == "RollHedge"]
    assert len(accepted) == 9
    assert not [e for e in recent if e.kind == "risk.denied" and e.data["intent"] == "RollHedge"]

    bot.fake.faults.clear()
    delivery = T0.replace(hour=8) + timedelta(days=90)
    bot.clock.advance(delivery - timedelta(hours=23) - bot.clock.now())
    await bot.cycle(0)

    (hedge,) = await bot.hedges()
    assert hedge.state is HedgeState.CLOSED
    assert (hedge.close_reason or "").startswith("delivery: 23.0 h")
    assert bot.short(QUARTER) == 0 and bot.short(NEXT) == 0
    assert bot.spot() < kit.spot().step_size
    later = (await bot.ledger.orders.for_hedge(hedge.id))[opened_orders + len(orders) :]
    assert not [o for o in later if o.purpose.value.startswith("roll")]


@pytest.mark.parametrize("migrated_url", ["sqlite"], indirect=True)  # no database case here
async def test_a_next_quarter_gone_settling_is_not_rolled_into_and_the_hedge_closes_in_time(
    bot_factory: BotFactory,
) -> None:
    """The status refresh (every `instrument_status_seconds`) sees the next quarter leave
    TRADING: no roll is sent into it, and the near quarter's hedge closes at the exit
    window instead of staying to delivery."""
    bot = await bot_factory(paper=False, dated={"take_profit_basis": 1})
    await bot.cycle()
    (before,) = await bot.hedges()
    bot.fake.set_quote(NEXT, "51200.0", "51200.1", "5", "5")  # it would pay the roll
    delivery = T0.replace(hour=8) + timedelta(days=90)
    bot.clock.advance(delivery - timedelta(hours=80) - bot.clock.now())
    await bot.cycle(0)  # the daily instrument reload, before the roll window
    settling = [
        replace(i, active=False, status="SETTLING") if i.symbol == NEXT else i
        for i in bot.fake.market.instruments.values()
    ]
    bot.fake.set_instruments(settling)

    await bot.cycle(10)  # 70 h to delivery: in the roll window; the status refreshed
    await bot.cycle(1)

    (hedge,) = await bot.hedges()
    assert (hedge.state, hedge.perp_symbol) == (HedgeState.OPEN, QUARTER)
    orders = await bot.ledger.orders.for_hedge(before.id)
    assert not [o for o in orders if o.purpose.value.startswith("roll")]
    bot.clock.advance(delivery - timedelta(hours=23) - bot.clock.now())
    await bot.cycle(0)
    (hedge,) = await bot.hedges()
    assert hedge.state is HedgeState.CLOSED and bot.short(QUARTER) == 0
