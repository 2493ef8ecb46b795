"""The carry signal of one pair: smoothed funding, executable basis, costs, net carry.

`carry_signal` combines the maths of `strategies.carry` for one pair of one snapshot.
Every number a decision uses is on the signal, and `metrics()` hands them to the ledger.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from bot.domain import MarketSnapshot, Pair, SettledFunding, funding
from bot.domain.params import FeeParams
from strategies import carry

ONE = Decimal(1)
_METRIC_QUANTUM = Decimal("1e-10")


class SignalParams(Protocol):
    """The parameters a carry signal needs (FundingCarryParams satisfies it)."""

    @property
    def horizon_hours(self) -> int: ...
    @property
    def predicted_weight(self) -> Decimal: ...
    @property
    def ewma_halflife_periods(self) -> Decimal: ...
    @property
    def history_periods(self) -> int: ...
    @property
    def assumed_slippage_bps(self) -> Decimal: ...
    @property
    def fees(self) -> FeeParams: ...


@dataclass(frozen=True, slots=True)
class CarrySignal:
    """Why a pair is (or is not) worth holding, for a hedge of `notional` per leg.

    Fractions of notional unless named `_apr` (a year) or `_hours`.
    """

    pair: str
    perp_symbol: str
    notional: Decimal
    interval_hours: int
    next_funding_time: datetime
    funding_rate: Decimal  # Binance's lastFundingRate: estimate of the next settlement
    funding_apr: Decimal
    predicted_rate: Decimal  # our estimate with Binance's formula from the book
    predicted_apr: Decimal
    ewma_apr: Decimal | None  # EWMA of settled rates, None without history
    history_used: int
    smoothed_apr: Decimal
    entry_basis: Decimal  # (perp bid − spot ask) / spot ask
    exit_basis: Decimal  # (perp ask − spot bid) / spot bid
    mid_basis: Decimal
    captured_basis: Decimal  # expected over the horizon: entry − (exit − mid)
    basis_apr: Decimal
    fees: Decimal  # both legs, open and close
    slippage: Decimal  # both legs, open and close
    exit_cost: Decimal  # fees and slippage of closing alone
    funding_carry: Decimal
    net_carry: Decimal
    net_apr: Decimal
    breakeven_hours: Decimal | None  # None: funding never repays the costs
    negative_run: int  # latest settled rates negative in a row

    @property
    def cost(self) -> Decimal:
        return self.fees + self.slippage

    @property
    def predicted_minus_exchange(self) -> Decimal:
        """Our predicted rate minus Binance's lastFundingRate."""
        return self.predicted_rate - self.funding_rate

    def metrics(self) -> dict[str, Decimal]:
        """Return the numbers behind a decision, rounded to 1e-10, for the ledger."""
        values: dict[str, Decimal] = {
            "notional": self.notional,
            "interval_hours": Decimal(self.interval_hours),
            "funding_rate": self.funding_rate,
            "funding_apr": self.funding_apr,
            "predicted_rate": self.predicted_rate,
            "predicted_apr": self.predicted_apr,
            "predicted_minus_exchange": self.predicted_minus_exchange,
            "history_used": Decimal(self.history_used),
            "smoothed_apr": self.smoothed_apr,
            "entry_basis": self.entry_basis,
            "exit_basis": self.exit_basis,
            "captured_basis": self.captured_basis,
            "basis_apr": self.basis_apr,
            "fees": self.fees,
            "slippage": self.slippage,
            "cost": self.cost,
            "funding_carry": self.funding_carry,
            "net_carry": self.net_carry,
            "net_apr": self.net_apr,
            "negative_run": Decimal(self.negative_run),
        }
        if self.ewma_apr is not None:
            values["ewma_apr"] = self.ewma_apr
        if self.breakeven_hours is not None:
            values["breakeven_hours"] = self.breakeven_hours
        return {k: quantize_metric(v) for k, v in values.items()}


