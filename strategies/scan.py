"""`carrybot scan` rows: every carry of every pair of one snapshot, ranked by net APR. Pure.

A pair has one row for its perpetual (funding carry), with `"coinm"` one for its COIN-M
perpetual (funding paid in the coin, `carry` "coinm perpetual"), and, when dated carries
are enabled, one per dated future (basis to delivery, `strategies.dated_basis`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from bot.domain import MarketSnapshot, OpenHedge, Pair, Portfolio
from bot.domain.funding import HOURS_PER_YEAR
from bot.domain.params import FeeParams
from bot.domain.universe import exclusion_reason, select_universe
from strategies import dated_basis
from strategies.best_carry import BestCarry, enabled_dated
from strategies.carry_value import CarryValue
from strategies.dated_basis import DatedSignal, dated_signal
from strategies.expected_carry import ExpectedCarry, ExpectedCarryParams
from strategies.expected_carry import entry_block as expected_entry_block
from strategies.expected_carry import value_of as expected_value_of
from strategies.funding_carry import FundingCarry, FundingCarryParams, entry_block
from strategies.signals import CarrySignal, carry_signal

PERPETUAL = "perpetual"
COINM_PERPETUAL = "coinm perpetual"

ZERO = Decimal(0)
ScanParams = FundingCarryParams | ExpectedCarryParams


@dataclass(frozen=True, slots=True)
class _SignalView:
    """The signal inputs of `expected_carry`'s parameters (its holding as the horizon)."""

    horizon_hours: int
    predicted_weight: Decimal
    ewma_halflife_periods: Decimal
    history_periods: int
    assumed_slippage_bps: Decimal
    fees: FeeParams


@dataclass(frozen=True, slots=True)
class ScanRow:
    """One pair as the strategy sees it. `signal` is None when quotes or funding are missing."""

    pair: str
    perp_symbol: str
    volume_24h: Decimal  # the smaller of the two legs' 24h quote volume
    signal: CarrySignal | None
    next_funding_in: timedelta | None
    would_enter: bool
    reason: str  # why not, as a short code; "enter" when it would
    dated: DatedSignal | None = None  # the basis carry of a dated row
    carry: str = PERPETUAL  # "perpetual", or the dated contract (type and delivery date)
    expected: tuple[Decimal | None, Decimal | None] | None = None
    """`expected_carry`'s (net APR, break-even hours) of a perpetual row; None otherwise."""

    @property
    def net_apr(self) -> Decimal | None:
        """Net APR of entering, by the configured strategy's own cost model."""
        if self.dated is not None:
            return self.dated.net_apr
        if self.expected is not None:
            return self.expected[0]
        return self.signal.net_apr if self.signal is not None else None

    @property
    def breakeven_hours(self) -> Decimal | None:
        """Hours of (forecast) funding that repay the round trip; None: never."""
        if self.expected is not None:
            return self.expected[1]
        return self.signal.breakeven_hours if self.signal is not None else None


def scan_rows(
    snapshot: MarketSnapshot,
    params: ScanParams,
    *,
    min_volume: Decimal = ZERO,
    portfolio: Portfolio | None = None,
) -> list[ScanRow]:
    """Return a row per pair with at least `min_volume` on both legs, best net APR first.

    `would_enter` is what the configured strategy does with this snapshot and `portfolio`
    (empty by default): the pairs it opens. `reason` explains the others: outside the
    universe (`denied`, `volume`, …, `not_top_n`), an entry rule (`funding_carry`: `net_apr`,
    `basis`, `breakeven`, `negative_funding`; `expected_carry`: `net_carry`, `dip_ahead`,
    `basis`, `negative_funding`), `capacity` (passes but the sizing limits are full),
    `no_data`. Net APR and break-even come from the strategy's own cost model: for
    `expected_carry`, (forecast carry over the holding − round trip) annualised over the
    holding, and round trip / forecast funding per hour.
    """
    portfolio = portfolio or Portfolio(hedges=())
    expected = isinstance(params, ExpectedCarryParams)
    inner = ExpectedCarry() if expected else FundingCarry()
    intents = BestCarry(inner).evaluate(snapshot, portfolio, params)
    opens = [i for i in intents if isinstance(i, OpenHedge)]
    coinm_perps = {p.perp.symbol for p in snapshot.coinm_perp_pairs}
    opened = {i.pair for i in opens if i.future_symbol is None or i.future_symbol in coinm_perps}
    opened_dated = {
        i.future_symbol
        for i in opens
        if i.future_symbol is not None and i.future_symbol not in coinm_perps
    }
    dated_assets = {i.pair for i in opens if i.future_symbol in opened_dated}
    selected = {p.key for p in select_universe(snapshot, params.universe)}
    signal_params = (
        _SignalView(
            int(params.holding_hours),
            ZERO,
            params.ewma_halflife_periods,
            params.history_periods,
            params.assumed_slippage_bps,
            params.fees,
        )
        if isinstance(params, ExpectedCarryParams)
        else params
    )
    coinm_symbols = {p.perp.symbol for p in snapshot.coinm_perp_pairs}
    opened_coinm = {i.pair for i in opens if i.future_symbol in coinm_symbols}
    rows = _perpetual_rows(
        snapshot.pairs, snapshot, params, signal_params, min_volume, selected,
        opened - opened_coinm, dated_assets | opened_coinm, PERPETUAL,
    )  # fmt: skip
    if "coinm" in params.instruments:
        rows += _perpetual_rows(
            snapshot.coinm_perp_pairs, snapshot, params, signal_params, min_volume, selected,
            opened_coinm, dated_assets | (opened - opened_coinm), COINM_PERPETUAL,
        )  # fmt: skip
    if params.trades_dated:
        rows += _dated_rows(snapshot, params, min_volume, selected, opened_dated, opened)
    rows.sort(key=lambda r: (r.net_apr is not None, r.net_apr or ZERO), reverse=True)
    return rows


