"""Scenario builders for strategy tests: markets with chosen funding, basis and history.

Every pair trades spot at 100 with no spread and an index of 100, so the basis is the
perpetual's `premium` and the only costs are fees and the default slippage. History rows are
settled every `interval_hours` up to the last funding time before `T0`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal

from bot.domain import (
    FundingInfo,
    Hedge,
    HedgeState,
    MarketSnapshot,
    OrderBook,
    Pair,
    Portfolio,
    Quote,
)
from bot.domain.params import SizingParams, UniverseParams
from strategies.funding_carry import FundingCarry, FundingCarryParams
from tests import kit

D = Decimal
T0 = kit.T0
PRICE = D(100)


@dataclass(frozen=True)
class Market:
    """One pair: `rate` is the exchange's rate and, unless `history` is given, every settled one."""

    base: str
    rate: str = "0.0003"
    premium: str = "0"
    interval_hours: int = 8
    history: list[str] | None = None
    volume: str = "1000000000"
    books: dict[str, OrderBook] = field(default_factory=dict)
    marks: list[str] | None = None
    """The mark each history row settled at (the same length as the history); None: no marks."""


def market_snapshot(*markets: Market, at: datetime = T0, periods: int = 21) -> MarketSnapshot:
    """Build a snapshot of `markets` (see the module docstring)."""
    pairs: list[Pair] = []
    funding: dict[str, FundingInfo] = {}
    spot_quotes: dict[str, Quote] = {}
    perp_quotes: dict[str, Quote] = {}
    history = {}
    volumes: dict[str, Decimal] = {}
    books: dict[str, OrderBook] = {}
    for m in markets:
        pair = kit.pair(m.base)
        pairs.append(pair)
        perp_price = PRICE * (1 + D(m.premium))
        next_time = at + timedelta(hours=m.interval_hours / 2)
        funding[pair.perp.symbol] = kit.funding(
            pair.perp.symbol, m.rate, PRICE, PRICE, m.interval_hours, at, next_time
        )
        spot_quotes[pair.spot.symbol] = kit.quote(pair.spot.symbol, PRICE, PRICE, "1000", at)
        perp_quotes[pair.perp.symbol] = kit.quote(
            pair.perp.symbol, perp_price, perp_price, "1000", at
        )
        rates = m.history if m.history is not None else [m.rate] * periods
        last = next_time - timedelta(hours=m.interval_hours)
        rows = kit.settled(pair.perp.symbol, rates, last, m.interval_hours)
        if m.marks is not None:
            rows = [replace(r, mark_price=D(mark)) for r, mark in zip(rows, m.marks, strict=True)]
        history[pair.perp.symbol] = rows
        volumes[pair.spot.symbol] = volumes[pair.perp.symbol] = D(m.volume)
        books.update(m.books)
    return MarketSnapshot(
        taken_at=at,
        pairs=pairs,
        funding=funding,
        spot_quotes=spot_quotes,
        perp_quotes=perp_quotes,
        volumes_24h=volumes,
        funding_history=history,
        books=books,
    )


def params(
    symbols: tuple[str, ...] | None = None, sizing: SizingParams | None = None, **overrides: object
) -> FundingCarryParams:
    """FundingCarryParams with the automatic universe unless `symbols` is given.

    `predicted_weight` defaults to 0 here, so the smoothed APR is the EWMA of the settled
    rates alone (rate × 1095 for a flat 8 h history); the blend has its own tests.
    """
    universe = UniverseParams(symbols=symbols or (), min_quote_volume_24h=D("1000000"))
    values: dict[str, object] = {"predicted_weight": D(0), **overrides}
    return FundingCarryParams.model_validate(
        {"universe": universe, "sizing": sizing or SizingParams(), **values}
    )


def hedge(
    base: str,
    hedge_id: int = 1,
    state: HedgeState = HedgeState.OPEN,
    age_hours: float = 48,
    notional: str = "1000",
    entry_spot: str | None = None,
    entry_perp: str | None = None,
    at: datetime = T0,
) -> Hedge:
    opened = at - timedelta(hours=age_hours)
    return Hedge(
        id=hedge_id,
        uid=f"h{hedge_id}",
        pair=f"{base}/USDT",
        spot_symbol=f"{base}/USDT",
        perp_symbol=f"{base}/USDT:USDT",
        state=state,
        target_quantity=D(10),
        spot_quantity=D(10),
        perp_quantity=D(10),
        target_notional=D(notional),
        created_at=opened,
        updated_at=opened,
        opened_at=opened if state is HedgeState.OPEN else None,
        entry_spot_price=D(entry_spot) if entry_spot else None,
        entry_perp_price=D(entry_perp) if entry_perp else None,
    )


def portfolio(*hedges: Hedge, closed: dict[str, datetime] | None = None) -> Portfolio:
    return Portfolio(hedges=list(hedges), last_closed_at=closed or {})


def evaluate(
    snapshot: MarketSnapshot, book: Portfolio | None = None, p: FundingCarryParams | None = None
) -> list[object]:
    return list(FundingCarry().evaluate(snapshot, book or portfolio(), p or params()))
