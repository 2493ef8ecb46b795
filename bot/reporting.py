"""The status report: hedges, P&L, trading state and data age, read from the ledger only."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from bot.adopt import AdoptRequest, commands_for, drifted_hedge_ids, pending_requests
from bot.domain import Event, Fill, Hedge, HedgeState
from bot.domain.ledger import BalanceSnapshot, TradingState, TradingStatus, Transfer
from bot.persistence.repositories import Ledger
from bot.pnl import HedgePnL, PnLTotals, hedge_pnl, totals


@dataclass(frozen=True, slots=True)
class HedgeLine:
    hedge: Hedge
    pnl: HedgePnL


@dataclass(frozen=True, slots=True)
class StatusReport:
    now: datetime
    trading: TradingStatus | None
    last_snapshot_at: datetime | None
    open: list[HedgeLine]
    closed: list[HedgeLine]
    totals: PnLTotals
    alerts: list[Event] = field(default_factory=list)
    balances: list[BalanceSnapshot] = field(default_factory=list)  # latest per wallet
    drifted: list[int] = field(default_factory=list)  # hedges the last reconciliation flagged
    adopt_pending: list[AdoptRequest] = field(default_factory=list)
    transfers: list[Transfer] = field(default_factory=list)  # of the open hedges, oldest first

    def drift_lines(self) -> list[str]:
        """Name each drifted hedge with the commands out of it, and requests waiting."""
        lines = [
            f"hedge {i} drifted from the exchange: run {commands_for(i)}" for i in self.drifted
        ]
        for r in self.adopt_pending:
            what = f"hedge {r.hedge_id}" if r.hedge_id is not None else "every drifted hedge"
            verb = "close" if r.close else "adopt"
            lines.append(f"waiting for the next start: {verb} {what} (requested {r.at:%H:%M:%S})")
        return lines

    @property
    def snapshot_age_seconds(self) -> float | None:
        if self.last_snapshot_at is None:
            return None
        return (self.now - self.last_snapshot_at).total_seconds()

    @property
    def trading_state(self) -> TradingState:
        return self.trading.state if self.trading else TradingState.ACTIVE

    def to_json(self) -> dict[str, Any]:
        """Return the report as JSON-ready data (decimals as strings)."""
        return {
            "now": self.now.isoformat(),
            "trading_state": self.trading_state.value,
            "trading_reason": self.trading.reason if self.trading else None,
            "last_snapshot_at": self.last_snapshot_at.isoformat()
            if self.last_snapshot_at
            else None,
            "snapshot_age_seconds": self.snapshot_age_seconds,
            "open_hedges": [_line_json(line) for line in self.open],
            "closed_hedges": [_line_json(line) for line in self.closed],
            "totals": {
                "hedges": self.totals.hedges,
                "funding": str(self.totals.funding),
                "fees": str(self.totals.fees),
                "basis_pnl": str(self.totals.basis_pnl),
                "net": str(self.totals.net),
                "capital": str(self.totals.capital),
            },
            "balances": [
                {
                    "wallet": b.wallet,
                    "asset": b.asset,
                    "free": str(b.free),
                    "locked": str(b.locked),
                    "value_usdt": None if b.value_usdt is None else str(b.value_usdt),
                    "taken_at": b.taken_at.isoformat(),
                }
                for b in self.balances
            ],
            "drifted_hedges": self.drifted,
            "adopt_requests": [
                {"hedge_id": r.hedge_id, "close": r.close, "at": r.at.isoformat()}
                for r in self.adopt_pending
            ],
            "drift": self.drift_lines(),
            "transfers": [_transfer_json(t) for t in self.transfers],
            "recent_alerts": [
                {"at": e.at.isoformat(), "kind": e.kind, "message": e.message} for e in self.alerts
            ],
        }


@dataclass(frozen=True, slots=True)
class StatusInputs:
    """What the status report is computed from, as read from the ledger.

    `marks`, `last_snapshot_at` and `balances` come from the rows a running bot adds every
    few seconds (`refresh_marks` reads them alone); the rest from everything else.
    """

    hedges: list[Hedge]
    fills: dict[int, list[Fill]]
    funding: dict[int, Decimal]
    marks: dict[str, tuple[Decimal | None, Decimal | None]]  # perp symbol: (spot, perp) mids
    trading: TradingStatus | None
    last_snapshot_at: datetime | None
    alerts: list[Event]
    balances: list[BalanceSnapshot]
    drifted: list[int]
    adopt_pending: list[AdoptRequest]
    transfers: list[Transfer]


async def build_status(ledger: Ledger, *, now: datetime, leverage: int = 1) -> StatusReport:
    """Assemble the status report from the ledger."""
    return compose_status(await gather_status(ledger), now=now, leverage=leverage)


async def gather_status(ledger: Ledger) -> StatusInputs:
    """Read everything the status report is computed from."""
    hedges = await ledger.hedges.in_states(None)
    funding = await ledger.funding.totals_by_hedge()
    fills = {hedge.id: await ledger.fills.for_hedge(hedge.id) for hedge in hedges}
    alerts = [
        e for e in await ledger.events.recent(limit=200) if e.severity.value in {"alert", "error"}
    ][:10]
    inputs = StatusInputs(
        hedges=hedges,
        fills=fills,
        funding=funding,
        marks={},
        trading=await ledger.trading_state.get(),
        last_snapshot_at=None,
        alerts=alerts,
        balances=[],
        drifted=await drifted_hedge_ids(ledger),
        adopt_pending=await pending_requests(ledger),
        transfers=await ledger.transfers.for_hedges(
            sorted(h.id for h in hedges if h.state.is_active)
        ),
    )
    return await refresh_marks(ledger, inputs)


async def refresh_marks(ledger: Ledger, inputs: StatusInputs) -> StatusInputs:
    """`inputs` with the latest marks, snapshot time and balances (the fast rows) read again."""
    marks: dict[str, tuple[Decimal | None, Decimal | None]] = {}
    for hedge in inputs.hedges:
        if hedge.state.is_active and hedge.perp_symbol not in marks:
            (obs,) = await ledger.observations.for_symbol(hedge.perp_symbol, limit=1) or (None,)
            if obs is not None:
                marks[hedge.perp_symbol] = (
                    _mid(obs.spot_bid, obs.spot_ask),
                    _mid(obs.perp_bid, obs.perp_ask) or obs.mark_price,
                )
    return replace(
        inputs,
        marks=marks,
        last_snapshot_at=await ledger.observations.latest_time(),
        balances=sorted(
            await ledger.snapshots.latest_balances(), key=lambda b: (b.wallet, b.asset)
        ),
    )


def compose_status(inputs: StatusInputs, *, now: datetime, leverage: int = 1) -> StatusReport:
    """The status report at `now` from what `gather_status` read (no I/O)."""
    lines_open: list[HedgeLine] = []
    lines_closed: list[HedgeLine] = []
    for hedge in inputs.hedges:
        fills = inputs.fills.get(hedge.id, [])
        spot_price = perp_price = None
        if hedge.state.is_active:
            spot_price, perp_price = inputs.marks.get(hedge.perp_symbol, (None, None))
        pnl = hedge_pnl(
            hedge,
            fills,
            inputs.funding.get(hedge.id, Decimal(0)),
            now=now,
            spot_price=spot_price,
            perp_price=perp_price,
            leverage=leverage,
        )
        line = HedgeLine(hedge, pnl)
        if hedge.state.is_active:
            lines_open.append(line)
        elif hedge.state is HedgeState.CLOSED or fills:
            lines_closed.append(line)
    active_ids = {line.hedge.id for line in lines_open}
    return StatusReport(
        now=now,
        trading=inputs.trading,
        last_snapshot_at=inputs.last_snapshot_at,
        open=lines_open,
        closed=lines_closed,
        totals=totals([x.pnl for x in lines_open + lines_closed]),
        alerts=list(inputs.alerts),
        balances=list(inputs.balances),
        drifted=[i for i in inputs.drifted if i in active_ids],
        adopt_pending=list(inputs.adopt_pending),
        transfers=list(inputs.transfers),
    )


def _mid(bid: Decimal | None, ask: Decimal | None) -> Decimal | None:
    if bid is None or ask is None:
        return None
    return (bid + ask) / 2


def _line_json(line: HedgeLine) -> dict[str, Any]:
    h, p = line.hedge, line.pnl
    return {
        "id": h.id,
        "uid": h.uid,
        "pair": h.pair,
        "future_symbol": h.perp_symbol,
        "state": h.state.value,
        "spot_quantity": str(h.spot_quantity),
        "perp_quantity": str(h.perp_quantity),
        "notional": str(h.target_notional),
        "opened_at": h.opened_at.isoformat() if h.opened_at else None,
        "closed_at": h.closed_at.isoformat() if h.closed_at else None,
        "holding_hours": f"{p.holding_hours:.2f}",
        "funding": str(p.funding),
        "fees": str(p.fees),
        "basis_pnl": str(p.basis_pnl),
        "net": str(p.net),
        "apr": None if p.apr is None else f"{p.apr:.6f}",
        "open_reason": h.open_reason,
        "close_reason": h.close_reason,
    }


def _transfer_json(t: Transfer) -> dict[str, Any]:
    return {
        "id": t.id,
        "hedge_id": t.hedge_id,
        "asset": t.asset,
        "amount": str(t.amount),
        "from_wallet": t.from_wallet,
        "to_wallet": t.to_wallet,
        "status": t.status.value,
        "exchange_id": t.exchange_id,
        "reason": t.reason,
        "error": t.error,
        "requested_at": t.requested_at.isoformat(),
        "completed_at": t.completed_at.isoformat() if t.completed_at else None,
    }
