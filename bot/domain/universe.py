"""Which pairs a strategy considers: an explicit list, or every liquid pair that passes filters."""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal

from bot.domain.funding import funding_apr
from bot.domain.instruments import MarketKind, Pair
from bot.domain.market import MarketSnapshot, SelectedUniverse
from bot.domain.params import UniverseParams


def exclusion_reason(
    pair: Pair, volumes: Mapping[str, Decimal], universe: UniverseParams, now: datetime
) -> str | None:
    """Return why `pair` is outside the universe (a short code), or None when it is inside.

    Explicit `symbols`: listed and not denied. Automatic (empty `symbols`): quote is
    `universe.quote`, both legs active, the derivative is a perpetual, the 24h quote volume of
    both legs is at least `min_quote_volume_24h`, no leg listed less than
    `min_listing_age_days` ago (unknown listing dates pass), not denied.
    """
    if pair.key in universe.deny:
        return "denied"
    if universe.symbols:
        return None if pair.key in universe.symbols else "not_listed"
    if pair.spot.quote != universe.quote:
        return "quote"
    if pair.perp.kind is not MarketKind.PERPETUAL:
        return "not_perpetual"
    if not (pair.spot.active and pair.perp.active):
        return "inactive"
    minimum = universe.min_quote_volume_24h
    if (
        volumes.get(pair.spot.symbol, Decimal(0)) < minimum
        or volumes.get(pair.perp.symbol, Decimal(0)) < minimum
    ):
        return "volume"
    oldest_allowed = now - timedelta(days=universe.min_listing_age_days)
    for leg in (pair.spot, pair.perp):
        if leg.listed_at is not None and leg.listed_at > oldest_allowed:
            return "listing_age"
    return None


def eligible_pairs(
    pairs: Iterable[Pair], volumes: Mapping[str, Decimal], universe: UniverseParams, now: datetime
) -> list[Pair]:
    """Return the pairs inside the universe (see `exclusion_reason`), before any top-N cut.

    Explicit symbols come back in the order they are listed.
    """
    if universe.symbols:
        order = {s: i for i, s in enumerate(universe.symbols) if s not in universe.deny}
        return sorted((p for p in pairs if p.key in order), key=lambda p: order[p.key])
    return [p for p in pairs if exclusion_reason(p, volumes, universe, now) is None]


def select_universe(snapshot: MarketSnapshot, universe: UniverseParams) -> list[Pair]:
    """Return the pairs to evaluate: explicit symbols, or the automatic top N by score.

    The automatic score is the current funding APR (lastFundingRate annualised with the
    symbol's own interval); pairs without funding data are dropped. A snapshot that carries
    its universe (selected with the same parameters) answers from it: selected once.
    """
    chosen = snapshot.universe
    if chosen is not None and (chosen.params is universe or chosen.params == universe):
        return list(chosen.pairs)
    return _select(snapshot, universe)


def selected_universe(snapshot: MarketSnapshot, universe: UniverseParams) -> SelectedUniverse:
    """Select `snapshot`'s universe once, to be carried by the snapshot (`universe`)."""
    return SelectedUniverse(universe, tuple(select_universe(snapshot, universe)))


def _select(snapshot: MarketSnapshot, universe: UniverseParams) -> list[Pair]:
    pairs = eligible_pairs(snapshot.pairs, snapshot.volumes_24h, universe, snapshot.taken_at)
    if universe.symbols:
        return pairs
    funding = snapshot.funding
    scored: list[tuple[Decimal, int, Pair]] = []
    for i, pair in enumerate(pairs):
        info = funding.get(pair.perp.symbol)
        if info is not None and info.interval_hours > 0:
            scored.append((funding_apr(info.funding_rate, info.interval_hours), -i, pair))
    return [p for _, _, p in heapq.nlargest(universe.top_n, scored, key=lambda t: t[:2])]
