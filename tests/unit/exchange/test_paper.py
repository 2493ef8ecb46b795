"""PaperExchange: the port over a market-data source, persistence, funding settlement."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from bot.clock import SimulatedClock
from bot.config import PaperConfig
from bot.domain import (
    FundingInfo,
    Instrument,
    MarginMode,
    MarketKind,
    OrderBook,
    OrderRequest,
    OrderStatus,
    OrderType,
    Pair,
    Quote,
    SettledFunding,
    Side,
)
from bot.domain.params import FeeParams
from bot.errors import FatalExchangeError, OrderStatusUnknown
from bot.exchange.paper import PaperExchange
from bot.exchange.port import ExchangePort, MarketDataSource
from bot.persistence import migrate
from bot.persistence.db import create_engine, session_factory
from bot.persistence.repositories import PaperStateRepository
from tests import kit

D = Decimal
SPOT = "BTC/USDT"
PERP = "BTC/USDT:USDT"
H = timedelta(hours=1)
NO_FEES = FeeParams(spot_taker=D(0), spot_maker=D(0), futures_taker=D(0), futures_maker=D(0))


class FixedSource:
    """A stand-in market-data source serving fixed data that tests edit in place."""

    def __init__(self, clock: SimulatedClock) -> None:
        self.clock = clock
        self.instruments: dict[str, Instrument] = {SPOT: kit.spot(), PERP: kit.perp()}
        self.books: dict[str, OrderBook] = {
            SPOT: kit.book(SPOT, [("49999", "1")], [("50000", "1")]),
            PERP: kit.book(PERP, [("50000", "5")], [("50000.1", "5")]),
        }
        self.quotes: dict[str, Quote] = {
            SPOT: kit.quote(SPOT, "49999", "50000"),
            PERP: kit.quote(PERP, "50000", "50000.1"),
        }
        self.marks: dict[str, Decimal] = {PERP: D("50000")}
        self.history: dict[str, list[SettledFunding]] = {PERP: []}
        self.closed = False

    async def load_instruments(self, *, reload: bool = False) -> Mapping[str, Instrument]:
        return self.instruments

    async def pairs(self) -> Sequence[Pair]:
        return [kit.pair()]

    async def fetch_funding_snapshot(self) -> Mapping[str, FundingInfo]:
        return {s: kit.funding(s, "0.0001", m, at=self.clock.now()) for s, m in self.marks.items()}

    async def fetch_best_quotes(self, kind: MarketKind) -> Mapping[str, Quote]:
        return {s: q for s, q in self.quotes.items() if self.instruments[s].kind is kind}

    async def fetch_order_book(self, symbol: str, depth: int = 20) -> OrderBook:
        book = self.books.get(symbol)
        if book is None:  # a replay without depth answers with an empty book
            return OrderBook(symbol, (), (), self.clock.now())
        return OrderBook(symbol, book.bids[:depth], book.asks[:depth], book.timestamp)

    async def fetch_volumes_24h(self, kind: MarketKind) -> Mapping[str, Decimal]:
        return {}

    async def fetch_funding_history(
        self, symbol: str, since: datetime, until: datetime | None = None
    ) -> Sequence[SettledFunding]:
        return [
            row
            for row in self.history.get(symbol, [])
            if since <= row.funding_time and (until is None or row.funding_time <= until)
        ]

    async def close(self) -> None:
        self.closed = True


class MemoryStore:
    """A dict standing in for the ledger's paper-state table."""

    def __init__(self) -> None:
        self.states: dict[str, dict[str, object]] = {}
        self.saves = 0
        self.fail = False

    async def load(self, key: str) -> dict[str, object] | None:
        return self.states.get(key)

    async def save(self, key: str, state: dict[str, object], *, at: datetime) -> None:
        if self.fail:
            raise OSError("disk full")
        self.states[key] = state
        self.saves += 1


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock(kit.T0)


@pytest.fixture
def source(clock: SimulatedClock) -> FixedSource:
    return FixedSource(clock)


@pytest.fixture
async def ledger_store(sqlite_url: str) -> AsyncIterator[PaperStateRepository]:
    engine = create_engine(sqlite_url)
    await migrate.upgrade(engine)
    try:
        yield PaperStateRepository(session_factory(engine))
    finally:
        await engine.dispose()


def market(symbol: str, side: Side, qty: str, cid: str, **kw: object) -> OrderRequest:
    return OrderRequest(symbol, side, OrderType.MARKET, D(qty), cid, **kw)  # type: ignore[arg-type]


