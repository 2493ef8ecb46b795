"""Binance-like trading filters for the instruments of a replayed history.

Current Binance values (they changed over the years; a backtest applies today's rules):
- BTC, ETH: Binance's exchangeInfo as in tests/kit.py; USDⓈ-M min notional 100 (BTC) and
  20 (ETH) per Binance's contract-specification FAQ and public fapi fixtures.
- XRP, SOL, DOGE perpetuals: tick and step from a public dump of fapi exchangeInfo
  precisions; min notional 5 USDT, Binance's default for other USDⓈ-M contracts.
- XRP, SOL, DOGE spot: tick sizes from public exchangeInfo copies, step sizes as Binance
  lists them to our best knowledge (approximate); spot min notional 5 USDT.
Other bases get generic filters scaled to their first usable price.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from bot.domain import Instrument, MarketKind

D = Decimal


@dataclass(frozen=True, slots=True)
class Filters:
    """PRICE_FILTER, LOT_SIZE, MARKET_LOT_SIZE and (MIN_)NOTIONAL of one market."""

    tick_size: Decimal
    step_size: Decimal
    min_qty: Decimal
    min_notional: Decimal
    max_qty: Decimal | None = None
    market_max_qty: Decimal | None = None


BINANCE_FILTERS: dict[str, tuple[Filters, Filters]] = {
    # base: (spot, perpetual)
    "BTC": (
        Filters(D("0.01"), D("0.00001"), D("0.00001"), D("5"), D("9000")),
        Filters(D("0.1"), D("0.001"), D("0.001"), D("100"), D("1000"), D("120")),
    ),
    "ETH": (
        Filters(D("0.01"), D("0.0001"), D("0.0001"), D("5"), D("9000")),
        Filters(D("0.01"), D("0.001"), D("0.001"), D("20"), D("10000"), D("2000")),
    ),
    "XRP": (
        Filters(D("0.0001"), D("1"), D("1"), D("5")),
        Filters(D("0.0001"), D("0.1"), D("0.1"), D("5")),
    ),
    "SOL": (
        Filters(D("0.01"), D("0.001"), D("0.001"), D("5")),
        Filters(D("0.01"), D("0.01"), D("0.01"), D("5")),
    ),
    "DOGE": (
        Filters(D("0.00001"), D("1"), D("1"), D("5")),
        Filters(D("0.00001"), D("1"), D("1"), D("5")),
    ),
}


def generic_filters(price: Decimal) -> Filters:
    """Filters for an unknown base: 5 significant digits of price, at most 0.1 USDT a step."""
    tick = D(1).scaleb(price.adjusted() - 4)
    step = D(1).scaleb((D("0.1") / price).adjusted())
    return Filters(tick, step, step, D("5"))


def build_instruments(
    base: str,
    quote: str,
    reference_price: Decimal,
    *,
    spot_listed_at: datetime,
    perp_listed_at: datetime,
) -> tuple[Instrument, Instrument]:
    """Return the (spot, perpetual) instruments of one base with Binance-like filters."""
    spot_f, perp_f = BINANCE_FILTERS.get(base) or (generic_filters(reference_price),) * 2
    exchange_symbol = f"{base}{quote}"
    spot = Instrument(
        symbol=f"{base}/{quote}",
        exchange_symbol=exchange_symbol,
        kind=MarketKind.SPOT,
        base=base,
        quote=quote,
        tick_size=spot_f.tick_size,
        step_size=spot_f.step_size,
        min_qty=spot_f.min_qty,
        min_notional=spot_f.min_notional,
        max_qty=spot_f.max_qty,
        listed_at=spot_listed_at,
    )
    perp = Instrument(
        symbol=f"{base}/{quote}:{quote}",
        exchange_symbol=exchange_symbol,
        kind=MarketKind.PERPETUAL,
        base=base,
        quote=quote,
        tick_size=perp_f.tick_size,
        step_size=perp_f.step_size,
        min_qty=perp_f.min_qty,
        min_notional=perp_f.min_notional,
        max_qty=perp_f.max_qty,
        market_step_size=perp_f.step_size,
        market_min_qty=perp_f.min_qty,
        market_max_qty=perp_f.market_max_qty,
        settle=quote,
        listed_at=perp_listed_at,
    )
    return spot, perp


def coinm_instrument(
    base: str, expiry: datetime | None, listed_at: datetime, reference_price: Decimal
) -> Instrument:
    """Return a COIN-M contract of `base` as ccxt lists it: the quarterly `BTC/USD:BTC-240329`
    (or, with no expiry, the perpetual `BTC/USD:BTC`), inverse, whole contracts of 100 USD
    (BTC) or 10 USD (others), settled in the coin."""
    _, perp_f = BINANCE_FILTERS.get(base) or (generic_filters(reference_price),) * 2
    suffix = f"-{expiry:%y%m%d}" if expiry is not None else ""
    return Instrument(
        symbol=f"{base}/USD:{base}{suffix}",
        exchange_symbol=f"{base}USD_{f'{expiry:%y%m%d}' if expiry is not None else 'PERP'}",
        kind=MarketKind.DATED_FUTURE if expiry is not None else MarketKind.PERPETUAL,
        base=base,
        quote="USD",
        tick_size=perp_f.tick_size,
        step_size=D(1),
        min_qty=D(1),
        min_notional=D(0),
        max_qty=D(100_000),
        contract_size=D(100 if base == "BTC" else 10),
        settle=base,
        expiry=expiry,
        listed_at=listed_at,
        contract_type=None if expiry is not None else "PERPETUAL",
    )
