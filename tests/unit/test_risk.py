"""The risk gate: every limit denies what it should and lets through what it should."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from bot.config import ExchangeConfig, RiskConfig
from bot.domain import (
    CloseHedge,
    Hedge,
    HedgeState,
    ListEventSink,
    MarginMode,
    OpenHedge,
    Position,
    PositionSide,
    ResizeHedge,
    RollHedge,
)
from bot.domain.ledger import TradingState
from bot.risk import AddMargin, Rebalance, RiskGate, RiskView
from tests import kit
from tests.kit import T0

D = Decimal


def hedge(
    hid: int = 1,
    pair: str = "BTC/USDT",
    notional: str = "1000",
    state: HedgeState = HedgeState.OPEN,
    spot: str = "0.02",
    short: str = "0.02",
) -> Hedge:
    base = pair.split("/")[0]
    return Hedge(
        id=hid,
        uid=f"u{hid}",
        pair=pair,
        spot_symbol=pair,
        perp_symbol=f"{pair}:USDT",
        state=state,
        target_quantity=D(short),
        spot_quantity=D(spot),
        perp_quantity=D(short),
        target_notional=D(notional),
        created_at=T0,
        updated_at=T0,
        metrics={"base": base},
    )


def view(
    *hedges: Hedge,
    trading: TradingState = TradingState.ACTIVE,
    age: float = 1.0,
    daily_pnl: str = "0",
    **kw: Any,
) -> RiskView:
    return RiskView(
        now=T0,
        snapshot_at=T0 - timedelta(seconds=age),
        trading=trading,
        hedges=list(hedges),
        prices={"BTC/USDT": D(50000), "ETH/USDT": D(2500)},
        daily_pnl=D(daily_pnl),
        **kw,
    )


ROOMY = {"max_notional_per_symbol": 2000, "max_total_notional": 5000, "max_open_hedges": 5}
"""Limits with room beyond one 1000 USDT hedge a pair, so each test names the one it tests."""


def gate(**limits: object) -> RiskGate:
    return RiskGate(RiskConfig.model_validate(ROOMY | limits), ExchangeConfig())


def decide_one(g: RiskGate, intent: object, v: RiskView) -> tuple[bool, str]:
    (d,) = g.decide([intent], v)  # type: ignore[list-item]
    return d.accepted, d.reason


OPEN_BTC = OpenHedge("BTC/USDT", D(1000), "carry")


def test_open_within_limits_is_accepted() -> None:
    assert decide_one(gate(), OPEN_BTC, view()) == (True, "within limits")


@pytest.mark.parametrize(
    ("limits", "v", "intent", "reason"),
    [
        ({}, view(age=31), OPEN_BTC, "market data is stale"),
        ({}, view(daily_pnl="-100"), OPEN_BTC, "daily loss 100 reached daily_loss_limit"),
        ({"max_notional_per_hedge": 999}, view(), OPEN_BTC, "exceeds max_notional_per_hedge 999"),
        ({}, view(hedge(1, notional="1500")), OPEN_BTC, "would exceed max_notional_per_symbol"),
        (
            {"max_total_notional": 2500},
            view(hedge(1, "ETH/USDT", "2000", spot="1", short="1")),
            OPEN_BTC,
            "would exceed max_total_notional 2500",
        ),
        (
            {"max_open_hedges": 1},
            view(hedge(1, "ETH/USDT", spot="1", short="1")),
            OPEN_BTC,
            "max_open_hedges 1 reached",
        ),
        (
            {},
            view(hedge(1, notional="100", state=HedgeState.OPENING)),
            OPEN_BTC,
            "still opening, closing or unwinding",
        ),
        ({}, view(trading=TradingState.REDUCING), OPEN_BTC, "trading is REDUCING"),
        ({}, view(trading=TradingState.HALTED), OPEN_BTC, "trading is HALTED"),
        (
            {"max_net_delta_usdt": 10},
            view(hedge(1, notional="100", spot="0.0025", short="0.002")),
            OPEN_BTC,
            "BTC net delta 0.0005 (25.00 USDT) exceeds max_net_delta_usdt 10",
        ),
        (
            {"max_net_delta_base": {"BTC": D("0.0001")}},
            view(hedge(1, notional="100", spot="0.0025", short="0.002")),
            OPEN_BTC,
            "exceeds max_net_delta_base 0.0001",
        ),
    ],
)
def test_limit_denies_open(
    limits: dict[str, object], v: RiskView, intent: OpenHedge, reason: str
) -> None:
    accepted, why = decide_one(gate(**limits), intent, v)

    assert not accepted
    assert reason in why


def test_stale_check_uses_the_threshold_exactly() -> None:
    assert decide_one(gate(), OPEN_BTC, view(age=30))[0]
    assert not decide_one(gate(), OPEN_BTC, view(age=30.001))[0]


def test_leverage_above_max_is_denied() -> None:
    g = RiskGate(RiskConfig(max_leverage=3), ExchangeConfig.model_construct(leverage=5))

    assert decide_one(g, OPEN_BTC, view()) == (False, "leverage 5 exceeds max_leverage 3")


def test_accepted_opens_count_toward_later_intents_in_the_same_batch() -> None:
    g = gate(max_total_notional=1500)
    intents = [OPEN_BTC, OpenHedge("ETH/USDT", D(1000), "carry")]

    decisions = g.decide(intents, view())

    assert [d.accepted for d in decisions] == [True, False]


def test_reducing_allows_close_and_shrink_but_not_growth() -> None:
    v = view(hedge(1), trading=TradingState.REDUCING)
    g = gate()

    assert decide_one(g, CloseHedge(1, "exit"), v)[0]
    assert decide_one(g, ResizeHedge(1, D(500), "shrink"), v)[0]
    assert not decide_one(g, ResizeHedge(1, D(1500), "grow"), v)[0]


def test_cutting_a_grown_short_part_of_the_way_back_is_a_reduction() -> None:
    # Target 1000, but the price rose: the short (0.026 BTC at 50000) is worth 1300. A cut
    # back to 1100 reduces what is held, so neither REDUCING nor the per-symbol limit
    # (1000) stops it; growing past what is held still counts as an increase.
    grown = hedge(1, spot="0.026", short="0.026")
    g = gate()

    ok, reason = decide_one(g, ResizeHedge(1, D(1100), "cut back"), view(grown))
    assert ok and reason == "reduces the short held"
    assert decide_one(
        g, ResizeHedge(1, D(1100), "cut back"), view(grown, trading=TradingState.REDUCING)
    )[0]
    assert not decide_one(
        g, ResizeHedge(1, D(1400), "grow"), view(grown, trading=TradingState.REDUCING)
    )[0]


def test_limits_count_each_hedge_at_the_notional_it_was_opened_for() -> None:
    # Two hedges opened for 1000 each, cut back within their band to 1100: a third at 1000
    # still fits max_total_notional 3000 (their shorts' drift within the band never counted).
    def cut_back(hid: int, pair: str) -> Hedge:
        return replace(hedge(hid, pair, notional="1100"), metrics={"notional": "1000"})

    held = view(cut_back(1, "ETH/USDT"), cut_back(2, "XRP/USDT"))
    assert decide_one(gate(max_total_notional=3000), OPEN_BTC, held)[0]
    assert not decide_one(gate(max_total_notional=2999), OPEN_BTC, held)[0]


def test_growing_back_within_the_notional_it_was_opened_for_adds_nothing_to_the_limits() -> None:
    # Opened for 1000, last resized to 880 and shrunk since: a grow-back to 900 fits
    # max_notional_per_symbol 1000 (the limits count the hedge at 1000 already), but is
    # still an increase that REDUCING refuses.
    shrunk = replace(
        hedge(1, notional="880", spot="0.014", short="0.014"), metrics={"notional": "1000"}
    )
    g = gate(max_notional_per_symbol=1000)

    assert decide_one(g, ResizeHedge(1, D(900), "grow back"), view(shrunk)) == (
        True,
        "within limits",
    )
    assert not decide_one(g, ResizeHedge(1, D(1100), "grow"), view(shrunk))[0]
    assert not decide_one(
        g, ResizeHedge(1, D(900), "grow back"), view(shrunk, trading=TradingState.REDUCING)
    )[0]


def test_halted_denies_even_closes() -> None:
    assert decide_one(
        gate(), CloseHedge(1, "exit"), view(hedge(1), trading=TradingState.HALTED)
    ) == (False, "trading is HALTED: no new orders")


def test_close_of_a_hedge_that_is_not_open_is_denied_and_twice_only_once() -> None:
    g = gate()

    assert not decide_one(g, CloseHedge(1, "x"), view(hedge(1, state=HedgeState.CLOSING)))[0]
    assert not decide_one(g, CloseHedge(9, "x"), view(hedge(1)))[0]
    assert [
        d.accepted for d in g.decide([CloseHedge(1, "a"), CloseHedge(1, "b")], view(hedge(1)))
    ] == [True, False]


def short_position(mark: str, liq: str, size: str = "0.02") -> Position:
    return Position(
        "BTC/USDT:USDT",
        PositionSide.BOTH,
        D(size),
        True,
        D("50000"),
        D(mark),
        D(liq),
        D(0),
        2,
        MarginMode.CROSS,
    )


def test_short_near_liquidation_is_reduced_and_a_safe_one_is_left_alone() -> None:
    g = gate(min_liquidation_distance=D("0.25"))
    near = view(hedge(1), positions={"BTC/USDT:USDT": short_position("60000", "66000")})
    far = view(hedge(1), positions={"BTC/USDT:USDT": short_position("50000", "75000")})

    (action,) = g.protect(near)

    assert isinstance(action, ResizeHedge)
    assert action.notional == D("400.00")  # distance 0.1 / 0.25 = 0.4 of 1000
    assert g.protect(far) == []


def test_add_margin_mode_transfers_enough_to_restore_the_distance() -> None:
    g = gate(min_liquidation_distance=D("0.25"), liquidation_action="add_margin")
    near = view(hedge(1), positions={"BTC/USDT:USDT": short_position("60000", "66000")})

    (action,) = g.protect(near)

    assert isinstance(action, AddMargin)
    assert action.amount == D("180.00")  # 0.02 × 60000 × (0.25 − 0.10)


def test_drifted_legs_are_rebalanced_beyond_the_allowed_steps() -> None:
    g = gate(max_leg_imbalance_steps=1)
    steps = {"BTC/USDT": D("0.001")}

    drifted = g.protect(view(hedge(1, spot="0.0225", short="0.02"), step_sizes=steps))
    fine = g.protect(view(hedge(1, spot="0.021", short="0.02"), step_sizes=steps))

    assert [type(a) for a in drifted] == [Rebalance]
    assert fine == []


def test_no_protective_orders_while_halted() -> None:
    v = view(
        hedge(1),
        trading=TradingState.HALTED,
        positions={"BTC/USDT:USDT": short_position("60000", "61000")},
    )

    assert gate().protect(v) == []


def test_daily_loss_switches_to_reducing() -> None:
    g = gate(daily_loss_limit=D(100))

    assert g.trading_state_after(view(daily_pnl="-100.01")) == (
        TradingState.REDUCING,
        "daily loss 100.01 USDT reached daily_loss_limit 100",
    )
    assert g.trading_state_after(view(daily_pnl="-99")) is None


async def test_every_decision_is_recorded_with_its_inputs() -> None:
    sink = ListEventSink()
    v = replace(view(hedge(1, "ETH/USDT", spot="1", short="1")), trading=TradingState.ACTIVE)

    accepted = await gate(max_open_hedges=1).review([OPEN_BTC, CloseHedge(1, "exit")], v, sink)

    assert accepted == [CloseHedge(1, "exit")]
    assert sink.kinds() == ["risk.denied", "risk.accepted"]
    denied = sink.events[0]
    assert denied.data["inputs"]["open_hedges"] == "1"
    assert "max_open_hedges 1 reached" in denied.data["reason"]


def test_a_close_accepted_first_frees_its_room_for_the_opens_after_it() -> None:
    """A rotation at the limits (closes are carried out before opens), as the strategy sized it;
    an open listed before the close still counts the hedge."""
    held = hedge(1, "ETH/USDT", spot="0.4", short="0.4", notional="1000")
    limits = {"max_open_hedges": 1, "max_total_notional": 1000, "max_notional_per_symbol": 1000}
    g = gate(**limits)
    same_pair = OpenHedge("ETH/USDT", D(1000), "rotation into the quarterly")

    rotation = g.decide([CloseHedge(1, "rotation"), OPEN_BTC], view(held))
    back_on_the_pair = g.decide([CloseHedge(1, "rotation"), same_pair], view(held))
    open_first = g.decide([OPEN_BTC, CloseHedge(1, "rotation")], view(held))

    assert [d.accepted for d in rotation] == [True, True]
    assert [d.accepted for d in back_on_the_pair] == [True, True]
    assert [d.accepted for d in open_first] == [False, True]


def test_a_roll_keeps_the_exposure_so_limits_do_not_stop_it_but_the_state_does() -> None:
    """Fills left the held hedge at 1000.5 USDT, above the pair's 1000: its roll (spot
    kept, short moved) still goes through; not when REDUCING, on stale data, or when the
    hedge is not OPEN."""
    held = hedge(1, notional="1000.5")
    g = gate(max_open_hedges=1, max_total_notional=1000, max_notional_per_symbol=1000)
    roll = RollHedge(1, "BTC/USDT:USDT-240829", "roll")

    assert decide_one(g, roll, view(held)) == (True, "a roll keeps the hedge's exposure")
    ok, why = decide_one(g, roll, view(held, trading=TradingState.REDUCING))
    assert not ok and "REDUCING" in why
    ok, why = decide_one(g, roll, view(held, age=3600))
    assert not ok and "stale" in why
    ok, _ = decide_one(g, roll, view(hedge(1, state=HedgeState.CLOSING)))
    assert not ok
    both = g.decide([CloseHedge(1, "take profit"), roll], view(held))
    assert [d.accepted for d in both] == [True, False]  # a hedge being closed is not rolled


def test_entry_gate_blocks_new_exposure_but_not_closes() -> None:
    blocked = {"BTC/USDT": "exchange maintenance 07:00–08:00 UTC is running"}
    g = RiskGate(RiskConfig(), ExchangeConfig(), entry_gate=blocked.get)
    held = hedge(1, "ETH/USDT", spot="0.2", short="0.2", notional="500")
    decisions = g.decide(
        [
            OPEN_BTC,
            OpenHedge("ETH/USDT", D(400), "carry"),
            CloseHedge(1, "exit"),
        ],
        view(held),
    )
    assert [(d.accepted, d.reason) for d in decisions] == [
        (False, blocked["BTC/USDT"]),
        (True, "within limits"),
        (True, "closing reduces exposure"),
    ]
    assert decisions[0].inputs["entry_gate"] == blocked["BTC/USDT"]


def test_a_leg_difference_no_order_can_trade_is_not_rebalanced() -> None:
    """XRP-like filters (common step 1, min notional 5 USDT) at 0.5 USDT: 1.5 apart is
    0.75 USDT, below both markets' minimum orders; 30 apart is not."""
    g = gate(max_leg_imbalance_steps=1)
    xrp = kit.pair("XRP")
    known: dict[str, Any] = {"pairs": {"XRP/USDT": xrp}, "step_sizes": {"XRP/USDT": D("1")}}

    def drifted(spot: str) -> Hedge:
        h = hedge(1, pair="XRP/USDT", spot=spot, short="200")
        return replace(h, entry_spot_price=D("0.5"))

    assert g.protect(view(drifted("201.5"), **known)) == []
    assert [type(a) for a in g.protect(view(drifted("230"), **known))] == [Rebalance]
    # A short 1.5 larger can be cut by a reduce-only order, which min notional exempts.
    assert [type(a) for a in g.protect(view(drifted("198.5"), **known))] == [Rebalance]