async def open_paper(
    source: FixedSource, clock: SimulatedClock, store: object = None, **kw: object
) -> PaperExchange:
    return await PaperExchange.open(source, clock=clock, store=store, **kw)  # type: ignore[arg-type]


# --- construction ---------------------------------------------------------------------------


async def test_paper_exchange_implements_the_port_and_names_its_venue(
    source: FixedSource, clock: SimulatedClock
) -> None:
    paper = await open_paper(source, clock)

    assert isinstance(paper, ExchangePort)
    assert isinstance(source, MarketDataSource)
    assert paper.venue == "paper"


async def test_open_funds_a_new_account_from_the_paper_config(
    source: FixedSource, clock: SimulatedClock
) -> None:
    config = PaperConfig(initial_spot_quote=D("1234"), initial_futures_quote=D("567"))

    paper = await open_paper(source, clock, paper=config)

    assert (await paper.fetch_spot_balances())["USDT"].free == D("1234")
    assert (await paper.fetch_futures_account()).wallet_balance == D("567")


# --- orders ---------------------------------------------------------------------------------


async def test_create_order_walks_the_current_book_of_the_source(
    source: FixedSource, clock: SimulatedClock
) -> None:
    paper = await open_paper(source, clock)
    source.books[SPOT] = kit.book(SPOT, [("50990", "1")], [("51000", "0.005"), ("51010", "1")])

    order = await paper.create_order(market(SPOT, Side.BUY, "0.01", "b1"))

    assert order.average_price == D("51005")  # (0.005 x 51000 + 0.005 x 51010) / 0.01


async def test_create_order_without_depth_prices_off_the_quote_plus_slippage(
    source: FixedSource, clock: SimulatedClock
) -> None:
    del source.books[SPOT]
    paper = await open_paper(source, clock, paper=PaperConfig(fill_slippage_bps=D("10")))

    order = await paper.create_order(market(SPOT, Side.BUY, "0.01", "b1"))

    assert order.status is OrderStatus.FILLED
    assert order.average_price == D("50050")  # 50000 x (1 + 10 bps)


async def test_set_margin_mode_unchanged_is_not_an_error(
    source: FixedSource, clock: SimulatedClock
) -> None:
    paper = await open_paper(source, clock)

    await paper.set_margin_mode(PERP, MarginMode.CROSS)
    await paper.set_margin_mode(PERP, MarginMode.ISOLATED)
    await paper.set_margin_mode(PERP, MarginMode.ISOLATED)

    assert paper.simulator.margin_mode(PERP) is MarginMode.ISOLATED


async def test_unexpected_source_failure_surfaces_as_a_bot_error(
    source: FixedSource, clock: SimulatedClock
) -> None:
    paper = await open_paper(source, clock)

    async def broken(kind: MarketKind) -> Mapping[str, Quote]:
        raise KeyError("bid")

    source.fetch_best_quotes = broken  # type: ignore[method-assign]

    with pytest.raises(FatalExchangeError, match="KeyError"):
        await paper.fetch_best_quotes(MarketKind.SPOT)


async def test_order_executed_but_not_saved_reports_status_unknown(
    source: FixedSource, clock: SimulatedClock
) -> None:
    store = MemoryStore()
    paper = await open_paper(source, clock, store)
    store.fail = True

    with pytest.raises(OrderStatusUnknown) as caught:
        await paper.create_order(market(SPOT, Side.BUY, "0.01", "b1"))

    assert caught.value.client_order_id == "b1"
    assert (await paper.fetch_order(SPOT, "b1")).status is OrderStatus.FILLED


async def test_resting_order_filled_by_a_quote_poll_is_saved(
    source: FixedSource, clock: SimulatedClock
) -> None:
    store = MemoryStore()
    paper = await open_paper(source, clock, store)
    await paper.create_order(
        OrderRequest(SPOT, Side.BUY, OrderType.LIMIT, D("0.01"), "l1", price=D("49000"))
    )
    source.quotes[SPOT] = kit.quote(SPOT, "48000", "48990")

    await paper.fetch_best_quotes(MarketKind.SPOT)

    orders = store.states["paper"]["orders"]
    assert isinstance(orders, list) and orders[0]["status"] == "filled"


# --- restart --------------------------------------------------------------------------------


