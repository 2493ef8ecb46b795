"""What `carrybot scan` adds when the legs are on two venues: venues, fees, USDT/USD rate."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from bot.domain.params import FeeParams
from strategies.scan import ScanRow


@dataclass(frozen=True, slots=True)
class VenueView:
    """The venue of each leg, their taker fees and the USD per USDT rate used for USD pairs."""

    spot_venue: str
    perp_venue: str
    spot_taker: Decimal
    futures_taker: Decimal
    usd_per_usdt: Decimal | None

    def caption(self) -> str:
        rate = f"{self.usd_per_usdt:.5f}" if self.usd_per_usdt is not None else "n/a"
        return (
            f"spot on {self.spot_venue} (taker {self.spot_taker:.2%}), perpetual on "
            f"{self.perp_venue} (taker {self.futures_taker:.2%}); USDT/USD {rate}; "
            "basis in USDT terms"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "spot": self.spot_venue,
            "perp": self.perp_venue,
            "spot_taker": float(self.spot_taker),
            "futures_taker": float(self.futures_taker),
            "usd_per_usdt": float(self.usd_per_usdt) if self.usd_per_usdt is not None else None,
        }


def venue_view(source: object, fees: FeeParams) -> VenueView | None:
    """Return the view of a cross-venue source (a VenueRouter), None for one venue."""
    from bot.exchange.venues import VenueRouter

    if not isinstance(source, VenueRouter):
        return None
    return VenueView(
        source.spot_venue.venue,
        source.futures_venue.venue,
        fees.effective().spot_taker,
        fees.effective().futures_taker,
        source.usd_per_usdt,
    )


def row_venue_json(row: ScanRow, view: VenueView) -> dict[str, Any]:
    """Per-row fields of a cross-venue scan: where each leg trades and both legs' fees."""
    sig = row.signal
    return {
        "spot_venue": view.spot_venue,
        "perp_venue": view.perp_venue,
        "fees_bps": float(sig.fees * 10_000) if sig is not None else None,
    }
