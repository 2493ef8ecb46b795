"""Test kit: domain objects in one line (Binance-like filters and prices).

BTC uses Binance's real filters: spot step 0.00001, tick 0.01, min notional 5; perp step
0.001, tick 0.1, min notional 100. Other bases get generic filters.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from bot.domain import (
    FundingInfo,
    Instrument,
    MarketKind,
    MarketSnapshot,
    OrderBook,
    Pair,
    Quote,
    SettledFunding,
)

D = Decimal
T0 = datetime(2024, 3, 1, 0, 0, tzinfo=UTC)

_FILTERS: dict[str, dict[str, tuple[Decimal, Decimal, Decimal, Decimal]]] = {
    # base: {kind: (tick, step, min_qty, min_notional)}
    "BTC": {
        "spot": (D("0.01"), D("0.00001"), D("0.00001"), D("5")),
        "perp": (D("0.1"), D("0.001"), D("0.001"), D("100")),
    },
    "ETH": {
        "spot": (D("0.01"), D("0.0001"), D("0.0001"), D("5")),
        "perp": (D("0.01"), D("0.001"), D("0.001"), D("20")),
    },
}
_GENERIC = {
    "spot": (D("0.0001"), D("0.1"), D("0.1"), D("5")),
    "perp": (D("0.0001"), D("1"), D("1"), D("5")),
}


def spot(base: str = "BTC", quote: str = "USDT") -> Instrument:
    tick, step, min_qty, min_notional = _FILTERS.get(base, _GENERIC)["spot"]
    return Instrument(
        symbol=f"{base}/{quote}",
        exchange_symbol=f"{base}{quote}",
        kind=MarketKind.SPOT,
        base=base,
        quote=quote,
        tick_size=tick,
        step_size=step,
        min_qty=min_qty,
        min_notional=min_notional,
        max_qty=D("9000"),
    )


def perp(base: str = "BTC", quote: str = "USDT", listed_at: datetime | None = None) -> Instrument:
    tick, step, min_qty, min_notional = _FILTERS.get(base, _GENERIC)["perp"]
    return Instrument(
        symbol=f"{base}/{quote}:{quote}",
        exchange_symbol=f"{base}{quote}",
        kind=MarketKind.PERPETUAL,
        base=base,
        quote=quote,
        tick_size=tick,
        step_size=step,
        min_qty=min_qty,
        min_notional=min_notional,
        max_qty=D("1000"),
        settle=quote,
        listed_at=listed_at or datetime(2019, 9, 8, tzinfo=UTC),
        contract_type="PERPETUAL",
    )


def dated(
    base: str = "BTC",
    expiry: datetime | None = None,
    quote: str = "USDT",
    contract_type: str = "CURRENT_QUARTER",
) -> Instrument:
    expiry = expiry or T0 + timedelta(days=30)
    tick, step, min_qty, min_notional = _FILTERS.get(base, _GENERIC)["perp"]
    return Instrument(
        symbol=f"{base}/{quote}:{quote}-{expiry:%y%m%d}",
        exchange_symbol=f"{base}{quote}_{expiry:%y%m%d}",
        kind=MarketKind.DATED_FUTURE,
        base=base,
        quote=quote,
        tick_size=tick,
        step_size=step,
        min_qty=min_qty,
        min_notional=min_notional,
        settle=quote,
        expiry=expiry,
        contract_type=contract_type,
    )


def coinm(
    base: str = "BTC", expiry: datetime | None = None, contract_type: str = "CURRENT_QUARTER"
) -> Instrument:
    """A COIN-M contract: BTC 100 USD a contract (others 10), whole contracts, coin-settled."""
    suffix = f"-{expiry:%y%m%d}" if expiry else ""
    return Instrument(
        symbol=f"{base}/USD:{base}{suffix}",
        exchange_symbol=f"{base}USD_{f'{expiry:%y%m%d}' if expiry else 'PERP'}",
        kind=MarketKind.DATED_FUTURE if expiry else MarketKind.PERPETUAL,
        base=base,
        quote="USD",
        tick_size=D("0.1"),
        step_size=D("1"),
        min_qty=D("1"),
        min_notional=D(0),
        max_qty=D("1000"),
        contract_size=D(100 if base == "BTC" else 10),
        settle=base,
        expiry=expiry,
        contract_type=contract_type if expiry else "PERPETUAL",
    )


def pair(base: str = "BTC") -> Pair:
    return Pair(spot=spot(base), perp=perp(base))


def quote(
    symbol: str,
    bid: Decimal | str,
    ask: Decimal | str,
    qty: Decimal | str = "10",
    at: datetime = T0,
) -> Quote:
    return Quote(symbol, D(bid), D(ask), D(qty), D(qty), at)


def book(
    symbol: str, bids: list[tuple[str, str]], asks: list[tuple[str, str]], at: datetime = T0
) -> OrderBook:
    return OrderBook(
        symbol, tuple((D(p), D(q)) for p, q in bids), tuple((D(p), D(q)) for p, q in asks), at
    )


def funding(
    symbol: str = "BTC/USDT:USDT",
    rate: Decimal | str = "0.0001",
    mark: Decimal | str = "50000",
    index: Decimal | str | None = None,
    interval_hours: int = 8,
    at: datetime = T0,
    next_funding_time: datetime | None = None,
) -> FundingInfo:
    return FundingInfo(
        symbol=symbol,
        funding_rate=D(rate),
        next_funding_time=next_funding_time or at + timedelta(hours=interval_hours),
        interval_hours=interval_hours,
        mark_price=D(mark),
        index_price=D(index or mark),
        interest_rate=D("0.0001"),
        timestamp=at,
    )


def settled(
    symbol: str,
    rates: list[str],
    end: datetime = T0,
    interval_hours: int = 8,
    mark: str | None = None,
) -> list[SettledFunding]:
    """Settled history ending at `end`, oldest first, one row per interval."""
    n = len(rates)
    return [
        SettledFunding(
            symbol,
            end - timedelta(hours=interval_hours * (n - 1 - i)),
            D(r),
            D(mark) if mark else None,
        )
        for i, r in enumerate(rates)
    ]


def snapshot(
    bases: list[str] | None = None, rate: str = "0.0003", price: str = "50000", at: datetime = T0
) -> MarketSnapshot:
    """A snapshot where every base trades at `price` with a 1-tick spread and `rate` funding."""
    bases = bases or ["BTC"]
    pairs = [pair(b) for b in bases]
    p = D(price)
    return MarketSnapshot(
        taken_at=at,
        pairs=pairs,
        funding={pr.perp.symbol: funding(pr.perp.symbol, rate, p, at=at) for pr in pairs},
        spot_quotes={
            pr.spot.symbol: quote(pr.spot.symbol, p, p + pr.spot.tick_size, "100", at)
            for pr in pairs
        },
        perp_quotes={
            pr.perp.symbol: quote(pr.perp.symbol, p, p + pr.perp.tick_size, "100", at)
            for pr in pairs
        },
        volumes_24h={s: D("1000000000") for pr in pairs for s in (pr.spot.symbol, pr.perp.symbol)},
    )
