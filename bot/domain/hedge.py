"""The two-leg hedge: its persisted state machine and deterministic client order ids."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum


class HedgeState(StrEnum):
    OPENING = "opening"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"
    UNWINDING = "unwinding"
    FAILED = "failed"

    @property
    def is_active(self) -> bool:
        """Whether the hedge may hold exchange exposure."""
        return self not in {HedgeState.CLOSED, HedgeState.FAILED}


ALLOWED_TRANSITIONS: Mapping[HedgeState, frozenset[HedgeState]] = {
    HedgeState.OPENING: frozenset({HedgeState.OPEN, HedgeState.UNWINDING, HedgeState.FAILED}),
    HedgeState.OPEN: frozenset({HedgeState.CLOSING, HedgeState.OPEN}),
    HedgeState.CLOSING: frozenset({HedgeState.CLOSED, HedgeState.OPEN, HedgeState.CLOSING}),
    HedgeState.UNWINDING: frozenset({HedgeState.FAILED, HedgeState.UNWINDING}),
    HedgeState.CLOSED: frozenset(),
    HedgeState.FAILED: frozenset(),
}


class InvalidTransition(ValueError):
    """A hedge was asked to move along an edge its state machine does not have."""


def check_transition(current: HedgeState, target: HedgeState) -> None:
    """Raise InvalidTransition unless `current -> target` is an edge of the state machine."""
    if target not in ALLOWED_TRANSITIONS[current]:
        raise InvalidTransition(f"hedge cannot go from {current} to {target}")


class Leg(StrEnum):
    SPOT = "spot"
    PERP = "perp"


class OrderPurpose(StrEnum):
    OPEN = "open"
    CLOSE = "close"
    UNWIND = "unwind"
    TOP_UP = "top_up"
    TRIM = "trim"
    RESIZE = "resize"
    ROLL_CLOSE = "roll_close"  # a roll buys back the short on the contract it leaves
    ROLL_OPEN = "roll_open"  # and sells the short on the contract it moves to


_PURPOSE_CODE = {
    OrderPurpose.OPEN: "o",
    OrderPurpose.CLOSE: "c",
    OrderPurpose.UNWIND: "u",
    OrderPurpose.TOP_UP: "t",
    OrderPurpose.TRIM: "m",
    OrderPurpose.RESIZE: "r",
    OrderPurpose.ROLL_CLOSE: "x",
    OrderPurpose.ROLL_OPEN: "y",
}
_LEG_CODE = {Leg.SPOT: "s", Leg.PERP: "p"}
CLIENT_ID_PREFIX = "cb-"
_BINANCE_ID = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")


def client_order_id(hedge_uid: str, leg: Leg, purpose: OrderPurpose, attempt: int = 1) -> str:
    """Build the deterministic client order id of one order of one hedge.

    Format `cb-<hedge uid>-<leg><purpose><attempt>`, e.g. `cb-01hx3k9q2m7a-so1`; it satisfies
    Binance's `^[\\.A-Z\\:/a-z0-9_-]{1,36}$`.
    """
    cid = f"{CLIENT_ID_PREFIX}{hedge_uid}-{_LEG_CODE[leg]}{_PURPOSE_CODE[purpose]}{attempt}"
    if not _BINANCE_ID.match(cid):
        raise ValueError(f"client order id {cid!r} does not fit Binance's pattern")
    return cid


def is_own_client_order_id(cid: str | None) -> bool:
    """Tell whether a client order id was made by carrybot."""
    return bool(cid) and cid.startswith(CLIENT_ID_PREFIX)  # type: ignore[union-attr]


ROLLED_FROM = "rolled_from"  # hedge metric: contracts a roll moved the short away from
ROLL_TO = "roll_to"  # hedge metric: the contract an unfinished roll moves the short to
ROLL_HELD = "roll_quantity"  # hedge metric: the short held on `roll_to` meanwhile
BASIS_SPOT = "basis_spot_price"  # hedge metric: the spot price a rolled short's basis is
# measured from (the spot bid when the roll sold it); the entry spot price before any roll


@dataclass(frozen=True, slots=True)
class Hedge:
    """One long-spot / short-perp position, as recorded in the ledger."""

    id: int
    uid: str
    pair: str
    spot_symbol: str
    perp_symbol: str
    state: HedgeState
    target_quantity: Decimal
    spot_quantity: Decimal
    perp_quantity: Decimal
    target_notional: Decimal
    created_at: datetime
    updated_at: datetime
    opened_at: datetime | None = None
    closed_at: datetime | None = None
    entry_spot_price: Decimal | None = None
    entry_perp_price: Decimal | None = None
    exit_spot_price: Decimal | None = None
    exit_perp_price: Decimal | None = None
    open_reason: str | None = None
    close_reason: str | None = None
    metrics: Mapping[str, str] = field(default_factory=dict)
    run_id: int | None = None

    @property
    def short_symbols(self) -> tuple[str, ...]:
        """Every contract the short has traded: the one held, those a roll left (metric
        `rolled_from`, comma-separated) and one an unfinished roll moves to (`roll_to`)."""
        rolled = [s for s in self.metrics.get(ROLLED_FROM, "").split(",") if s]
        pending = [self.metrics[ROLL_TO]] if ROLL_TO in self.metrics else []
        return (self.perp_symbol, *rolled, *pending)

    @property
    def is_coinm(self) -> bool:
        """A COIN-M hedge: its short is in inverse contracts (of `contract_size` USD)."""
        return "contract_size" in self.metrics

    @property
    def sized_notional(self) -> Decimal:
        """Return the notional the hedge was opened for (its open intent's `notional`), else
        its target notional: what the sizing limits count. A constant-notional resize moves
        the short within the strategy's band of it without changing what the limits see."""
        sized = self.metrics.get("notional")
        if not sized:
            return self.target_notional
        try:
            return Decimal(sized)
        except ArithmeticError:
            return self.target_notional

    @property
    def imbalance(self) -> Decimal:
        """Spot minus short, in base units (positive: more spot than short).

        A COIN-M short of c contracts of s USD entered at E is c × s / E of the coin.
        """
        if self.is_coinm:
            entry = self.entry_perp_price
            size = Decimal(self.metrics["contract_size"])
            short = self.perp_quantity * size / entry if entry else Decimal(0)
            return self.spot_quantity - short
        return self.spot_quantity - self.perp_quantity
