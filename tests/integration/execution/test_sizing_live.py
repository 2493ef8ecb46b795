"""Sizing against the live adapter's instruments and balances: what is sent, or that nothing is."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from bot.domain import HedgeState, Instrument
from bot.execution.sizing import common_step
from tests import kit
from tests.fakes.fixtures import standard_instruments
from tests.integration.execution.rig import PERP_ORDER, SPOT_ORDER, RigFactory

D = Decimal
pytestmark = pytest.mark.postgres


async def test_open_btc_uses_one_quantity_valid_on_both_steps(rig_factory: RigFactory) -> None:
    rig = await rig_factory()
    assert (rig.pair.spot.step_size, rig.pair.perp.step_size) == (D("0.00001"), D("0.001"))

    hedge = await rig.open("1234")  # 1234 / 50000.01 = 0.02467… BTC

    assert hedge is not None and hedge.state is HedgeState.OPEN
    assert common_step(rig.pair) == D("0.001")
    assert [p["quantity"] for p in rig.order_posts(PERP_ORDER)] == ["0.024"]
    assert [p["quantity"] for p in rig.order_posts(SPOT_ORDER)] == ["0.02403"]  # / (1 - 0.1 %)
    assert rig.server_short() == D("0.024")
    rig.assert_balanced()
    await rig.assert_ledger_matches(hedge)


def _eth_with_spot_min_notional(min_notional: str) -> list[Instrument]:
    return [
        replace(i, min_notional=D(min_notional)) if i.symbol == "ETH/USDT" else i
        for i in standard_instruments(kit.T0)
    ]


@pytest.mark.parametrize(
    ("base", "notional", "instruments", "futures_usdt", "reason"),
    [
        ("BTC", "60", None, None, "perp notional 50.01 below perp min notional 100"),
        (
            "ETH",
            "150",
            _eth_with_spot_min_notional("200"),
            None,
            "spot notional 147.00 below spot min notional 200",
        ),
        ("BTC", "1000", None, "100", "short needs 593.87 USDT margin at 2x"),
    ],
    ids=["perp_min_notional_only", "spot_min_notional_only", "margin"],
)
async def test_open_that_cannot_be_sized_sends_no_order_and_records_why(
    rig_factory: RigFactory,
    base: str,
    notional: str,
    instruments: list[Instrument] | None,
    futures_usdt: str | None,
    reason: str,
) -> None:
    rig = await rig_factory(base=base, instruments=instruments, futures_usdt=futures_usdt)

    hedge = await rig.open(notional)

    assert hedge is None
    assert rig.requests(SPOT_ORDER, "POST") == [] and rig.requests(PERP_ORDER, "POST") == []
    assert await rig.ledger.hedges.active() == []
    (event,) = await rig.ledger.events.recent(kind="hedge.sizing_denied")
    assert reason in event.message
    assert rig.server_spot() == 0 and rig.server_short() == 0
