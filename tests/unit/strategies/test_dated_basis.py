"""Dated carries beside perpetual funding: the basis to expiry, entries, take profit, rolls."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from bot.domain import CloseHedge, Hedge, Intent, MarketSnapshot, OpenHedge, Pair, RollHedge
from bot.domain.params import SizingParams
from bot.domain.strategy import DatedParams
from strategies.best_carry import BestCarry
from strategies.dated_basis import dated_signal, roll_signal
from strategies.funding_carry import FundingCarry, FundingCarryParams
from tests import kit
from tests.unit.strategies.scenario import (
    PRICE,
    T0,
    Market,
    hedge,
    market_snapshot,
    params,
    portfolio,
)

D = Decimal
QUARTER = T0 + timedelta(days=30)
NEXT_QUARTER = T0 + timedelta(days=120)


def with_dated(
    snap: MarketSnapshot, base: str, price: str, expiry: datetime, contract: str = "CURRENT_QUARTER"
) -> MarketSnapshot:
    """Add a dated future of `base` quoted at `price` (no spread) delivering at `expiry`."""
    future = kit.dated(base, expiry=expiry, contract_type=contract)
    spot = next(p.spot for p in snap.pairs if p.base == base)
    quote = kit.quote(future.symbol, price, price, "1000", snap.taken_at)
    return replace(
        snap,
        dated_pairs=(*snap.dated_pairs, Pair(spot=spot, perp=future)),
        perp_quotes={**snap.perp_quotes, future.symbol: quote},
        volumes_24h={**snap.volumes_24h, future.symbol: D("1000000000")},
    )


def dated_hedge(base: str, expiry: datetime, entry_future: str, **kw: object) -> Hedge:
    h = hedge(base, entry_spot="100", entry_perp=entry_future, **kw)  # type: ignore[arg-type]
    return replace(h, perp_symbol=kit.dated(base, expiry=expiry).symbol)


def dated_params(**dated: object) -> FundingCarryParams:
    return params(dated=DatedParams.model_validate(dated))


def evaluate(
    snap: MarketSnapshot, *hedges: Hedge, p: FundingCarryParams | None = None
) -> list[Intent]:
    return BestCarry(FundingCarry()).evaluate(snap, portfolio(*hedges), p or params())


LOW_FUNDING = Market("BTC", rate="0.00001")  # 1.1% a year: funding_carry stays out


def test_net_apr_is_the_basis_to_expiry_net_of_fees_both_ways_and_slippage() -> None:
    snap = with_dated(market_snapshot(LOW_FUNDING), "BTC", "101", QUARTER)

    signal = dated_signal(snap.dated_pairs[0], snap, params(), D(1000))

    assert signal is not None
    fees = 2 * (D("0.001") + D("0.0005"))  # spot and futures taker, open and close
    slippage = 4 * D("0.0002")  # 2 bps on each of four trades without depth
    assert signal.days_to_expiry == 30
    assert signal.entry_basis == D("0.01")
    assert signal.gross_apr == D("0.01") * 365 / 30
    assert signal.net_apr == (D("101") / PRICE - 1 - fees - slippage) * 365 / 30
    assert f"{signal.net_apr:.4%}" == "7.5433%"


def test_days_to_expiry_count_from_the_snapshot_to_the_delivery_time() -> None:
    snap = with_dated(market_snapshot(LOW_FUNDING), "BTC", "101", T0 + timedelta(hours=36))

    signal = dated_signal(snap.dated_pairs[0], snap, params(), D(1000))

    assert signal is not None and signal.days_to_expiry == D("1.5")
    expired = replace(snap, taken_at=T0 + timedelta(hours=36))
    assert dated_signal(expired.dated_pairs[0], expired, params(), D(1000)) is None


def test_low_funding_and_a_rich_quarterly_open_spot_plus_the_quarterly() -> None:
    snap = with_dated(market_snapshot(LOW_FUNDING), "BTC", "101", QUARTER)

    (intent,) = evaluate(snap)

    assert isinstance(intent, OpenHedge)
    assert (intent.pair, intent.future_symbol) == ("BTC/USDT", "BTC/USDT:USDT-240331")
    assert intent.notional == D(1000)
    assert intent.metrics["net_apr"] == D("0.0754333333")
    assert "net basis APR 7.54%" in intent.reason


def test_higher_funding_beats_a_poorer_quarterly() -> None:
    snap = with_dated(market_snapshot(Market("BTC", rate="0.0003")), "BTC", "100.5", QUARTER)

    (intent,) = evaluate(snap)

    assert isinstance(intent, OpenHedge) and intent.future_symbol is None


def test_the_best_contract_of_an_asset_is_chosen() -> None:
    snap = with_dated(market_snapshot(LOW_FUNDING), "BTC", "101", QUARTER)
    snap = with_dated(snap, "BTC", "104", NEXT_QUARTER, "NEXT_QUARTER")  # 11.4% vs 7.5%

    (intent,) = evaluate(snap)

    assert isinstance(intent, OpenHedge) and intent.future_symbol == "BTC/USDT:USDT-240629"


def test_quarterly_not_listed_in_instruments_is_never_opened() -> None:
    snap = with_dated(market_snapshot(LOW_FUNDING), "BTC", "101", QUARTER)

    assert evaluate(snap, p=params(instruments=("perpetual",))) == []


def test_without_dated_futures_the_perpetual_strategy_decides_alone() -> None:
    snap = market_snapshot(Market("BTC", rate="0.0003"), Market("ETH", rate="0.0002"))
    book = portfolio(hedge("ETH", age_hours=100))

    assert BestCarry(FundingCarry()).evaluate(snap, book, params()) == FundingCarry().evaluate(
        snap, book, params()
    )


def test_an_asset_held_by_a_dated_hedge_gets_no_perpetual_hedge() -> None:
    snap = with_dated(market_snapshot(Market("BTC", rate="0.0003")), "BTC", "100.9", QUARTER)
    held = dated_hedge("BTC", QUARTER, "101")

    assert [i for i in evaluate(snap, held) if isinstance(i, OpenHedge)] == []


def test_sizing_limits_count_dated_hedges() -> None:
    snap = market_snapshot(Market("BTC", rate="0.0003"), Market("ETH", rate="0.0003"))
    snap = with_dated(snap, "BTC", "100.9", QUARTER)
    held = dated_hedge("BTC", QUARTER, "101")
    p = params(sizing=SizingParams(max_hedges=1))

    assert [i for i in evaluate(snap, held, p=p) if isinstance(i, OpenHedge)] == []


def test_take_profit_when_most_of_the_basis_is_captured() -> None:
    # Sold 1% at entry; the future now trades 0.15% over spot: 85% captured >= 80%.
    snap = with_dated(market_snapshot(LOW_FUNDING), "BTC", "100.15", QUARTER)

    (close,) = evaluate(snap, dated_hedge("BTC", QUARTER, "101"))

    assert isinstance(close, CloseHedge) and close.hedge_id == 1
    assert close.reason.startswith("take_profit: basis captured 0.8500% >= 80% of 1.0000%")


def test_a_hedge_with_basis_left_is_kept() -> None:
    snap = with_dated(market_snapshot(LOW_FUNDING), "BTC", "100.5", QUARTER)

    assert evaluate(snap, dated_hedge("BTC", QUARTER, "101")) == []


def test_near_delivery_a_paying_next_quarter_is_rolled_into() -> None:
    near = T0 + timedelta(hours=48)
    snap = with_dated(market_snapshot(LOW_FUNDING), "BTC", "100.3", near)
    snap = with_dated(snap, "BTC", "102.5", NEXT_QUARTER, "NEXT_QUARTER")

    (roll,) = evaluate(snap, dated_hedge("BTC", near, "101"))

    assert isinstance(roll, RollHedge)  # one intent: the hedge keeps its id and its spot
    assert (roll.hedge_id, roll.future_symbol) == (1, "BTC/USDT:USDT-240629")
    assert roll.reason.startswith("roll: BTC/USDT:USDT-240303 -> BTC/USDT:USDT-240629")


def test_the_roll_counts_only_the_shorts_two_futures_legs() -> None:
    """Spot 100 (no spread), next quarter 120 days out at 101.9: its basis (1.9 %) pays the
    roll, 2 futures taker fees (0.1 %) and their slippage (2 × 2 bps), and 5 % a year
    (1.644 % over 120 days), not the 0.3 % of a full spot + futures round trip as well."""
    near = T0 + timedelta(hours=48)
    snap = with_dated(market_snapshot(LOW_FUNDING), "BTC", "100.3", near)
    snap = with_dated(snap, "BTC", "101.9", NEXT_QUARTER, "NEXT_QUARTER")
    nxt = next(p for p in snap.dated_pairs if p.perp.symbol.endswith("240629"))
    p = params()

    rolled = roll_signal(nxt, snap, p, D(1000))
    entered = dated_signal(nxt, snap, p, D(1000))

    assert rolled is not None and entered is not None
    assert rolled.fees == 2 * p.fees.effective().futures_taker == D("0.001")
    assert rolled.slippage == D("0.0004")
    assert rolled.net_basis == D("0.019") - D("0.001") - D("0.0004")
    assert rolled.net_apr > p.dated.entry_apr > entered.net_apr
    (roll,) = evaluate(snap, dated_hedge("BTC", near, "101"))
    assert isinstance(roll, RollHedge) and roll.metrics["roll_fees"] == D("0.001")
    # A contract that does not pay even the short's costs is not rolled into: closed in time.
    poor = with_dated(market_snapshot(LOW_FUNDING), "BTC", "100.3", near)
    poor = with_dated(poor, "BTC", "101.7", NEXT_QUARTER, "NEXT_QUARTER")
    assert evaluate(poor, dated_hedge("BTC", near, "101")) == []


def test_a_rolled_hedges_take_profit_measures_the_basis_its_roll_sold() -> None:
    """Rolled at spot 100 into a short sold at 102: 2 % sold; at 100.3 now, 85 % captured
    (the entry spot price, 90, from before the roll, does not count)."""
    snap = with_dated(market_snapshot(LOW_FUNDING), "BTC", "100.3", QUARTER)
    rolled = replace(
        dated_hedge("BTC", QUARTER, "102"),
        entry_spot_price=D(90),
        metrics={"basis_spot_price": "100", "rolled_from": "BTC/USDT:USDT-231229"},
    )

    (close,) = evaluate(snap, rolled)

    assert isinstance(close, CloseHedge)
    assert close.reason.startswith("take_profit: basis captured 1.7000% >= 80% of 2.0000%")


def test_near_delivery_without_a_paying_contract_the_hedge_is_closed_in_time() -> None:
    near = T0 + timedelta(hours=20)
    snap = with_dated(market_snapshot(LOW_FUNDING), "BTC", "100.3", near)
    snap = with_dated(snap, "BTC", "100.2", NEXT_QUARTER, "NEXT_QUARTER")

    (close,) = evaluate(snap, dated_hedge("BTC", near, "101"))

    assert isinstance(close, CloseHedge) and close.reason.startswith("delivery: 20.0 h")


@pytest.mark.parametrize("hours_left", [48, 20])
def test_between_roll_and_exit_windows_without_a_roll_it_waits(hours_left: int) -> None:
    near = T0 + timedelta(hours=hours_left)
    snap = with_dated(market_snapshot(LOW_FUNDING), "BTC", "100.3", near)

    out = evaluate(snap, dated_hedge("BTC", near, "101"))

    assert [type(i) for i in out] == ([] if hours_left > 24 else [CloseHedge])


def test_hold_to_settlement_keeps_the_short_until_delivery_then_closes() -> None:
    near = T0 + timedelta(hours=2)
    snap = with_dated(market_snapshot(LOW_FUNDING), "BTC", "100.3", near)
    p = dated_params(hold_to_settlement=True)

    assert evaluate(snap, dated_hedge("BTC", near, "101"), p=p) == []
    delivered = replace(snap, taken_at=near + timedelta(minutes=1))
    (close,) = evaluate(delivered, dated_hedge("BTC", near, "101"), p=p)
    assert isinstance(close, CloseHedge) and close.reason.startswith("delivered:")


def test_contracts_too_close_to_delivery_are_not_entered() -> None:
    snap = with_dated(market_snapshot(LOW_FUNDING), "BTC", "100.5", T0 + timedelta(days=5))

    assert evaluate(snap) == []


def test_roll_window_below_exit_window_is_refused() -> None:
    with pytest.raises(ValueError, match="roll_before_delivery_hours = 10"):
        DatedParams(roll_before_delivery_hours=D(10), exit_before_delivery_hours=D(24))


def test_within_the_exit_window_a_paying_roll_gives_way_to_the_close() -> None:
    """A roll not done by `exit_before_delivery_hours` (refused, cooling down) is not tried
    there: the hedge never stays on the contract past that limit."""
    near = T0 + timedelta(hours=20)
    snap = with_dated(market_snapshot(LOW_FUNDING), "BTC", "100.3", near)
    snap = with_dated(snap, "BTC", "102.5", NEXT_QUARTER, "NEXT_QUARTER")

    (close,) = evaluate(snap, dated_hedge("BTC", near, "101"))

    assert isinstance(close, CloseHedge) and close.reason.startswith("delivery: 20.0 h")


@pytest.mark.parametrize(
    "screen",
    [{"active": False, "status": "PENDING_TRADING"}, {"delist_at": T0 + timedelta(days=10)}],
    ids=["not-trading", "delisting"],
)
def test_a_later_contract_that_does_not_trade_is_never_rolled_into(screen: dict[str, Any]) -> None:
    near = T0 + timedelta(hours=48)
    snap = with_dated(market_snapshot(LOW_FUNDING), "BTC", "100.3", near)
    snap = with_dated(snap, "BTC", "102.5", NEXT_QUARTER, "NEXT_QUARTER")
    held, later = snap.dated_pairs
    snap = replace(snap, dated_pairs=(held, replace(later, perp=replace(later.perp, **screen))))

    assert evaluate(snap, dated_hedge("BTC", near, "101")) == []  # kept; closed in time
    assert evaluate(snap) == []  # nor entered
