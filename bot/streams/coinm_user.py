"""COIN-M user data: dapi's `ACCOUNT_UPDATE` (wallets in the coin, positions in contracts).

dapi sends `ACCOUNT_UPDATE` on every balance or position change (`a.m` the reason:
ORDER, FUNDING_FEE, ASSET_TRANSFER, ...), with every COIN-M position in `a.P`. Its order
events (`ORDER_TRADE_UPDATE`, quantities in contracts, fees in the coin) have the USDⓈ-M
shape and are read by `bot.streams.user.parse_order_event`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from bot.streams.wire import BadFrame


@dataclass(frozen=True, slots=True)
class CoinmPositionUpdate:
    """One position row of an `ACCOUNT_UPDATE`: signed contracts, entry price, side."""

    exchange_symbol: str
    position_side: str
    contracts: Decimal
    entry_price: Decimal
    unrealized_pnl: Decimal


@dataclass(frozen=True, slots=True)
class CoinmAccountUpdate:
    """A parsed COIN-M `ACCOUNT_UPDATE`."""

    reason: str
    event_ms: int
    wallets: dict[str, Decimal]
    positions: tuple[CoinmPositionUpdate, ...]


@dataclass
class CoinmAccountView:
    """The COIN-M wallets (in each coin) and positions as the stream last reported them."""

    wallets: dict[str, Decimal] = field(default_factory=dict)
    positions: dict[tuple[str, str], CoinmPositionUpdate] = field(default_factory=dict)
    updates: int = 0
    last_event_ms: int | None = None

    def apply(self, update: CoinmAccountUpdate) -> None:
        """Lay an update over the view (a late event never goes back in time)."""
        if self.last_event_ms is not None and update.event_ms < self.last_event_ms:
            return
        self.wallets.update(update.wallets)
        for row in update.positions:
            self.positions[(row.exchange_symbol, row.position_side)] = row
        self.updates += 1
        self.last_event_ms = update.event_ms


def parse_coinm_account_update(message: Any) -> CoinmAccountUpdate:
    """Parse a dapi `ACCOUNT_UPDATE`; raise BadFrame naming the field when it is malformed."""
    data = message.get("a") if isinstance(message, dict) else None
    if not isinstance(data, dict):
        raise BadFrame("ACCOUNT_UPDATE: field `a` is not an object")
    field_name = "E"
    try:
        event_ms = int(message["E"])
        wallets: dict[str, Decimal] = {}
        for row in data.get("B") or []:
            field_name = "a.B[].wb"
            wallets[str(row["a"])] = _finite(row["wb"])
        positions = []
        for row in data.get("P") or []:
            field_name = "a.P[]"
            positions.append(
                CoinmPositionUpdate(
                    exchange_symbol=str(row["s"]),
                    position_side=str(row.get("ps") or "BOTH"),
                    contracts=_finite(row["pa"]),
                    entry_price=_finite(row["ep"]),
                    unrealized_pnl=_finite(row.get("up") or "0"),
                )
            )
    except (KeyError, ValueError, InvalidOperation, TypeError) as exc:
        raise BadFrame(f"ACCOUNT_UPDATE: bad field `{field_name}` ({exc!r})") from None
    return CoinmAccountUpdate(str(data.get("m") or ""), event_ms, wallets, tuple(positions))


def _finite(raw: Any) -> Decimal:
    value = Decimal(str(raw))
    if not value.is_finite():
        raise ValueError(f"{raw!r} is not a finite number")
    return value
