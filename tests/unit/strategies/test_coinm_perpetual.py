"""COIN-M perpetuals as a carry beside the others (`"coinm"` in `[strategy] instruments`)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

from bot.domain import CloseHedge, Hedge, Intent, MarketSnapshot, OpenHedge, Pair
from strategies.best_carry import BestCarry
from strategies.funding_carry import FundingCarry, FundingCarryParams
from strategies.scan import scan_rows, table_cells
from strategies.signals import carry_signal
from tests import kit
from tests.unit.strategies.scenario import PRICE, Market, hedge, market_snapshot, params, portfolio

D = Decimal
COINM_PERP = "BTC/USD:BTC"
ALL = ["perpetual", "quarterly", "coinm"]


def with_coinm_perp(snap: MarketSnapshot, rate: str, base: str = "BTC") -> MarketSnapshot:
    """Add `base`'s COIN-M perpetual, paying `rate` every 8 h (and as its whole history)."""
    perp = kit.coinm(base)
    spot = next(p.spot for p in snap.pairs if p.base == base)
    now, next_time = snap.taken_at, snap.taken_at + timedelta(hours=4)
    info = kit.funding(perp.symbol, rate, PRICE, PRICE, 8, now, next_time)
    history = kit.settled(perp.symbol, [rate] * 21, next_time - timedelta(hours=8), 8)
    return replace(
        snap,
        coinm_perp_pairs=(*snap.coinm_perp_pairs, Pair(spot=spot, perp=perp)),
        funding={**snap.funding, perp.symbol: info},
        perp_quotes={**snap.perp_quotes, perp.symbol: kit.quote(perp.symbol, PRICE, PRICE, "1000", now)},
        funding_history={**snap.funding_history, perp.symbol: history},
    )  # fmt: skip


def coinm_params() -> FundingCarryParams:
    return params(instruments=ALL)


def evaluate(snap: MarketSnapshot, *hedges: Hedge, p: FundingCarryParams) -> list[Intent]:
    return BestCarry(FundingCarry()).evaluate(snap, portfolio(*hedges), p)


def coinm_hedge(**kw: object) -> Hedge:
    h = hedge("BTC", entry_spot="100", entry_perp="100", **kw)  # type: ignore[arg-type]
    return replace(h, perp_symbol=COINM_PERP, metrics={"contract_size": "100"})


def test_a_paying_coinm_perpetual_is_opened_when_usdm_funding_is_low() -> None:
    snap = with_coinm_perp(market_snapshot(Market("BTC", rate="0.00001")), rate="0.0003")
    p = coinm_params()

    (intent,) = evaluate(snap, p=p)

    assert isinstance(intent, OpenHedge)
    assert (intent.pair, intent.future_symbol) == ("BTC/USDT", COINM_PERP)
    signal = carry_signal(snap.coinm_perp_pairs[0], snap, p, intent.notional)
    assert signal is not None and intent.metrics["net_apr"] == round(signal.net_apr, 10)
    assert signal.funding_apr == D("0.0003") * 3 * 365  # the rate, annualised, in the coin
    assert signal.fees == 2 * (D("0.001") + D("0.0005"))  # both legs, open and close


def test_without_coinm_in_instruments_the_coinm_perpetual_is_never_opened() -> None:
    snap = with_coinm_perp(market_snapshot(Market("BTC", rate="0.00001")), rate="0.0003")

    assert evaluate(snap, p=params(instruments=["perpetual", "quarterly"])) == []


def test_the_higher_funding_of_the_two_perpetuals_wins() -> None:
    usdm = market_snapshot(Market("BTC", rate="0.0004"))

    (richer_usdm,) = evaluate(with_coinm_perp(usdm, rate="0.0002"), p=coinm_params())
    (richer_coinm,) = evaluate(with_coinm_perp(usdm, rate="0.0006"), p=coinm_params())

    assert isinstance(richer_usdm, OpenHedge) and richer_usdm.future_symbol is None
    assert isinstance(richer_coinm, OpenHedge) and richer_coinm.future_symbol == COINM_PERP


def test_an_asset_held_on_its_coinm_perpetual_gets_no_second_hedge() -> None:
    snap = with_coinm_perp(market_snapshot(Market("BTC", rate="0.0004")), rate="0.0003")

    assert evaluate(snap, coinm_hedge(), p=coinm_params()) == []


def test_a_coinm_perpetual_hedge_is_closed_by_the_perpetual_rules_when_funding_turns() -> None:
    snap = with_coinm_perp(market_snapshot(Market("BTC", rate="0.00001")), rate="-0.0003")

    (close,) = evaluate(snap, coinm_hedge(), p=coinm_params())

    assert isinstance(close, CloseHedge) and close.hedge_id == 1


def test_scan_shows_the_coinm_perpetual_beside_the_usdm_one() -> None:
    snap = with_coinm_perp(market_snapshot(Market("BTC", rate="0.0002")), rate="0.0004")

    rows = {r.carry: r for r in scan_rows(snap, coinm_params())}

    coinm, usdm = rows["coinm perpetual"], rows["perpetual"]
    assert (coinm.perp_symbol, coinm.would_enter, coinm.reason) == (COINM_PERP, True, "enter")
    assert (usdm.would_enter, usdm.reason) == (False, "better_carry")
    assert table_cells(coinm)[1] == "coinm perpetual"
    assert coinm.net_apr is not None and usdm.net_apr is not None
    assert coinm.net_apr > usdm.net_apr
