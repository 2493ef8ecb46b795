"""Domain value objects shared by every component. Pure data: no I/O, no clock."""

from bot.domain.account import (
    Balance,
    FundingPayment,
    FuturesAccount,
    MarginMode,
    Position,
    PositionMode,
)
from bot.domain.events import Event, EventSink, ListEventSink, Severity
from bot.domain.hedge import (
    Hedge,
    HedgeState,
    Leg,
    OrderPurpose,
    check_transition,
    client_order_id,
)
from bot.domain.instruments import Instrument, MarketKind, Pair
from bot.domain.intents import CloseHedge, Intent, OpenHedge, ResizeHedge, RollHedge
from bot.domain.market import FundingInfo, MarketSnapshot, OrderBook, Quote, SettledFunding
from bot.domain.orders import Fill, Order, OrderRequest, OrderStatus, OrderType, PositionSide, Side
from bot.domain.portfolio import Portfolio

__all__ = [
    "Balance",
    "CloseHedge",
    "Event",
    "EventSink",
    "Fill",
    "FundingInfo",
    "FundingPayment",
    "FuturesAccount",
    "Hedge",
    "HedgeState",
    "Instrument",
    "Intent",
    "Leg",
    "ListEventSink",
    "MarginMode",
    "MarketKind",
    "MarketSnapshot",
    "OpenHedge",
    "Order",
    "OrderBook",
    "OrderPurpose",
    "OrderRequest",
    "OrderStatus",
    "OrderType",
    "Pair",
    "Portfolio",
    "Position",
    "PositionMode",
    "PositionSide",
    "Quote",
    "ResizeHedge",
    "RollHedge",
    "SettledFunding",
    "Severity",
    "Side",
    "check_transition",
    "client_order_id",
]
