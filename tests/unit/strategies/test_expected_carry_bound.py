"""`expected_carry` prices a pair only when its funding leaves the decision open.

`funding_rules_out_entry` skips the pricing (books, spreads, costs) of pairs whose funding
alone fails the entry rules, `funding_rules_out_exit` that of held hedges whose funding
cannot pay for an exit (a held hedge is priced on first use); the decisions must be those
of pricing every pair. These tests check that on random markets: whatever the prices, a
pair the bounds rule out fails `entry_block` / `worth_exiting`, and `entry_candidates`
equals the candidates of a full valuation.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain import MarketSnapshot
from bot.domain.params import FeeParams, SizingParams, UniverseParams
from bot.domain.universe import select_universe
from strategies.carry_value import least_round_trip
from strategies.expected_carry import (
    ExpectedCarryParams,
    entry_block,
    entry_candidates,
    funding_rules_out_entry,
    funding_rules_out_exit,
    grow_block,
    held_value,
    outlook_of,
    rebalance_intent,
    resize_life_hours,
    settled_carry_over,
    value_of,
    worth_exiting,
)
from tests import kit
from tests.unit.strategies.scenario import Market, hedge, market_snapshot, portfolio

D = Decimal

rates = st.decimals(min_value=D("-0.001"), max_value=D("0.001"), places=6)


def ev_params(**overrides: object) -> ExpectedCarryParams:
    universe = UniverseParams(symbols=(), min_quote_volume_24h=D("1000000"))
    return ExpectedCarryParams.model_validate(
        {"universe": universe, "sizing": SizingParams(), **overrides}
    )


def with_spreads(
    snap: MarketSnapshot, spot_spread: Decimal, perp_spread: Decimal
) -> MarketSnapshot:
    """The snapshot with each pair's quotes widened around their mids."""
    spot, perp = dict(snap.spot_quotes), dict(snap.perp_quotes)
    for pair in snap.pairs:
        for quotes, symbol, spread in (
            (spot, pair.spot.symbol, spot_spread),
            (perp, pair.perp.symbol, perp_spread),
        ):
            mid = quotes[symbol].mid
            quotes[symbol] = kit.quote(symbol, mid * (1 - spread), mid * (1 + spread))
    return replace(snap, spot_quotes=spot, perp_quotes=perp)


@st.composite
def markets(draw: st.DrawFn) -> tuple[MarketSnapshot, ExpectedCarryParams]:
    count = draw(st.integers(min_value=1, max_value=3))
    chosen = []
    for i in range(count):
        regime = draw(st.lists(rates, min_size=1, max_size=4))
        length = draw(st.integers(min_value=0, max_value=150))
        history = [str(regime[j * len(regime) // max(length, 1)]) for j in range(length)]
        premium = draw(st.decimals(min_value=D("-0.003"), max_value=D("0.003"), places=5))
        chosen.append(
            Market(
                ["BTC", "ETH", "SOL"][i],
                rate=str(draw(rates)),
                premium=str(premium),
                history=history,
            )
        )
    snap = market_snapshot(*chosen)
    spreads = st.decimals(min_value=D(0), max_value=D("0.002"), places=5)
    snap = with_spreads(snap, draw(spreads), draw(spreads))
    params = ev_params(
        entry_margin=draw(st.sampled_from([D(0), D("0.002"), D("0.02")])),
        negative_periods_to_exit=draw(st.sampled_from([1, 3, 63])),
        expected_holding_hours=draw(st.sampled_from([D(24), D(720), D(2160)])),
        assumed_slippage_bps=draw(st.sampled_from([D(0), D(2), D(20)])),
        fees=FeeParams(bnb_discount=draw(st.booleans())),
    )
    return snap, params


@settings(max_examples=300, deadline=None)
@given(market=markets())
def test_a_pair_the_funding_rules_out_fails_the_entry_and_exit_rules_at_any_price(
    market: tuple[MarketSnapshot, ExpectedCarryParams],
) -> None:
    snap, params = market
    size = params.sizing.notional_per_hedge
    for pair in snap.pairs:
        outlook = outlook_of(pair, snap, params)
        value = value_of(pair, snap, params, size)
        assert value_of(pair, snap, params, size, outlook) == value
        if outlook is None:
            assert value is None
            continue
        if value is not None:  # what the bound rests on: no prices make a round trip cheaper
            assert value.round_trip >= least_round_trip(params.fees)
            assert value.expected_carry == outlook.expected_carry
        if funding_rules_out_entry(outlook, params):
            assert value is None or entry_block(value, params) is not None
        held = held_value(pair, snap, params, size)
        assert (held is None) is (value is None)
        if held is not None and value is not None:
            assert held.outlook == outlook and held.value() == value
            if funding_rules_out_exit(outlook, params):
                assert not worth_exiting(value, params)


@settings(max_examples=200, deadline=None)
@given(market=markets())
def test_entry_candidates_are_those_of_pricing_every_pair(
    market: tuple[MarketSnapshot, ExpectedCarryParams],
) -> None:
    snap, params = market
    size = params.sizing.notional_per_hedge
    full = [
        (pair, value)
        for pair in select_universe(snap, params.universe)  # ties keep the universe's order
        if (value := value_of(pair, snap, params, size)) is not None
        and entry_block(value, params) is None
    ]
    full.sort(key=lambda pv: pv[1].net_entry, reverse=True)
    assert entry_candidates(snap, portfolio(), params) == full


def test_negative_or_thin_funding_is_ruled_out_before_pricing() -> None:
    params = ev_params()
    thin = market_snapshot(Market("BTC", rate="0.000001", history=["0.000001"] * 100))
    dip = market_snapshot(
        Market("BTC", rate="-0.0003", history=["0.0001"] * 100 + ["-0.0003"] * 40)
    )
    fair = market_snapshot(Market("BTC", rate="0.0001", history=["0.0001"] * 100))
    for snap, ruled_out in ((thin, True), (dip, True), (fair, False)):
        outlook = outlook_of(snap.pairs[0], snap, params)
        assert outlook is not None
        assert funding_rules_out_entry(outlook, params) is ruled_out


@settings(max_examples=200, deadline=None)
@given(market=markets(), quantity=st.sampled_from([D(1), D(4), D(7), D("7.9")]))
def test_a_grow_back_is_decided_as_when_the_hedge_is_always_priced(
    market: tuple[MarketSnapshot, ExpectedCarryParams], quantity: Decimal
) -> None:
    """A shrunk hedge priced on use grows back exactly when its full valuation passes
    `grow_block` over the addition's expected life (the funding bound skips only what the
    rule itself would refuse)."""
    snap, params = market
    pair = snap.pairs[0]
    held = replace(
        hedge(pair.base, notional=str(params.sizing.notional_per_hedge)), perp_quantity=quantity
    )
    full = value_of(pair, snap, params, held.target_notional)
    resize = rebalance_intent(
        held, snap, params, held_value(pair, snap, params, held.target_notional)
    )
    if full is None:
        assert resize is None
        return
    life = resize_life_hours(full, params, D(1) - quantity / 10)
    net = full.forecast.carry(life) - full.round_trip
    history = snap.funding_history.get(pair.perp.symbol, ())[-params.history_periods :]
    settled = settled_carry_over(history, life, full.forecast.interval_hours)
    settled_net = settled - full.round_trip
    assert (resize is not None) is (grow_block(full, params, net, settled_net) is None)