def quantize_metric(value: Decimal) -> Decimal:
    """Round a metric to 1e-10 and drop trailing zeros, so the ledger stores short text."""
    if value.adjusted() >= 17:  # too big for 28 digits at 1e-10 (e.g. a huge break-even)
        return value.normalize()
    rounded = value.quantize(_METRIC_QUANTUM)
    if rounded == rounded.to_integral_value():
        return rounded.quantize(ONE) + 0  # `+ 0` turns -0 into 0
    return rounded.normalize()


def smoothed_apr(
    predicted_apr: Decimal,
    exchange_apr: Decimal,
    ewma_apr: Decimal | None,
    history_used: int,
    predicted_weight: Decimal,
    halflife: Decimal,
) -> Decimal:
    """Blend the predicted rate with the settled history, trusting short history less.

    smoothed = w × predicted + (1 − w) × [c × EWMA + (1 − c) × exchange], with
    c = min(1, history_used / halflife): without history the exchange's lastFundingRate
    stands in for the EWMA, and it fades out as settled periods accumulate.
    """
    coverage = min(ONE, Decimal(history_used) / halflife) if ewma_apr is not None else Decimal(0)
    history_term = coverage * (ewma_apr or 0) + (ONE - coverage) * exchange_apr
    return predicted_weight * predicted_apr + (ONE - predicted_weight) * history_term


def carry_signal(
    pair: Pair, snapshot: MarketSnapshot, params: SignalParams, notional: Decimal
) -> CarrySignal | None:
    """Return the carry signal of `pair` in `snapshot`, or None when data is missing.

    Funding: the predicted rate (Binance's formula on the perpetual book) blended with the
    EWMA of the last `history_periods` settled rates (see `smoothed_apr`). Basis captured
    over the horizon assumes the mid basis converges to 0 while exit pays today's spreads:
    captured = entry_basis − (exit_basis − mid_basis). Costs: taker fees of both legs to
    open and close, plus slippage from `snapshot.books` for `notional` (else `assumed_slippage_bps`
    per leg and trade). net = smoothed × H / 8760 + captured − costs; net_apr = net × 8760 / H;
    break-even = max(0, costs − captured) / (smoothed / 8760).
    """
    info = snapshot.funding.get(pair.perp.symbol)
    spot_q = snapshot.spot_quotes.get(pair.spot.symbol)
    perp_q = snapshot.perp_quotes.get(pair.perp.symbol)
    if info is None or spot_q is None or perp_q is None:
        return None
    if min(spot_q.bid, spot_q.ask, perp_q.bid, perp_q.ask, info.index_price) <= 0:
        return None
    if info.interval_hours <= 0:
        return None
    interval = info.interval_hours
    horizon = params.horizon_hours
    now = snapshot.taken_at

    exchange_apr = funding.funding_apr(info.funding_rate, interval)
    premium = funding.premium_index(perp_q.bid, perp_q.ask, info.index_price)
    predicted = funding.predicted_funding_rate(
        premium,
        info.interest_rate,
        interval,
        cap=info.funding_cap,
        floor=info.funding_floor,
        scaled=now >= funding.FUNDING_SCALED_SINCE,
    )
    predicted_apr = funding.funding_apr(predicted, interval)
    history = snapshot.funding_history.get(pair.perp.symbol, ())
    history = history[-params.history_periods :]
    ewma_apr, negative_run = (
        _settled(history, interval, params.ewma_halflife_periods) if history else (None, 0)
    )
    blended = smoothed_apr(
        predicted_apr,
        exchange_apr,
        ewma_apr,
        len(history),
        params.predicted_weight,
        params.ewma_halflife_periods,
    )

    entry_basis = carry.perp_basis(perp_q.bid, spot_q.ask)
    exit_basis = carry.perp_basis(perp_q.ask, spot_q.bid)
    mid_basis = carry.perp_basis(perp_q.mid, spot_q.mid)
    captured = entry_basis - (exit_basis - mid_basis)

    fees = params.fees
    paid = fees.effective()  # VIP tier and BNB discount applied
    leg_fees = paid.spot_taker + paid.futures_taker
    slip_open, slip_close = open_close_slippage(
        pair, snapshot, notional, params.assumed_slippage_bps
    )
    total_fees = 2 * leg_fees
    slippage = slip_open + slip_close
    funding_carry = blended * horizon / funding.HOURS_PER_YEAR
    net = carry.net_carry(blended, horizon, captured, total_fees, slippage)
    return CarrySignal(
        pair=pair.key,
        perp_symbol=pair.perp.symbol,
        notional=notional,
        interval_hours=interval,
        next_funding_time=info.next_funding_time,
        funding_rate=info.funding_rate,
        funding_apr=exchange_apr,
        predicted_rate=predicted,
        predicted_apr=predicted_apr,
        ewma_apr=ewma_apr,
        history_used=len(history),
        smoothed_apr=blended,
        entry_basis=entry_basis,
        exit_basis=exit_basis,
        mid_basis=mid_basis,
        captured_basis=captured,
        basis_apr=carry.annualised_basis(captured, horizon),
        fees=total_fees,
        slippage=slippage,
        exit_cost=carry.trade_cost(leg_fees, slip_close),
        funding_carry=funding_carry,
        net_carry=net,
        net_apr=carry.annualised_basis(net, horizon),
        breakeven_hours=carry.breakeven_hours(total_fees + slippage - captured, blended),
        negative_run=negative_run,
    )


