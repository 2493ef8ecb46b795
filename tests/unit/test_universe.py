"""Universe selection: explicit symbols, or automatic filters and the top N by funding APR."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

from bot.domain import Pair
from bot.domain.market import SelectedUniverse
from bot.domain.params import UniverseParams
from bot.domain.universe import exclusion_reason, select_universe
from tests import kit
from tests.unit.strategies.scenario import Market, market_snapshot

D = Decimal
AUTO = UniverseParams(symbols=(), min_quote_volume_24h=D("1000000"), min_listing_age_days=30)


def _keys(pairs: Sequence[Pair]) -> list[str]:
    return [p.key for p in pairs]


def test_select_universe_explicit_symbols_keep_their_order_and_skip_denied() -> None:
    snap = market_snapshot(Market("BTC"), Market("ETH"), Market("SOL"))
    universe = UniverseParams(symbols=("SOL/USDT", "BTC/USDT", "ETH/USDT"), deny=("ETH/USDT",))

    assert _keys(select_universe(snap, universe)) == ["SOL/USDT", "BTC/USDT"]


def test_select_universe_explicit_symbols_ignore_volume_filters() -> None:
    snap = market_snapshot(Market("BTC", volume="10"))

    assert _keys(select_universe(snap, UniverseParams(symbols=("BTC/USDT",)))) == ["BTC/USDT"]


def test_select_universe_automatic_requires_volume_on_both_legs() -> None:
    snap = market_snapshot(Market("BTC"), Market("ETH"))
    volumes = dict(snap.volumes_24h)
    volumes["ETH/USDT:USDT"] = D("999999")  # spot liquid, perp not
    snap = replace(snap, volumes_24h=volumes)

    assert _keys(select_universe(snap, AUTO)) == ["BTC/USDT"]
    assert exclusion_reason(snap.pairs[1], volumes, AUTO, snap.taken_at) == "volume"


def test_select_universe_automatic_skips_young_listings_and_denied_pairs() -> None:
    snap = market_snapshot(Market("BTC"), Market("NEW"), Market("ETH"))
    young = replace(
        snap.pairs[1], perp=replace(snap.pairs[1].perp, listed_at=kit.T0 - timedelta(days=29))
    )
    snap = replace(snap, pairs=[snap.pairs[0], young, snap.pairs[2]])
    universe = AUTO.model_copy(update={"deny": ("ETH/USDT",)})

    assert _keys(select_universe(snap, universe)) == ["BTC/USDT"]
    assert exclusion_reason(young, snap.volumes_24h, universe, kit.T0) == "listing_age"


def test_select_universe_automatic_skips_other_quotes() -> None:
    snap = market_snapshot(Market("BTC"))
    fdusd = replace(snap.pairs[0], spot=replace(snap.pairs[0].spot, quote="FDUSD"))

    assert exclusion_reason(fdusd, snap.volumes_24h, AUTO, kit.T0) == "quote"


def test_select_universe_automatic_keeps_top_n_by_annualised_funding() -> None:
    # The 4 h symbol's 0.01% is 21.9% a year: it beats 0.015% every 8 h (16.4%).
    snap = market_snapshot(
        Market("BTC", rate="0.00015"),
        Market("ETH", rate="0.0001", interval_hours=4),
        Market("SOL", rate="0.0001"),
        Market("XRP", rate="-0.0003"),
    )

    assert _keys(select_universe(snap, AUTO.model_copy(update={"top_n": 2}))) == [
        "ETH/USDT",
        "BTC/USDT",
    ]


def test_select_universe_answers_from_the_universe_the_snapshot_carries() -> None:
    snap = market_snapshot(Market("BTC"), Market("ETH"))
    carried = SelectedUniverse(AUTO, (snap.pairs[1],))  # not what the rules would select
    snap = replace(snap, universe=carried)

    assert _keys(select_universe(snap, AUTO.model_copy())) == ["ETH/USDT"]  # equal params
    assert _keys(select_universe(snap, AUTO.model_copy(update={"top_n": 1}))) == ["BTC/USDT"]
