"""Every enabled carry of each asset side by side; the best one within the sizing limits.

`BestCarry` wraps the configured perpetual strategy (`funding_carry`) and adds the dated
carries of `strategies.dated_basis` (`[strategy] instruments`). The perpetual strategy sees
the USDⓈ-M perpetual hedges only and decides on them exactly as alone; with `"coinm"` it
decides the COIN-M perpetuals the same way, on a view of the snapshot whose pairs are the
spot + COIN-M perpetual pairs of the universe and whose hedges are the COIN-M perpetual
ones (same rules, funding paid in the coin); dated hedges are decided by the dated rules.
The opens are merged: per asset the highest net APR wins (perpetuals: net APR over the
horizon; dated: net basis APR to expiry), an asset already held by any hedge gets no new
one, and the sizing limits count every hedge. With no dated or COIN-M hedge and neither in
the snapshot, the perpetual strategy's intents are returned unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from decimal import Decimal
from typing import Any, ClassVar

from bot.domain import CloseHedge, HedgeState, Intent, MarketSnapshot, OpenHedge, Pair, Portfolio
from bot.domain.instruments import is_coinm_perp_symbol, is_dated_symbol
from bot.domain.market import SelectedUniverse
from bot.domain.strategy import Strategy, StrategyParams
from bot.domain.universe import select_universe
from strategies.allocation import Capacity
from strategies.dated_basis import dated_candidates, dated_exit, dated_open

ZERO = Decimal(0)


class BestCarry:
    """The perpetual strategy `inner` plus dated carries, best per asset."""

    name: ClassVar[str]
    params_model: ClassVar[type[StrategyParams]]

    def __init__(self, inner: Strategy[Any]) -> None:
        self.inner = inner
        self.name = inner.name  # type: ignore[misc]
        self.params_model = inner.params_model  # type: ignore[misc]

    def evaluate(
        self, snapshot: MarketSnapshot, portfolio: Portfolio, params: StrategyParams
    ) -> list[Intent]:
        """Return closes and rolls first, then opens."""
        dated_hedges = [h for h in portfolio.hedges if is_dated_symbol(h.perp_symbol)]
        coinm_hedges = [h for h in portfolio.hedges if is_coinm_perp_symbol(h.perp_symbol)]
        dated_on = params.trades_dated and bool(snapshot.dated_pairs)
        coinm_on = "coinm" in params.instruments and bool(snapshot.coinm_perp_pairs)
        perpetual_on = "perpetual" in params.instruments
        if not (dated_hedges or coinm_hedges or dated_on or coinm_on) and perpetual_on:
            return self.inner.evaluate(snapshot, portfolio, params)

        others = {h.id for h in (*dated_hedges, *coinm_hedges)}
        perp_portfolio = replace(
            portfolio, hedges=[h for h in portfolio.hedges if h.id not in others]
        )
        inner = self.inner.evaluate(snapshot, perp_portfolio, params)
        closes: list[Intent] = [i for i in inner if not isinstance(i, OpenHedge)]
        perp_opens = [i for i in inner if isinstance(i, OpenHedge)] if perpetual_on else []
        if coinm_hedges or coinm_on:
            coinm = self._coinm_perpetuals(
                snapshot, replace(portfolio, hedges=coinm_hedges), params
            )
            closes += [i for i in coinm if not isinstance(i, OpenHedge)]
            perp_opens += [i for i in coinm if isinstance(i, OpenHedge)] if coinm_on else []

        by_symbol = {p.perp.symbol: p for p in snapshot.dated_pairs}
        for hedge in dated_hedges:
            if hedge.state is not HedgeState.OPEN:
                continue
            held = by_symbol.get(hedge.perp_symbol)
            if held is None:
                if snapshot.dated_pairs:  # dated futures are polled and this one is gone
                    reason = f"delivered: {hedge.perp_symbol} is no longer listed"
                    closes.append(CloseHedge(hedge.id, reason))
                continue
            later = [
                p
                for p in snapshot.dated_pairs
                if p.key == hedge.pair
                and p.perp.settle == held.perp.settle
                and (p.perp.expiry or held.perp.expiry) > held.perp.expiry  # type: ignore[operator]
            ]
            decision = dated_exit(hedge, held, later, snapshot, params)
            if decision is not None:
                closes.append(decision.intent)  # a roll keeps the hedge: it is not closing

        closing = {c.hedge_id for c in closes if isinstance(c, CloseHedge)}
        active = [h for h in portfolio.open_hedges() if h.id not in closing]
        held_assets = {h.pair for h in portfolio.open_hedges()}
        dated_assets = {h.pair for h in dated_hedges if h.state.is_active}
        candidates = []
        if dated_on:
            universe = {p.key for p in select_universe(snapshot, params.universe)}
            eligible = [p for p in enabled_dated(snapshot.dated_pairs, params) if p.key in universe]
            candidates = dated_candidates(eligible, snapshot, params, skip=held_assets)
        by_asset = {c.pair: c for c in candidates}

        opens: list[OpenHedge] = []
        best_perp: dict[str, OpenHedge] = {}
        for intent in perp_opens:
            if intent.pair in held_assets or intent.pair in dated_assets:
                continue  # each view saw only its own hedges: another carry holds the asset
            best = best_perp.get(intent.pair)
            if best is None or _net_apr(intent) > _net_apr(best):
                best_perp[intent.pair] = intent
        for intent in best_perp.values():
            rival = by_asset.pop(intent.pair, None)
            if rival is not None and rival.net_apr > _net_apr(intent):
                opens.append(dated_open(rival, intent.notional, "best carry", params.dated))
            else:
                opens.append(intent)
        opens += [
            dated_open(c, c.notional, "entry", params.dated)
            for c in candidates
            if c.pair in by_asset
        ]

        capacity = Capacity.of(active, params.sizing)
        sized: list[Intent] = []
        pairs = {p.key: p for p in snapshot.pairs}
        by_symbol = {**by_symbol, **{p.perp.symbol: p for p in snapshot.coinm_perp_pairs}}
        for intent in opens:
            leg = by_symbol.get(intent.future_symbol or "") or pairs.get(intent.pair)
            size = capacity.size_for(intent.pair, _min_notional(leg))
            if size is None:
                continue
            size = min(size, intent.notional)
            capacity.add(intent.pair, size)
            sized.append(intent if size == intent.notional else replace(intent, notional=size))
        return closes + sized

    def _coinm_perpetuals(
        self, snapshot: MarketSnapshot, portfolio: Portfolio, params: StrategyParams
    ) -> list[Intent]:
        """The perpetual strategy's intents on the COIN-M perpetuals of the universe: its
        opens name the COIN-M perpetual as their future."""
        universe = {p.key for p in select_universe(snapshot, params.universe)}
        held = {h.pair for h in portfolio.hedges}
        pairs = tuple(p for p in snapshot.coinm_perp_pairs if p.key in universe or p.key in held)
        view = replace(
            snapshot,
            pairs=pairs,
            universe=SelectedUniverse(
                params.universe, tuple(p for p in pairs if p.key in universe)
            ),
        )
        symbol = {p.key: p.perp.symbol for p in pairs}
        return [
            replace(i, future_symbol=symbol[i.pair]) if isinstance(i, OpenHedge) else i
            for i in self.inner.evaluate(view, portfolio, params)
        ]


def _net_apr(intent: OpenHedge) -> Decimal:
    return intent.metrics.get("net_apr", ZERO)


def enabled_dated(pairs: Iterable[Pair], params: StrategyParams) -> list[Pair]:
    """The dated pairs of the enabled markets: USDⓈ-M (`quarterly`), COIN-M (`coinm`)."""
    out = []
    for pair in pairs:
        coin_margined = pair.perp.settle is not None and pair.perp.settle != pair.perp.quote
        if ("coinm" if coin_margined else "quarterly") in params.instruments:
            out.append(pair)
    return out


def _min_notional(pair: Pair | None) -> Decimal:
    if pair is None:
        return ZERO
    return max(pair.spot.min_notional, pair.perp.min_notional)