_SETTLED_KEPT: dict[int, tuple[Sequence[SettledFunding], int, Decimal, tuple[Decimal, int]]] = {}
_SETTLED_KEPT_MAX = 512


def _settled(
    history: Sequence[SettledFunding], interval: int, halflife: Decimal
) -> tuple[Decimal, int]:
    """`funding.settled_ewma_apr` and `funding.trailing_negative` of `history`, worked out
    again only when the history changed.

    Settled funding changes once a period while prices change every poll, and a snapshot
    hands the same history object until a new settlement arrives; the object is held with
    its answer, so its id is never mistaken for another's.
    """
    kept = _SETTLED_KEPT.get(id(history))
    if kept is not None and kept[0] is history and kept[1] == interval and kept[2] == halflife:
        return kept[3]
    value = (
        funding.settled_ewma_apr(history, interval, halflife),
        funding.trailing_negative(history),
    )
    if len(_SETTLED_KEPT) >= _SETTLED_KEPT_MAX:
        _SETTLED_KEPT.clear()
    _SETTLED_KEPT[id(history)] = (history, interval, halflife, value)
    return value


def open_close_slippage(
    pair: Pair, snapshot: MarketSnapshot, notional: Decimal, fallback_bps: Decimal
) -> tuple[Decimal, Decimal]:
    """Return (open, close) slippage of both legs: buy spot + sell perp, then the reverse."""
    spot_book = snapshot.books.get(pair.spot.symbol)
    perp_book = snapshot.books.get(pair.perp.symbol)
    fixed = fallback_bps * carry.BPS
    if spot_book is None:
        spot_open = spot_close = fixed
    else:
        spot_open = carry.book_slippage(
            spot_book.asks, notional, buy=True, fallback_bps=fallback_bps
        )
        spot_close = carry.book_slippage(
            spot_book.bids, notional, buy=False, fallback_bps=fallback_bps
        )
    if perp_book is None:
        perp_open = perp_close = fixed
    else:
        perp_open = carry.book_slippage(
            perp_book.bids, notional, buy=False, fallback_bps=fallback_bps
        )
        perp_close = carry.book_slippage(
            perp_book.asks, notional, buy=True, fallback_bps=fallback_bps
        )
    return spot_open + perp_open, spot_close + perp_close


def futures_slippage(
    pair: Pair, snapshot: MarketSnapshot, notional: Decimal, fallback_bps: Decimal
) -> Decimal:
    """Return the slippage of the short alone: selling `pair`'s future, then buying it back."""
    book = snapshot.books.get(pair.perp.symbol)
    if book is None:
        return 2 * fallback_bps * carry.BPS
    sell = carry.book_slippage(book.bids, notional, buy=False, fallback_bps=fallback_bps)
    buy = carry.book_slippage(book.asks, notional, buy=True, fallback_bps=fallback_bps)
    return sell + buy