async def test_restart_through_the_ledger_restores_the_whole_account(
    source: FixedSource, clock: SimulatedClock, ledger_store: PaperStateRepository
) -> None:
    first = await open_paper(source, clock, ledger_store)
    await first.create_order(market(SPOT, Side.BUY, "0.01", "b1"))
    await first.create_order(market(PERP, Side.SELL, "0.01", "p1"))
    await first.create_order(
        OrderRequest(SPOT, Side.SELL, OrderType.LIMIT, D("0.005"), "l1", price=D("52000"))
    )
    source.history[PERP] = [SettledFunding(PERP, kit.T0 + 8 * H, D("0.0001"), D("50500"))]
    clock.advance(9 * H)
    source.marks[PERP] = D("50700")
    await first.fetch_funding_snapshot()  # marks are part of the saved account
    payments = await first.fetch_funding_payments(kit.T0)

    second = await open_paper(source, clock, ledger_store)

    assert len(payments) == 1
    assert await second.fetch_spot_balances() == await first.fetch_spot_balances()
    assert await second.fetch_futures_account() == await first.fetch_futures_account()
    positions = await second.fetch_positions()
    assert positions == await first.fetch_positions()
    assert positions[0].unrealized_pnl == D("-7")  # 0.01 short from 50000 at mark 50700
    assert second.simulator.open_orders() == first.simulator.open_orders()
    assert await second.fetch_order(PERP, "p1") == await first.fetch_order(PERP, "p1")
    assert await second.fetch_my_trades(SPOT) == await first.fetch_my_trades(SPOT)
    assert await second.fetch_my_trades(PERP) == await first.fetch_my_trades(PERP)
    assert await second.fetch_funding_payments(kit.T0) == payments
    assert second.simulator.to_state() == first.simulator.to_state()


# --- funding --------------------------------------------------------------------------------


async def test_settle_funding_pays_each_passed_time_once_and_retries_a_missing_row(
    source: FixedSource, clock: SimulatedClock
) -> None:
    paper = await open_paper(source, clock, fees=NO_FEES)
    source.history[PERP] = [SettledFunding(PERP, kit.T0, D("0.0005"), D("50000"))]
    clock.advance(1 * H)
    await paper.create_order(market(PERP, Side.SELL, "0.1", "p1"))
    source.history[PERP].append(SettledFunding(PERP, kit.T0 + 8 * H, D("0.0001"), D("50000")))
    clock.advance(16 * H)  # 17:00: the 16:00 row is not published yet

    first = await paper.settle_funding()
    again = await paper.settle_funding()
    source.history[PERP].append(SettledFunding(PERP, kit.T0 + 16 * H, D("0.0002"), None))
    source.marks[PERP] = D("52000")
    await paper.fetch_funding_snapshot()
    late = await paper.settle_funding()

    assert [(p.funding_time, p.amount) for p in first] == [(kit.T0 + 8 * H, D("0.5"))]
    assert again == []
    assert [(p.funding_time, p.amount) for p in late] == [(kit.T0 + 16 * H, D("1.04"))]
    account = await paper.fetch_futures_account()
    assert account.wallet_balance == D("10001.54")


async def test_funding_of_a_position_closed_before_settlement_is_still_paid(
    source: FixedSource, clock: SimulatedClock
) -> None:
    paper = await open_paper(source, clock, fees=NO_FEES)
    clock.advance(1 * H)
    await paper.create_order(market(PERP, Side.SELL, "0.1", "p1"))
    clock.advance(8 * H)  # 09:00, the 08:00 row lags
    await paper.create_order(market(PERP, Side.BUY, "0.1", "p2", reduce_only=True))
    source.history[PERP] = [SettledFunding(PERP, kit.T0 + 8 * H, D("0.0001"), D("50000"))]

    payments = await paper.fetch_funding_payments(kit.T0)
    still_due = paper.simulator.funding_due()
    source.history[PERP].append(SettledFunding(PERP, kit.T0 + 16 * H, D("0.0001"), D("50000")))
    clock.advance(8 * H)
    later = await paper.settle_funding()

    assert [p.amount for p in payments] == [D("0.5")]
    assert PERP in still_due  # no row after the close yet: a late one could still be due
    assert later == []
    assert paper.simulator.funding_due() == {}


async def test_settle_funding_with_no_position_asks_the_source_nothing(
    source: FixedSource, clock: SimulatedClock
) -> None:
    paper = await open_paper(source, clock)
    calls: list[str] = []

    async def history(
        symbol: str, since: datetime, until: datetime | None = None
    ) -> Sequence[SettledFunding]:
        calls.append(symbol)
        return []

    source.fetch_funding_history = history  # type: ignore[method-assign]

    assert await paper.settle_funding() == []
    assert calls == []


async def test_close_saves_and_closes_the_source(
    source: FixedSource, clock: SimulatedClock
) -> None:
    store = MemoryStore()
    paper = await open_paper(source, clock, store)

    await paper.close()

    assert source.closed
    assert "paper" in store.states
