"""Turn a finished replay into its report: the bot's figures from the ledger, the baseline's.

The bot's figures use the same definitions as `carrybot status` (`bot.pnl`): every hedge's
fills and funding payments as the ledger recorded them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from bot.backtest.engine import REACTION, BacktestRun
from bot.backtest.figures import ZERO, Figures, Interval, WorstHedge, figures_of, iso, money
from bot.backtest.passive import PassiveLeg, PassiveResult, passive_carry
from bot.backtest.series import from_ms, to_ms
from bot.domain import Fill, FundingPayment, Hedge
from bot.persistence.repositories import Ledger
from bot.pnl import HedgePnL, fee_usdt, hedge_pnl

FORMAT_VERSION = 2
PASSIVE_METHOD = (
    "constant notional: every pair held at sizing.notional_per_hedge per leg over its data, "
    "funding = notional x rate at each settlement, one round trip of taker fees"
)
PAYING_METHOD = (
    "constant notional as passive, less the taker fees (spot + futures, no slippage) of the "
    "resizes that keep each pair within strategy.rebalance_band of sizing.notional_per_hedge, "
    "checked at each settlement's mark: what holding at constant notional costs"
)
FIXED_QUANTITY_METHOD = (
    "fixed quantity bought at entry and held: funding grows with the price, which a "
    "leveraged short could not carry without margin top-ups; not a fair baseline"
)


@dataclass(frozen=True)
class HedgeLine:
    hedge: Hedge
    pnl: HedgePnL


@dataclass(frozen=True)
class DayLine:
    """The account at the end of one UTC day (the last snapshot that day)."""

    day: str
    equity: Decimal
    funding: Decimal
    fees: Decimal
    open_hedges: int
    notional: Decimal


@dataclass(frozen=True)
class BacktestReport:
    """Everything a backtest writes out."""

    run: BacktestRun
    bot: Figures
    passive: Figures
    """The passive baseline at constant notional (see `bot.backtest.passive`)."""
    hedges: list[HedgeLine]
    passive_legs: list[PassiveLeg]
    days: list[DayLine]
    funding_payments: list[FundingPayment]
    passive_fixed_quantity: Figures | None = None
    """The older baseline holding the quantity bought at entry (its funding grows with price)."""
    passive_paying: Figures | None = None
    """The constant-notional baseline paying for its resizes (strategies with a rebalance band)."""
    passive_paying_resizes: int = 0

    @property
    def started_at(self) -> datetime:
        return self.run.start + REACTION

    @property
    def ended_at(self) -> datetime:
        return self.run.end + REACTION

    def summary_json(self) -> dict[str, Any]:
        """Return summary.json: no wall-clock time, stable key order, decimals as strings."""
        run = self.run
        config = run.spec.config
        return {
            "format": FORMAT_VERSION,
            "config_hash": config.fingerprint(),
            "strategy": config.strategy.name,
            "pairs": sorted(p for p in tradable_pairs(run)),
            "start": iso(self.started_at),
            "end": iso(self.ended_at),
            "days": f"{(self.ended_at - self.started_at).total_seconds() / 86400:.4f}",
            "events": run.events,
            "seed": run.spec.seed,
            "initial_equity": money(run.initial_equity),
            "final_equity": money(run.equity[-1].equity if run.equity else run.initial_equity),
            "strategy_failures": run.strategy_failures,
            "bot": self.bot.to_json(),
            "passive_method": PASSIVE_METHOD,
            "passive": self.passive.to_json(),
            "by_pair": _by_pair(self.hedges),
            "passive_by_pair": {
                leg.pair: {
                    "quantity": f"{leg.quantity:f}",
                    "entered_at": iso(leg.entered_at),
                    "left_at": iso(leg.left_at),
                    "settlements": len(leg.paid_at),
                    "funding": money(leg.funding),
                    "fees": money(leg.fees),
                    "basis_pnl": money(leg.basis_pnl),
                    "net_pnl": money(leg.net),
                }
                for leg in self.passive_legs
            },
            **(
                {
                    "passive_fixed_quantity_method": FIXED_QUANTITY_METHOD,
                    "passive_fixed_quantity": self.passive_fixed_quantity.to_json(),
                }
                if self.passive_fixed_quantity is not None
                else {}
            ),
            **(
                {
                    "passive_paying_resizes_method": PAYING_METHOD,
                    "passive_paying_resizes": {
                        **self.passive_paying.to_json(),
                        "resizes": self.passive_paying_resizes,
                    },
                }
                if self.passive_paying is not None
                else {}
            ),
        }


def tradable_pairs(run: BacktestRun) -> list[str]:
    """Return the pairs (spot symbols) the backtest's universe could trade."""
    return sorted(s.spot_symbol for s in run.history.symbols.values())