def _perpetual_rows(
    pairs: Sequence[Pair],
    snapshot: MarketSnapshot,
    params: ScanParams,
    signal_params: Any,
    min_volume: Decimal,
    selected: set[str],
    opened: set[str],
    rivals: set[str],
    carry: str,
) -> list[ScanRow]:
    """A row per perpetual pair (USDⓈ-M, or COIN-M: funding paid in the coin); `opened`:
    the assets the strategy opens on these pairs, `rivals`: those it opens on another."""
    size = params.sizing.notional_per_hedge
    rows: list[ScanRow] = []
    for pair in pairs:
        volume = _min_volume(pair, snapshot)
        if volume < min_volume:
            continue
        signal = carry_signal(pair, snapshot, signal_params, size)
        info = snapshot.funding.get(pair.perp.symbol)
        figures: tuple[Decimal | None, Decimal | None] | None = None
        if isinstance(params, ExpectedCarryParams):
            value = expected_value_of(pair, snapshot, params, size)
            block = expected_entry_block(value, params) if value is not None else None
            figures = _expected_figures(value)
            if value is None:
                signal = None
        else:
            block = entry_block(signal, params) if signal is not None else None
        rows.append(
            ScanRow(
                pair=pair.key,
                perp_symbol=pair.perp.symbol,
                volume_24h=volume,
                signal=signal,
                next_funding_in=info.next_funding_time - snapshot.taken_at if info else None,
                would_enter=pair.key in opened,
                reason=_reason(pair, signal, block, snapshot, params, selected, opened, rivals),
                expected=figures,
                carry=carry,
            )
        )
    return rows


def _dated_rows(
    snapshot: MarketSnapshot,
    params: ScanParams,
    min_volume: Decimal,
    selected: set[str],
    opened: set[str],
    opened_perp: set[str],
) -> list[ScanRow]:
    size = params.sizing.notional_per_hedge
    rows: list[ScanRow] = []
    for pair in enabled_dated(snapshot.dated_pairs, params):
        volume = _min_volume(pair, snapshot)
        if volume < min_volume:
            continue
        signal = dated_signal(pair, snapshot, params, size)
        expiry = pair.perp.expiry
        if signal is None:
            reason = "no_data"
        elif pair.perp.symbol in opened:
            reason = "enter"
        elif pair.key not in selected:
            reason = "not_in_universe"
        else:
            block = dated_basis.entry_block(signal, params.dated)
            reason = block or ("better_carry" if pair.key in opened_perp else "capacity")
        rows.append(
            ScanRow(
                pair=pair.key,
                perp_symbol=pair.perp.symbol,
                volume_24h=volume,
                signal=None,
                next_funding_in=expiry - snapshot.taken_at if expiry else None,
                would_enter=reason == "enter",
                reason=reason,
                dated=signal,
                carry=f"{(pair.perp.contract_type or 'dated').lower()} {expiry:%Y-%m-%d}",
            )
        )
    return rows


def _expected_figures(value: CarryValue | None) -> tuple[Decimal | None, Decimal | None]:
    """Return (net APR over the holding, break-even hours) of an `expected_carry` value."""
    if value is None:
        return None, None
    hours = value.holding_hours
    net_apr = value.net_entry * HOURS_PER_YEAR / hours
    per_hour = value.expected_carry / hours
    breakeven = value.round_trip / per_hour if per_hour > 0 else None
    return net_apr, breakeven


def _reason(
    pair: Pair,
    signal: CarrySignal | None,
    block: str | None,
    snapshot: MarketSnapshot,
    params: ScanParams,
    selected: set[str],
    opened: set[str],
    dated_assets: set[str],
) -> str:
    if pair.key in opened:
        return "enter"
    if pair.perp.is_inverse:  # a COIN-M perpetual follows its asset's universe membership
        if pair.key not in selected:
            return "not_in_universe"
    else:
        universe = params.universe
        excluded = exclusion_reason(pair, snapshot.volumes_24h, universe, snapshot.taken_at)
        if excluded is not None:
            return excluded
    if signal is None:
        return "no_data"
    if pair.key not in selected:
        return "not_top_n"
    if block is not None:
        return block
    return "better_carry" if pair.key in dated_assets else "capacity"  # a dated one instead


