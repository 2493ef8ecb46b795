"""The Binance account's fee rates, through ccxt: spot, USDⓈ-M, VIP tier and BNB burn.

Spot: `fetch_trading_fees` (GET /sapi/v1/asset/tradeFee); USDⓈ-M: `fetch_trading_fee` of
the perpetuals (GET /fapi/v1/commissionRate); the VIP tier from GET /fapi/v1/accountConfig;
whether BNB pays the fees from GET /sapi/v1/bnbBurn and GET /fapi/v1/feeBurn. Rates are the
highest over the pairs asked about (a promotion on one symbol does not lower the others).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from typing import Any

from bot.domain import Pair
from bot.domain.fee_schedule import AccountFees
from bot.domain.numbers import to_decimal
from bot.errors import BadResponseError

Call = Callable[..., Awaitable[Any]]
MAX_FUTURES_ASKED = 3
"""commissionRate weighs 20 and is per symbol: the rates are the account's, so a few do."""


async def read_account_fees(client: Any, call: Call, pairs: Sequence[Pair]) -> AccountFees:
    """Return the account's fees for `pairs` (at least one) before any BNB discount."""
    if not pairs:
        raise ValueError("read_account_fees needs at least one pair")
    spot_rows = await call(
        "spot trading fees",
        lambda: client.fetch_trading_fees({"type": "spot"}),
        signed_read=True,
    )
    spot = [_rates(spot_rows.get(p.spot.symbol), p.spot.symbol) for p in pairs]
    futures = []
    for pair in pairs[:MAX_FUTURES_ASKED]:
        row = await call(
            "futures commission rate",
            lambda symbol=pair.perp.symbol: client.fetch_trading_fee(symbol),
            signed_read=True,
        )
        futures.append(_rates(row, pair.perp.symbol))
    config = await call(
        "futures account config", lambda: client.fapiPrivateGetAccountConfig({}), signed_read=True
    )
    spot_burn = await call("BNB burn", lambda: client.sapiGetBnbBurn({}), signed_read=True)
    futures_burn = await call(
        "futures fee burn", lambda: client.fapiPrivateGetFeeBurn({}), signed_read=True
    )
    return AccountFees(
        spot_maker=max(m for m, _ in spot),
        spot_taker=max(t for _, t in spot),
        futures_maker=max(m for m, _ in futures),
        futures_taker=max(t for _, t in futures),
        vip_tier=_tier(config),
        spot_bnb=_flag(spot_burn, "spotBNBBurn"),
        futures_bnb=_flag(futures_burn, "feeBurn"),
    )


def _rates(row: object, symbol: str) -> tuple[Decimal, Decimal]:
    """Return (maker, taker) of a ccxt trading-fee structure, from its raw Binance fields."""
    if not isinstance(row, dict):
        raise BadResponseError(f"trading fees: no row for {symbol}")
    raw = row.get("info")
    info: dict[str, Any] = raw if isinstance(raw, dict) else row
    maker = info.get("makerCommission", info.get("makerCommissionRate"))
    taker = info.get("takerCommission", info.get("takerCommissionRate"))
    try:
        rates = (to_decimal(maker, field="maker"), to_decimal(taker, field="taker"))
    except ValueError as exc:
        raise BadResponseError(f"trading fees of {symbol}: {exc}") from exc
    if not all(Decimal(0) <= r < Decimal("0.01") for r in rates):
        raise BadResponseError(f"trading fees of {symbol}: rates {rates} outside [0, 1%)")
    return rates


def _tier(config: object) -> int | None:
    tier = config.get("feeTier") if isinstance(config, dict) else None
    return int(tier) if isinstance(tier, int | str) and str(tier).isdigit() else None


def _flag(raw: object, key: str) -> bool:
    value = raw.get(key) if isinstance(raw, dict) else None
    if isinstance(value, str):
        return value.lower() == "true"
    return bool(value)
