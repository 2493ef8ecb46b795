"""Capital on two venues: can each venue's balance carry one configured hedge?

With the spot leg on another exchange nothing moves money between the two (withdrawals
stay off), so a venue can run dry on its own: the spot venue's quote balance pays the spot
buys, Binance's futures balance the short's margin. `capital_shortfalls` names what is
short for one hedge of `sizing.notional_per_hedge`; `CapitalWatch` turns a change of that
answer into one alert event (and one "recovered" event), not an alert per snapshot.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from bot.clock import Clock
from bot.config import Config
from bot.domain import Balance, Event, EventSink, FuturesAccount, Severity

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Shortfall:
    """One venue that cannot fund a hedge: what it holds and what one hedge needs."""

    venue: str
    asset: str
    available: Decimal
    needed: Decimal

    def text(self) -> str:
        return (
            f"{self.venue}: {self.available:.2f} {self.asset} available, one hedge of the "
            f"configured size needs {self.needed:.2f}"
        )


def capital_shortfalls(
    config: Config,
    *,
    spot_venue: str,
    futures_venue: str,
    spot: Mapping[str, Balance],
    futures: FuturesAccount,
    spot_quotes: Iterable[str],
    usd_per_usdt: Decimal | None = None,
) -> list[Shortfall]:
    """Return the venues whose balance cannot carry one hedge of `notional_per_hedge`.

    Spot: the free balance of a quote asset the traded pairs use (USD counted at
    `usd_per_usdt`) less `balance_buffer`, against the notional plus the taker fee; the
    best of those assets counts. Futures: the available balance against the short's
    initial margin at the configured leverage plus `margin_buffer`.
    """
    notional = config.sizing.notional_per_hedge
    risk = config.risk
    out: list[Shortfall] = []
    spot_need = notional * (1 + config.fees.effective().spot_taker)
    best: tuple[Decimal, str, Decimal] | None = None  # (free in USDT, asset, USD/unit)
    for asset in sorted(set(spot_quotes)):
        free = spot.get(asset, Balance(asset, ZERO, ZERO)).free * (1 - risk.balance_buffer)
        rate = usd_per_usdt if asset == "USD" and usd_per_usdt else Decimal(1)
        if best is None or free / rate > best[0]:
            best = (free / rate, asset, rate)
    if best is not None and best[0] < spot_need:
        in_usdt, asset, rate = best
        out.append(Shortfall(spot_venue, asset, in_usdt * rate, spot_need * rate))
    margin_need = notional / config.exchange.leverage * (1 + risk.margin_buffer)
    if futures.available_balance < margin_need:
        out.append(Shortfall(futures_venue, "USDT", futures.available_balance, margin_need))
    return out


class CapitalWatch:
    """Emit `capital.insufficient` when a venue stops carrying a hedge, once per change."""

    def __init__(self, events: EventSink, clock: Clock) -> None:
        self._events = events
        self._clock = clock
        self._short: frozenset[str] = frozenset()

    @property
    def short_venues(self) -> frozenset[str]:
        return self._short

    async def observe(self, shortfalls: list[Shortfall]) -> None:
        venues = frozenset(s.venue for s in shortfalls)
        for s in shortfalls:
            if s.venue not in self._short:
                await self._events.emit(
                    Event(
                        "capital.insufficient",
                        f"{s.text()}; no transfer between exchanges is made: fund {s.venue} "
                        "or lower sizing.notional_per_hedge",
                        self._clock.now(),
                        Severity.ALERT,
                        {"venue": s.venue, "asset": s.asset, "available": str(s.available),
                         "needed": str(s.needed)},
                    )
                )  # fmt: skip
        for venue in sorted(self._short - venues):
            await self._events.emit(
                Event(
                    "capital.sufficient",
                    f"{venue}: balance carries a hedge of the configured size again",
                    self._clock.now(),
                    Severity.INFO,
                    {"venue": venue},
                )
            )
        self._short = venues