def row_json(row: ScanRow) -> dict[str, Any]:
    """Return a row as JSON-ready values (rates and APRs as fractions, basis in bps)."""
    sig = row.signal
    if row.dated is not None or row.carry != PERPETUAL:
        return _dated_json(row)
    return {
        "symbol": row.pair,
        "carry": row.carry,
        "perp_symbol": row.perp_symbol,
        "funding_rate": _num(sig.funding_rate) if sig else None,
        "interval_hours": sig.interval_hours if sig else None,
        "funding_apr": _num(sig.funding_apr) if sig else None,
        "predicted_rate": _num(sig.predicted_rate) if sig else None,
        "predicted_minus_exchange": _num(sig.predicted_minus_exchange) if sig else None,
        "smoothed_apr": _num(sig.smoothed_apr) if sig else None,
        "history_periods": sig.history_used if sig else None,
        "basis_bps": _num(sig.entry_basis * 10_000) if sig else None,
        "net_apr": _num(row.net_apr),
        "breakeven_hours": _num(row.breakeven_hours),
        "next_funding_in_seconds": (
            int(row.next_funding_in.total_seconds()) if row.next_funding_in is not None else None
        ),
        "volume_24h": _num(row.volume_24h),
        "would_enter": row.would_enter,
        "reason": row.reason,
    }


def _dated_json(row: ScanRow) -> dict[str, Any]:
    sig = row.dated
    return {
        "symbol": row.pair,
        "carry": row.carry,
        "perp_symbol": row.perp_symbol,
        "contract_type": sig.contract_type if sig else None,
        "delivery_time": sig.expiry.isoformat() if sig else None,
        "days_to_expiry": _num(sig.days_to_expiry) if sig else None,
        "funding_rate": None,
        "interval_hours": None,
        "funding_apr": None,
        "basis_bps": _num(sig.entry_basis * 10_000) if sig else None,
        "basis_apr": _num(sig.gross_apr) if sig else None,
        "net_basis": _num(sig.net_basis) if sig else None,
        "net_apr": _num(sig.net_apr) if sig else None,
        "breakeven_hours": None,
        "next_funding_in_seconds": None,
        "delivery_in_seconds": (
            int(row.next_funding_in.total_seconds()) if row.next_funding_in is not None else None
        ),
        "volume_24h": _num(row.volume_24h),
        "would_enter": row.would_enter,
        "reason": row.reason,
    }


def table_cells(row: ScanRow) -> list[str]:
    """Return a row as the text cells of the scan table (see TABLE_COLUMNS)."""
    sig = row.signal
    dated = row.dated
    if dated is not None:
        return [row.pair, row.carry, "-", "-", "-", "-", f"{dated.entry_basis * 10_000:.1f}",
                f"{dated.gross_apr:.2%}", f"{dated.net_apr:.2%}", "-",
                f"delivery {_duration(row.next_funding_in)}", _volume(row.volume_24h),
                "yes" if row.would_enter else f"no: {row.reason}"]  # fmt: skip
    if sig is None:
        return [row.pair, row.carry, "-", "-", "-", "-", "-", "-", "-", "-",
                _duration(row.next_funding_in), _volume(row.volume_24h), row.reason]  # fmt: skip
    hours = row.breakeven_hours
    breakeven = f"{hours:.0f}" if hours is not None else "never"
    return [
        row.pair,
        row.carry,
        f"{sig.funding_rate:.4%}",
        f"{sig.interval_hours}h",
        f"{sig.funding_apr:.2%}",
        f"{sig.predicted_rate:.4%}",
        f"{sig.entry_basis * 10_000:.1f}",
        "-",
        f"{row.net_apr:.2%}" if row.net_apr is not None else "-",
        breakeven,
        _duration(row.next_funding_in),
        _volume(row.volume_24h),
        "yes" if row.would_enter else f"no: {row.reason}",
    ]


TABLE_COLUMNS: Sequence[str] = (
    "symbol",
    "carry",
    "funding",
    "interval",
    "funding APR",
    "predicted",
    "basis bps",
    "basis APR",
    "net APR",
    "break-even h",
    "next funding",
    "24h volume",
    "enter",
)


def _min_volume(pair: Pair, snapshot: MarketSnapshot) -> Decimal:
    volumes = snapshot.volumes_24h
    spot = volumes.get(pair.spot.symbol, ZERO)
    if pair.perp.is_inverse and pair.perp.symbol not in volumes:
        return spot  # COIN-M volumes are not polled (contracts, not quote volume)
    return min(spot, volumes.get(pair.perp.symbol, ZERO))


def _num(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def _duration(delta: timedelta | None) -> str:
    if delta is None:
        return "-"
    minutes = max(0, int(delta.total_seconds()) // 60)
    return f"{minutes // 60}h{minutes % 60:02d}m"


def _volume(value: Decimal) -> str:
    for unit, size in (("B", Decimal(10) ** 9), ("M", Decimal(10) ** 6), ("k", Decimal(1000))):
        if value >= size:
            return f"{value / size:.1f}{unit}"
    return f"{value:.0f}"


def taken_at_text(when: datetime) -> str:
    """Return the snapshot time as the table caption shows it."""
    return when.strftime("%Y-%m-%d %H:%M:%S UTC")
