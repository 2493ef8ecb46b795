"""Fixtures around the fake Bitstamp: its markets, seeded books and funded account.

- `bitstamp_instruments()`: BTC/USD, BTC/USDT, ETH/USD and USDT/USD with Bitstamp's
  decimals (BTC in 1e-8, USD prices in whole dollars) and its 10-unit minimum order value;
- `seed_bitstamp(fake)`: deep books around the Binance fixture prices in USD at
  `USD_PER_USDT`, 10 000 USD and 10 000 USDT in the account;
- `bitstamp_for(fake)`: a keyed BitstampSpot on it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from bot.clock import Clock
from bot.config import VenuesConfig
from bot.domain import Instrument, MarketKind, OrderBook
from bot.exchange.bitstamp_live import BitstampSpot
from tests.fakes.bitstamp_server import DEFAULT_API_KEY, DEFAULT_API_SECRET, FakeBitstamp

D = Decimal
USD_PER_USDT = D("0.9990")
WALLET = D("10000")
# USD prices: the Binance fixture's USDT prices (50 000, 3 000) times USD_PER_USDT.
USD_PRICES = {"BTC/USD": D("49950"), "BTC/USDT": D("50000"), "ETH/USD": D("2997.0")}


def _spot(base: str, quote: str, step: str, tick: str) -> Instrument:
    return Instrument(
        symbol=f"{base}/{quote}", exchange_symbol=f"{base}{quote}".lower(),
        kind=MarketKind.SPOT, base=base, quote=quote, tick_size=D(tick), step_size=D(step),
        min_qty=D(step), min_notional=D("10"),
    )  # fmt: skip


def bitstamp_instruments() -> list[Instrument]:
    """Bitstamp's BTC/USD, BTC/USDT, ETH/USD and USDT/USD markets."""
    return [
        _spot("BTC", "USD", "0.00000001", "1"),
        _spot("BTC", "USDT", "0.00000001", "1"),
        _spot("ETH", "USD", "0.00000001", "0.1"),
        _spot("USDT", "USD", "0.00001", "0.00001"),
    ]


def deep_book(inst: Instrument, mid: Decimal, at: Any, levels: int = 10) -> OrderBook:
    """`levels` levels a side, one tick apart, around `mid`, 2 BTC (20 ETH) a level."""
    tick = inst.tick_size
    qty = D("2") if inst.base == "BTC" else D("20") if inst.base == "ETH" else D("100000")
    bids = tuple((mid - tick * i, qty) for i in range(levels))
    asks = tuple((mid + tick * (i + 1), qty) for i in range(levels))
    return OrderBook(inst.symbol, bids, asks, at)


def seed_bitstamp(fake: FakeBitstamp, *, usd_per_usdt: Decimal = USD_PER_USDT) -> None:
    """Books for every market (USDT/USD one tick around `usd_per_usdt`), funded account."""
    at = fake.clock.now()
    for inst in fake.instruments.values():
        if inst.symbol == "USDT/USD":
            fake.set_quote("USDT/USD", usd_per_usdt - inst.tick_size, usd_per_usdt + inst.tick_size)
            continue
        fake.set_book(deep_book(inst, USD_PRICES[inst.symbol], at))
        fake.volumes[inst.symbol] = D("900000000")
    fake.account.deposit("spot", "USD", WALLET)
    fake.account.deposit("spot", "USDT", WALLET)


def venues_for(fake: FakeBitstamp, **overrides: Any) -> VenuesConfig:
    return VenuesConfig.model_validate(
        {"spot": "bitstamp", "bitstamp_api_url": fake.url, **overrides}
    )


def bitstamp_for(
    fake: FakeBitstamp, *, keys: bool = True, clock: Clock | None = None, **overrides: Any
) -> BitstampSpot:
    """A BitstampSpot on the fake (its keys unless `keys=False`)."""
    return BitstampSpot(
        venues_for(fake, **overrides),
        api_key=DEFAULT_API_KEY if keys else None,
        api_secret=DEFAULT_API_SECRET if keys else None,
        clock=clock or fake.clock,
    )