async def build_report(run: BacktestRun, ledger: Ledger) -> BacktestReport:
    """Read the ledger of `run` and compute both sets of figures."""
    config = run.spec.config
    leverage = config.exchange.leverage
    end = run.end + REACTION
    funding_by_hedge = await ledger.funding.totals_by_hedge()
    lines: list[HedgeLine] = []
    for hedge in await ledger.hedges.in_states(None):
        fills = await ledger.fills.for_hedge(hedge.id)
        if hedge.opened_at is None and not fills:
            continue  # nothing was traded (sizing denied, both legs rejected)
        pnl = hedge_pnl(
            hedge, fills, funding_by_hedge.get(hedge.id, ZERO), now=end, leverage=leverage
        )
        lines.append(HedgeLine(hedge, pnl))
    payments = await ledger.funding.payments()
    fills = await ledger.fills.all()
    event_times = _event_times(run)
    band = getattr(config.strategy, "rebalance_band", None)

    async def baseline(constant: bool, rebalance: Decimal | None = None) -> PassiveResult:
        return await passive_carry(
            run.history,
            tradable_pairs(run),
            event_times,
            notional=config.sizing.notional_per_hedge,
            fees=config.fees.effective(),
            leverage=leverage,
            initial_equity=run.initial_equity,
            reaction=REACTION,
            constant_notional=constant,
            rebalance_band=rebalance,
        )

    passive, fixed = await baseline(True), await baseline(False)
    paying = await baseline(True, band) if isinstance(band, Decimal) else None
    return BacktestReport(
        run=run,
        bot=_bot_figures(run, lines),
        passive=passive.figures,
        hedges=lines,
        passive_legs=passive.legs,
        days=_days(run, lines, payments, fills),
        funding_payments=payments,
        passive_fixed_quantity=fixed.figures,
        passive_paying=paying.figures if paying is not None else None,
        passive_paying_resizes=sum(len(leg.resized_at) for leg in paying.legs) if paying else 0,
    )


def _event_times(run: BacktestRun) -> list[datetime]:
    return [from_ms(t) for t in run.history.event_times_ms(to_ms(run.start), to_ms(run.end))]


def _interval(line: HedgeLine, end: datetime, leverage: int) -> Interval | None:
    """The hedge's time in the market; capital = notional x (1 + 1 / leverage) at the
    notional it was opened for (the open intent's `notional`, else its target notional): the
    fills' sum would count every resize's buys as more capital, and the target notional
    after a resize is wherever that resize left it within the band."""
    opened = line.hedge.opened_at
    if opened is None:
        return None
    sized = line.hedge.metrics.get("notional")
    notional = Decimal(sized) if sized else line.hedge.target_notional
    capital = notional + notional / max(leverage, 1)
    return Interval(opened, line.hedge.closed_at or end, capital, notional)


def _bot_figures(run: BacktestRun, lines: Sequence[HedgeLine]) -> Figures:
    start, end = run.start + REACTION, run.end + REACTION
    leverage = run.spec.config.exchange.leverage
    intervals = [iv for line in lines if (iv := _interval(line, end, leverage)) is not None]
    pnls = [line.pnl for line in lines]
    opened = [line for line in lines if line.hedge.opened_at is not None]
    worst = min(lines, key=lambda line: (line.pnl.net, line.hedge.id), default=None)
    return figures_of(
        intervals,
        net=sum((p.net for p in pnls), ZERO),
        funding=sum((p.funding for p in pnls), ZERO),
        fees=sum((p.fees for p in pnls), ZERO),
        basis_pnl=sum((p.basis_pnl for p in pnls), ZERO),
        start=start,
        end=end,
        equity=[p.equity for p in run.equity],
        hedges=len(opened),
        avg_holding_hours=(
            sum((line.pnl.holding_hours for line in opened), ZERO) / len(opened) if opened else None
        ),
        worst_hedge=None
        if worst is None
        else WorstHedge(
            worst.hedge.uid,
            worst.hedge.pair,
            worst.pnl.net,
            worst.hedge.opened_at,
            worst.hedge.closed_at,
            worst.hedge.close_reason,
        ),
    )


def _by_pair(lines: Sequence[HedgeLine]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for pair in sorted({line.hedge.pair for line in lines}):
        mine = [line.pnl for line in lines if line.hedge.pair == pair]
        out[pair] = {
            "hedges": len(mine),
            "funding": money(sum((p.funding for p in mine), ZERO)),
            "fees": money(sum((p.fees for p in mine), ZERO)),
            "basis_pnl": money(sum((p.basis_pnl for p in mine), ZERO)),
            "net_pnl": money(sum((p.net for p in mine), ZERO)),
        }
    return out


def _days(
    run: BacktestRun,
    lines: Sequence[HedgeLine],
    payments: Sequence[FundingPayment],
    fills: Sequence[Fill],
) -> list[DayLine]:
    """Return one line per UTC day of the period, as of the day's last equity snapshot."""
    end = run.end + REACTION
    leverage = run.spec.config.exchange.leverage
    intervals = [iv for line in lines if (iv := _interval(line, end, leverage)) is not None]
    snapshots = _Running([(p.at, p.equity) for p in run.equity], run.initial_equity, last=True)
    funding = _Running([(p.funding_time, p.amount) for p in payments], ZERO)
    fees = _Running([(f.timestamp, fee_usdt(f)) for f in fills], ZERO)
    out: list[DayLine] = []
    day = run.start.replace(hour=0, minute=0, second=0, microsecond=0)
    while day <= run.end:
        close = min(day + timedelta(days=1), end + timedelta(microseconds=1))
        at = close - timedelta(microseconds=1)
        held = [iv for iv in intervals if iv.start <= at < iv.end]
        out.append(
            DayLine(
                day=f"{day:%Y-%m-%d}",
                equity=snapshots.until(close),
                funding=funding.until(close),
                fees=fees.until(close),
                open_hedges=len(held),
                notional=sum((iv.notional for iv in held), ZERO),
            )
        )
        day += timedelta(days=1)
    return out


class _Running:
    """A sum (or the latest value, `last`) of timed values, read at increasing times."""

    def __init__(
        self, items: Sequence[tuple[datetime, Decimal]], initial: Decimal, *, last: bool = False
    ) -> None:
        self._items = sorted(items, key=lambda item: item[0])
        self._value = initial
        self._next = 0
        self._last = last

    def until(self, close: datetime) -> Decimal:
        """Return the value over the items before `close` (each call with a later close)."""
        while self._next < len(self._items) and self._items[self._next][0] < close:
            value = self._items[self._next][1]
            self._value = value if self._last else self._value + value
            self._next += 1
        return self._value
