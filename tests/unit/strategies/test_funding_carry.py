"""funding_carry scenarios: each entry rule, each exit rule, rotation and the allocation limits.

With the scenario defaults (predicted_weight 0, no spread, 2 bps slippage per leg and trade)
the smoothed APR is rate × 1095 and costs are 0.38% round trip, 4.62% a year over 720 h:
0.03% every 8 h nets 28.2% (enters), 0.01% nets 6.3% (does not), 0.005% is 5.5% (held
between exit 3% and entry 10%), 0.002% is 2.2% (exits).
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from bot.domain import CloseHedge, HedgeState, OpenHedge
from bot.domain.params import SizingParams
from strategies.funding_carry import FundingCarryParams
from tests.unit.strategies.scenario import (
    T0,
    Market,
    evaluate,
    hedge,
    market_snapshot,
    params,
    portfolio,
)

D = Decimal
GOOD, BASELINE, MEH, BAD = "0.0003", "0.0001", "0.00005", "0.00002"


def _opens(intents: list[object]) -> list[OpenHedge]:
    return [i for i in intents if isinstance(i, OpenHedge)]


def _closes(intents: list[object]) -> list[CloseHedge]:
    return [i for i in intents if isinstance(i, CloseHedge)]


# --- entry ----------------------------------------------------------------------------------


def test_evaluate_high_funding_opens_a_hedge_with_the_numbers_that_justify_it() -> None:
    intents = evaluate(market_snapshot(Market("BTC", rate=GOOD)))

    (opened,) = _opens(intents)
    assert opened.pair == "BTC/USDT"
    assert opened.notional == D(1000)
    assert opened.reason.startswith("entry: net APR 28.")
    assert opened.metrics["smoothed_apr"] == D("0.3285")
    assert opened.metrics["cost"] == D("0.0038")
    assert opened.metrics["net_apr"] > D("0.10")
    assert {"funding_apr", "predicted_rate", "entry_basis", "breakeven_hours"} <= set(
        opened.metrics
    )


def test_evaluate_baseline_funding_does_not_open() -> None:
    assert evaluate(market_snapshot(Market("BTC", rate=BASELINE))) == []


def test_evaluate_adverse_basis_beyond_limit_blocks_entry() -> None:
    # Perp 0.2% under spot (limit 0.15%); funding at 0.05% / 8 h would pay for it.
    snap = market_snapshot(Market("BTC", rate="0.0005", premium="-0.002"))

    assert evaluate(snap) == []
    assert len(_opens(evaluate(snap, p=params(max_entry_basis=D("0.0025"))))) == 1


def test_evaluate_breakeven_beyond_limit_blocks_entry() -> None:
    # Costs 0.38% at 32.85% a year take 101 h to repay.
    snap = market_snapshot(Market("BTC", rate=GOOD))

    assert evaluate(snap, p=params(max_breakeven_hours=D(100))) == []
    assert len(_opens(evaluate(snap, p=params(max_breakeven_hours=D(102))))) == 1


def test_evaluate_recent_negative_settlements_block_entry_despite_high_average() -> None:
    history = ["0.002"] * 18 + ["-0.0001"] * 3

    assert evaluate(market_snapshot(Market("BTC", rate=GOOD, history=history))) == []


def test_evaluate_pair_in_cooldown_is_not_reopened_until_cooldown_ends() -> None:
    snap = market_snapshot(Market("BTC", rate=GOOD))
    recent = portfolio(closed={"BTC/USDT": T0 - timedelta(hours=23)})
    earlier = portfolio(closed={"BTC/USDT": T0 - timedelta(hours=25)})

    assert evaluate(snap, recent) == []
    assert len(_opens(evaluate(snap, earlier))) == 1


def test_evaluate_pair_with_an_active_hedge_is_not_opened_again() -> None:
    snap = market_snapshot(Market("BTC", rate=GOOD))

    assert evaluate(snap, portfolio(hedge("BTC", state=HedgeState.OPENING))) == []


def test_evaluate_explicit_universe_ignores_unlisted_pairs() -> None:
    snap = market_snapshot(Market("BTC", rate=BASELINE), Market("ETH", rate=GOOD))

    assert evaluate(snap, p=params(symbols=("BTC/USDT",))) == []


# --- exit -----------------------------------------------------------------------------------


def test_evaluate_smoothed_apr_below_exit_closes_the_hedge() -> None:
    intents = evaluate(market_snapshot(Market("BTC", rate=BAD)), portfolio(hedge("BTC")))

    (closed,) = _closes(intents)
    assert closed.hedge_id == 1
    assert closed.reason.startswith("exit_apr: smoothed APR 2.19% < 3.00%")
    assert closed.metrics["smoothed_apr"] == D("0.0219")
    assert closed.metrics["age_hours"] == D(48)


def test_evaluate_apr_between_exit_and_entry_keeps_the_hedge() -> None:
    assert evaluate(market_snapshot(Market("BTC", rate=MEH)), portfolio(hedge("BTC"))) == []


@pytest.mark.parametrize(("negatives", "closes"), [(3, 1), (2, 0)])
def test_evaluate_consecutive_negative_settlements_close_even_before_min_hold(
    negatives: int, closes: int
) -> None:
    history = [GOOD] * (21 - negatives) + ["-0.00001"] * negatives
    snap = market_snapshot(Market("BTC", rate=GOOD, history=history))

    intents = evaluate(snap, portfolio(hedge("BTC", age_hours=2)))

    assert len(_closes(intents)) == closes
    if closes:
        assert _closes(intents)[0].reason.startswith("negative_funding: 3 negative")


def test_evaluate_basis_captured_since_entry_takes_profit() -> None:
    # Entered with the perp 0.6% over spot; it has converged to 0: 0.6% captured >= 0.5%.
    held = hedge("BTC", entry_spot="100", entry_perp="100.6")

    (closed,) = _closes(evaluate(market_snapshot(Market("BTC", rate=GOOD)), portfolio(held)))

    assert closed.reason.startswith("take_profit")
    assert closed.metrics["captured_since_entry"] == D("0.006")


def test_evaluate_basis_not_yet_captured_keeps_the_hedge() -> None:
    held = hedge("BTC", entry_spot="100", entry_perp="100.4")

    assert evaluate(market_snapshot(Market("BTC", rate=GOOD)), portfolio(held)) == []


def test_evaluate_hedge_older_than_max_holding_is_closed() -> None:
    held = hedge("BTC", age_hours=2160)

    (closed,) = _closes(evaluate(market_snapshot(Market("BTC", rate=GOOD)), portfolio(held)))

    assert closed.reason.startswith("max_holding")


def test_evaluate_hedge_younger_than_min_hold_is_kept_despite_low_funding() -> None:
    held = hedge("BTC", age_hours=23)

    assert evaluate(market_snapshot(Market("BTC", rate=BAD)), portfolio(held)) == []


@pytest.mark.parametrize("state", [HedgeState.OPENING, HedgeState.CLOSING, HedgeState.UNWINDING])
def test_evaluate_hedges_not_open_are_never_closed(state: HedgeState) -> None:
    history = [BAD] * 18 + ["-0.001"] * 3
    held = hedge("BTC", state=state, age_hours=5000)

    assert (
        evaluate(market_snapshot(Market("BTC", rate=BAD, history=history)), portfolio(held)) == []
    )


def test_evaluate_hedge_without_market_data_is_only_closed_by_time() -> None:
    snap = market_snapshot(Market("ETH", rate=BAD))

    kept = evaluate(snap, portfolio(hedge("BTC", age_hours=100)))
    expired = evaluate(snap, portfolio(hedge("BTC", age_hours=3000)))

    assert kept == []
    assert [c.reason.split(":")[0] for c in _closes(expired)] == ["max_holding"]


# --- allocation -----------------------------------------------------------------------------


def test_evaluate_opens_best_net_carry_first_up_to_max_hedges() -> None:
    rates = {"A": "0.0003", "B": "0.0005", "C": "0.0004", "D": "0.0006"}
    snap = market_snapshot(*(Market(b, rate=r) for b, r in rates.items()))

    opens = _opens(evaluate(snap, p=params(sizing=SizingParams(max_hedges=3))))

    assert [o.pair for o in opens] == ["D/USDT", "B/USDT", "C/USDT"]


def test_evaluate_last_hedge_is_sized_to_the_remaining_total_notional() -> None:
    snap = market_snapshot(*(Market(b, rate=GOOD) for b in ("A", "B", "C")))
    sizing = SizingParams(max_total_notional=D(2500))

    opens = _opens(evaluate(snap, p=params(sizing=sizing)))

    assert [o.notional for o in opens] == [D(1000), D(1000), D(500)]
    assert opens[-1].metrics["notional"] == D(500)


def test_evaluate_hedge_size_respects_the_per_symbol_limit() -> None:
    sizing = SizingParams(notional_per_hedge=D(1000), max_notional_per_symbol=D(600))

    (opened,) = _opens(evaluate(market_snapshot(Market("BTC", rate=GOOD)), p=params(sizing=sizing)))

    assert opened.notional == D(600)


def test_evaluate_room_below_the_exchange_minimum_opens_nothing() -> None:
    # BTC's perp minimum notional is 100 USDT; only 50 is left (ETH, opening, cannot rotate).
    sizing = SizingParams(max_total_notional=D(1050))
    snap = market_snapshot(Market("BTC", rate=GOOD), Market("ETH", rate=MEH))

    intents = evaluate(
        snap, portfolio(hedge("ETH", state=HedgeState.OPENING)), params(sizing=sizing)
    )

    assert intents == []


def test_evaluate_hedges_in_every_active_state_count_toward_limits() -> None:
    snap = market_snapshot(*(Market(b, rate=GOOD) for b in ("A", "B", "C")))
    held = portfolio(hedge("X", 1, HedgeState.OPENING), hedge("Y", 2, HedgeState.CLOSING))

    opens = _opens(evaluate(snap, held, params(sizing=SizingParams(max_hedges=3))))

    assert len(opens) == 1


def test_evaluate_closed_hedge_frees_room_in_the_same_evaluation() -> None:
    snap = market_snapshot(Market("BTC", rate=BAD), Market("ETH", rate=GOOD))
    p = params(sizing=SizingParams(max_hedges=1))

    intents = evaluate(snap, portfolio(hedge("BTC")), p)

    assert [type(i).__name__ for i in intents] == ["CloseHedge", "OpenHedge"]
    assert _opens(intents)[0].pair == "ETH/USDT"


# --- rotation -------------------------------------------------------------------------------


def _rotation_case(
    candidate_rate: str, age_hours: float = 48, margin: str = "0.05"
) -> list[object]:
    # Held at 0.008% (8.76%, above exit 3%); forward value 8.76% − 2.31% exit cost = 6.45%.
    snap = market_snapshot(Market("BTC", rate="0.00008"), Market("ETH", rate=candidate_rate))
    p: FundingCarryParams = params(sizing=SizingParams(max_hedges=1), rotation_margin_apr=D(margin))
    return evaluate(snap, portfolio(hedge("BTC", age_hours=age_hours)), p)


def test_evaluate_much_better_pair_rotates_out_the_held_one() -> None:
    intents = _rotation_case("0.0005")  # net 50.1%

    close, open_ = intents
    assert isinstance(close, CloseHedge) and isinstance(open_, OpenHedge)
    assert close.reason.startswith("rotation: ETH/USDT net APR")
    assert close.metrics["rotation_gain_apr"] > D("0.05")
    assert open_.pair == "ETH/USDT"
    assert open_.reason.startswith("rotation from BTC/USDT")


def test_evaluate_gain_within_rotation_margin_keeps_the_held_pair() -> None:
    assert _rotation_case("0.00014") == []  # net 10.7% enters, but beats 6.45% by only 4.3%
    assert len(_rotation_case("0.00014", margin="0.04")) == 2


def test_evaluate_rotation_waits_for_min_hold() -> None:
    assert _rotation_case("0.0005", age_hours=10) == []
