"""Domain rules: client order ids, step arithmetic, the hedge state machine."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.domain import HedgeState, Leg, OrderPurpose, check_transition, client_order_id
from bot.domain.hedge import InvalidTransition
from bot.domain.numbers import coarser_step, floor_to_step, to_decimal

BINANCE_ID = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")


def test_client_order_id_is_deterministic_and_fits_binance() -> None:
    cid = client_order_id("01hx3k9q2m7a", Leg.PERP, OrderPurpose.CLOSE, 2)

    assert cid == "cb-01hx3k9q2m7a-pc2"
    assert cid == client_order_id("01hx3k9q2m7a", Leg.PERP, OrderPurpose.CLOSE, 2)
    assert BINANCE_ID.match(cid)


def test_client_order_id_refuses_what_binance_would_refuse() -> None:
    with pytest.raises(ValueError, match="Binance's pattern"):
        client_order_id("x" * 40, Leg.SPOT, OrderPurpose.OPEN)


def test_coarser_step_for_btc_spot_and_perp() -> None:
    assert coarser_step(Decimal("0.00001"), Decimal("0.001")) == Decimal("0.001")
    assert coarser_step(Decimal("0.4"), Decimal("0.6")) == Decimal("1.2")


@given(
    st.decimals(min_value=0, max_value=10**6, places=8, allow_nan=False),
    st.sampled_from([Decimal("0.001"), Decimal("0.00001"), Decimal("1"), Decimal("0.1")]),
)
def test_floor_to_step_never_rounds_up_and_stays_within_one_step(
    value: Decimal, step: Decimal
) -> None:
    result = floor_to_step(value, step)

    assert result <= value
    assert value - result < step
    assert result % step == 0


def test_to_decimal_rejects_nan_and_keeps_float_text() -> None:
    assert to_decimal(0.1) == Decimal("0.1")
    with pytest.raises(ValueError, match="price"):
        to_decimal(float("nan"), field="price")
    with pytest.raises(ValueError, match="qty"):
        to_decimal("abc", field="qty")


def test_hedge_state_machine_has_no_path_back_from_closed() -> None:
    check_transition(HedgeState.OPENING, HedgeState.OPEN)
    check_transition(HedgeState.OPENING, HedgeState.UNWINDING)
    with pytest.raises(InvalidTransition):
        check_transition(HedgeState.CLOSED, HedgeState.OPEN)
    with pytest.raises(InvalidTransition):
        check_transition(HedgeState.FAILED, HedgeState.OPENING)
