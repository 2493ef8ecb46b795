"""Dated-future carry: long spot, short a quarterly, the basis converges to 0 at delivery.

Pure functions of the snapshot. The signal of one spot + dated pair annualises the basis
to the contract's delivery time, net of both legs' taker fees to open and to close and of
the slippage of those four trades:

    net APR = (F / S − 1 − fees − slippage) × 365 / days_to_expiry

with F the future's bid and S the spot ask (what a market entry gets), days from the
snapshot time to the contract's delivery time. The rules (`[strategy.dated]`):
- entry: net APR > `entry_apr`, more than `min_days_to_expiry` and more than
  `roll_before_delivery_hours` to delivery; the best contract of each asset;
- take profit: the basis captured since entry (entry basis − today's executable exit
  basis) reaches `take_profit_basis` × the entry basis;
- roll: from `roll_before_delivery_hours` to `exit_before_delivery_hours` before delivery,
  into a later contract of the same asset that trades (status TRADING, no delisting date)
  and whose roll APR beats `entry_apr` + `roll_margin_apr`. A roll keeps the spot and
  moves the short alone, so its APR counts the short's costs only:

      roll APR = (F / S_bid − 1 − 2 × futures taker − the short's slippage) × 365 / days

  with F the later contract's bid and S_bid the spot bid (what the spot kept is worth). The
  two futures legs the roll adds are the later short's sale now and its buy-back at exit;
  the near short's buy-back and the spot's sale are paid whether the hedge rolls or closes;
- delivery: at `exit_before_delivery_hours` before delivery the hedge is closed, unless
  `hold_to_settlement` (the exchange then settles the short at the delivery price); a roll
  not done by then (refused, failing, cooling down) is replaced by this close.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from bot.domain import CloseHedge, Hedge, MarketSnapshot, OpenHedge, Pair, RollHedge, funding
from bot.domain.hedge import BASIS_SPOT
from bot.domain.strategy import DatedParams, StrategyParams
from strategies.signals import futures_slippage, open_close_slippage, quantize_metric

ZERO = Decimal(0)
DAYS_PER_YEAR = Decimal(365)


@dataclass(frozen=True, slots=True)
class DatedSignal:
    """The basis carry of one spot + dated-future pair, for `notional` per leg."""

    pair: str  # spot symbol, the asset's key
    future_symbol: str
    contract_type: str | None
    expiry: datetime
    notional: Decimal
    days_to_expiry: Decimal
    entry_basis: Decimal  # future bid / spot ask − 1
    exit_basis: Decimal  # future ask / spot bid − 1
    gross_apr: Decimal  # entry basis × 365 / days
    fees: Decimal  # both legs, open and close
    slippage: Decimal  # both legs, open and close
    net_basis: Decimal  # entry basis − fees − slippage
    net_apr: Decimal  # net basis × 365 / days

    @property
    def hours_to_expiry(self) -> Decimal:
        return self.days_to_expiry * 24

    def metrics(self) -> dict[str, Decimal]:
        """Return the numbers behind a decision, rounded to 1e-10, for the ledger."""
        values = {
            "notional": self.notional,
            "days_to_expiry": self.days_to_expiry,
            "entry_basis": self.entry_basis,
            "exit_basis": self.exit_basis,
            "basis_apr": self.gross_apr,
            "fees": self.fees,
            "slippage": self.slippage,
            "net_basis": self.net_basis,
            "net_apr": self.net_apr,
        }
        return {k: quantize_metric(v) for k, v in values.items()}


def dated_signal(
    pair: Pair, snapshot: MarketSnapshot, params: StrategyParams, notional: Decimal
) -> DatedSignal | None:
    """Return the dated carry of `pair` now, None without quotes or once it has expired."""
    expiry = pair.perp.expiry
    spot_q = snapshot.spot_quotes.get(pair.spot.symbol)
    future_q = snapshot.perp_quotes.get(pair.perp.symbol)
    if expiry is None or spot_q is None or future_q is None:
        return None
    if min(spot_q.bid, spot_q.ask, future_q.bid, future_q.ask) <= 0:
        return None
    days = funding.hours_between(snapshot.taken_at, expiry) / 24
    if days <= 0:
        return None
    fees = params.fees
    paid = fees.effective()  # VIP tier and BNB discount applied
    total_fees = 2 * (paid.spot_taker + paid.futures_taker)
    slip_open, slip_close = open_close_slippage(
        pair, snapshot, notional, params.dated.assumed_slippage_bps
    )
    slippage = slip_open + slip_close
    entry = future_q.bid / spot_q.ask - 1
    net = entry - total_fees - slippage
    return DatedSignal(
        pair=pair.key,
        future_symbol=pair.perp.symbol,
        contract_type=pair.perp.contract_type,
        expiry=expiry,
        notional=notional,
        days_to_expiry=days,
        entry_basis=entry,
        exit_basis=future_q.ask / spot_q.bid - 1,
        gross_apr=entry * DAYS_PER_YEAR / days,
        fees=total_fees,
        slippage=slippage,
        net_basis=net,
        net_apr=net * DAYS_PER_YEAR / days,
    )


def roll_signal(
    pair: Pair, snapshot: MarketSnapshot, params: StrategyParams, notional: Decimal
) -> DatedSignal | None:
    """Return the carry a roll into `pair` buys: the spot is kept, so only the short's two
    futures legs are paid (its sale now, its buy-back at exit), taker fee and slippage."""
    expiry = pair.perp.expiry
    spot_q = snapshot.spot_quotes.get(pair.spot.symbol)
    future_q = snapshot.perp_quotes.get(pair.perp.symbol)
    if expiry is None or spot_q is None or future_q is None:
        return None
    if min(spot_q.bid, spot_q.ask, future_q.bid, future_q.ask) <= 0:
        return None
    days = funding.hours_between(snapshot.taken_at, expiry) / 24
    if days <= 0:
        return None
    fees = 2 * params.fees.effective().futures_taker
    slippage = futures_slippage(pair, snapshot, notional, params.dated.assumed_slippage_bps)
    entry = future_q.bid / spot_q.bid - 1
    net = entry - fees - slippage
    return DatedSignal(
        pair=pair.key,
        future_symbol=pair.perp.symbol,
        contract_type=pair.perp.contract_type,
        expiry=expiry,
        notional=notional,
        days_to_expiry=days,
        entry_basis=entry,
        exit_basis=future_q.ask / spot_q.bid - 1,
        gross_apr=entry * DAYS_PER_YEAR / days,
        fees=fees,
        slippage=slippage,
        net_basis=net,
        net_apr=net * DAYS_PER_YEAR / days,
    )


def entry_block(signal: DatedSignal, params: DatedParams) -> str | None:
    """Return the first entry rule `signal` fails (a short code), or None when it passes."""
    if signal.days_to_expiry <= params.min_days_to_expiry:
        return "expiry_near"
    if signal.hours_to_expiry <= params.roll_before_delivery_hours:
        return "expiry_near"
    if signal.net_apr <= params.entry_apr:
        return "net_apr"
    return None


def dated_candidates(
    pairs: Iterable[Pair],
    snapshot: MarketSnapshot,
    params: StrategyParams,
    *,
    skip: set[str],
) -> list[DatedSignal]:
    """Return the best passing contract of each asset not in `skip`, best net APR first."""
    size = params.sizing.notional_per_hedge
    best: dict[str, DatedSignal] = {}
    for pair in pairs:
        if pair.key in skip or untradable(pair, snapshot) is not None:
            continue
        signal = dated_signal(pair, snapshot, params, size)
        if signal is None or entry_block(signal, params.dated) is not None:
            continue
        held = best.get(pair.key)
        if held is None or signal.net_apr > held.net_apr:
            best[pair.key] = signal
    return sorted(best.values(), key=lambda s: s.net_apr, reverse=True)


def dated_open(signal: DatedSignal, notional: Decimal, why: str, params: DatedParams) -> OpenHedge:
    """Return the OpenHedge of a spot + dated short for `signal` at `notional`."""
    metrics = signal.metrics()
    metrics["notional"] = notional
    reason = (
        f"{why}: {signal.future_symbol} net basis APR {signal.net_apr:.2%} > "
        f"{params.entry_apr:.2%} (basis {signal.entry_basis * 10000:.1f} bps, "
        f"{signal.days_to_expiry:.1f} days to delivery)"
    )
    return OpenHedge(
        pair=signal.pair,
        notional=notional,
        reason=reason,
        metrics=metrics,
        future_symbol=signal.future_symbol,
    )


@dataclass(frozen=True, slots=True)
class DatedDecision:
    """What a held dated hedge calls for: a close, or a roll of its short."""

    intent: CloseHedge | RollHedge


def dated_exit(
    hedge: Hedge,
    held: Pair,
    later: Sequence[Pair],
    snapshot: MarketSnapshot,
    params: StrategyParams,
) -> DatedDecision | None:
    """Return the close (or roll) an OPEN dated hedge calls for, or None to keep it.

    `held` is the hedge's spot + dated pair, `later` the same asset's contracts that deliver
    after it. In order: take profit; within `roll_before_delivery_hours` of delivery but
    not yet within `exit_before_delivery_hours`, a roll into the best later contract that
    trades and whose roll APR beats `entry_apr` + `roll_margin_apr`; within
    `exit_before_delivery_hours` (or after delivery), a close, unless
    `hold_to_settlement` (then only once delivered).
    """
    rules = params.dated
    expiry = held.perp.expiry
    if expiry is None:
        return None
    now = snapshot.taken_at
    hours_left = funding.hours_between(now, expiry)
    signal = dated_signal(held, snapshot, params, hedge.target_notional)
    captured = captured_basis(hedge, signal) if signal is not None else None
    metrics: dict[str, Decimal] = dict(signal.metrics()) if signal is not None else {}
    metrics["hours_to_delivery"] = quantize_metric(hours_left)
    if hours_left <= 0:
        reason = f"delivered: {held.perp.symbol} settled"
        return DatedDecision(CloseHedge(hedge.id, reason, metrics))
    if captured is not None and signal is not None:
        entry = captured + signal.exit_basis
        if entry > 0 and captured >= rules.take_profit_basis * entry:
            metrics["captured_since_entry"] = quantize_metric(captured)
            reason = (
                f"take_profit: basis captured {captured:.4%} >= "
                f"{rules.take_profit_basis:.0%} of {entry:.4%} sold at entry"
            )
            return DatedDecision(CloseHedge(hedge.id, reason, metrics))
    if rules.hold_to_settlement:
        return None
    # Never on the contract past the exit window: a roll not done by then (refused, cooling
    # down after failures) gives way to the close below.
    if rules.exit_before_delivery_hours < hours_left <= rules.roll_before_delivery_hours:
        target = _roll_target(later, snapshot, params, hedge.target_notional)
        if target is not None:
            metrics["roll_net_apr"] = quantize_metric(target.net_apr)
            metrics["roll_fees"] = quantize_metric(target.fees)
            metrics["roll_slippage"] = quantize_metric(target.slippage)
            reason = (
                f"roll: {held.perp.symbol} -> {target.future_symbol} (roll APR "
                f"{target.net_apr:.2%} > {rules.entry_apr + rules.roll_margin_apr:.2%}, the "
                f"short's costs only; {target.days_to_expiry:.1f} days to delivery)"
            )
            return DatedDecision(RollHedge(hedge.id, target.future_symbol, reason, metrics))
    if hours_left <= rules.exit_before_delivery_hours:
        reason = (
            f"delivery: {hours_left:.1f} h to {held.perp.symbol} delivery <= "
            f"{rules.exit_before_delivery_hours} h"
        )
        return DatedDecision(CloseHedge(hedge.id, reason, metrics))
    return None


def _roll_target(
    later: Sequence[Pair], snapshot: MarketSnapshot, params: StrategyParams, notional: Decimal
) -> DatedSignal | None:
    rules = params.dated
    best: DatedSignal | None = None
    for pair in later:
        if untradable(pair, snapshot) is not None:
            continue  # not TRADING, settling, or being delisted: never rolled into
        signal = roll_signal(pair, snapshot, params, notional)
        if signal is None or signal.hours_to_expiry <= rules.roll_before_delivery_hours:
            continue
        if signal.net_apr <= rules.entry_apr + rules.roll_margin_apr:
            continue
        if best is None or signal.net_apr > best.net_apr:
            best = signal
    return best


def untradable(pair: Pair, snapshot: MarketSnapshot) -> str | None:
    """Why no new short may go on `pair`'s future: its status is not TRADING, it is given a
    delisting date, or the delisting watch lists its asset (None: it trades)."""
    reason = pair.perp.not_tradable()
    if reason is not None:
        return reason
    listed = snapshot.untradable.get(pair.key)
    if listed is not None and listed.startswith((f"{pair.key} ", f"{pair.perp.symbol} ")):
        return listed
    return None


def captured_basis(hedge: Hedge, signal: DatedSignal) -> Decimal | None:
    """Return entry basis − today's executable exit basis, None without entry prices.

    A rolled hedge's entry basis is the one its roll sold: the later contract's fill price
    over the spot bid at the roll (`basis_spot_price`)."""
    spot = Decimal(hedge.metrics.get(BASIS_SPOT, "0")) or hedge.entry_spot_price
    if not spot or not hedge.entry_perp_price:
        return None
    return hedge.entry_perp_price / spot - 1 - signal.exit_basis
