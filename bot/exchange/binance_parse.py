"""Binance JSON (ccxt's `info`) → domain objects, exactly: every number as Decimal from text.

Each parser raises ValueError naming the field when a row is unusable (missing field, NaN,
non-positive price); the adapter drops such rows from bulk responses and logs them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from bot.clock import utc_from_ms
from bot.domain import (
    Balance,
    Fill,
    FundingInfo,
    FundingPayment,
    FuturesAccount,
    Instrument,
    MarginMode,
    MarketKind,
    Order,
    OrderBook,
    OrderStatus,
    OrderType,
    Position,
    PositionSide,
    Quote,
    SettledFunding,
    Side,
)
from bot.domain.numbers import ZERO, to_decimal

Row = Mapping[str, Any]

_STATUS = {
    "NEW": OrderStatus.NEW,
    "PARTIALLY_FILLED": OrderStatus.PARTIALLY_FILLED,
    "FILLED": OrderStatus.FILLED,
    "CANCELED": OrderStatus.CANCELED,
    "PENDING_CANCEL": OrderStatus.NEW,
    "REJECTED": OrderStatus.REJECTED,
    "EXPIRED": OrderStatus.EXPIRED,
    "EXPIRED_IN_MATCH": OrderStatus.EXPIRED,
}


def dec(row: Row, key: str) -> Decimal:
    """Return a finite Decimal field or raise ValueError naming it."""
    return to_decimal(row.get(key), field=key)


def positive(row: Row, key: str) -> Decimal:
    value = dec(row, key)
    if value <= 0:
        raise ValueError(f"{key}: expected a positive number, got {row.get(key)!r}")
    return value


def optional_positive(row: Row, key: str) -> Decimal | None:
    """Return a positive Decimal, or None when the field is absent, empty or zero."""
    raw = row.get(key)
    if raw is None or raw == "":
        return None
    value = to_decimal(raw, field=key)
    return value if value > 0 else None


def optional_decimal(row: Row, key: str) -> Decimal | None:
    """Return a Decimal field, or None when it is absent or empty."""
    raw = row.get(key)
    if raw is None or raw == "":
        return None
    return to_decimal(raw, field=key)


def millis(row: Row, key: str) -> datetime:
    raw = row.get(key)
    if isinstance(raw, bool) or raw is None:
        raise ValueError(f"{key}: expected epoch milliseconds, got {raw!r}")
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise ValueError(f"{key}: expected epoch milliseconds, got {raw!r}") from None
    if value <= 0:
        raise ValueError(f"{key}: expected epoch milliseconds, got {raw!r}")
    return utc_from_ms(value)


def _filters(info: Row) -> dict[str, Row]:
    return {str(f.get("filterType")): f for f in info.get("filters") or [] if isinstance(f, dict)}


def instrument(market: Row) -> Instrument | None:
    """Return the Instrument of one ccxt market, else None.

    Spot, USDⓈ-M (linear) and COIN-M (inverse: quantities in contracts of `contractSize`
    USD, margined and settled in the base coin) perpetuals and dated futures.
    """
    info: Row = market.get("info") or {}
    derivative = market.get("linear") or market.get("inverse")
    if market.get("spot"):
        kind = MarketKind.SPOT
    elif derivative and market.get("swap"):
        kind = MarketKind.PERPETUAL
    elif derivative and market.get("future"):
        kind = MarketKind.DATED_FUTURE
    else:
        return None
    filters = _filters(info)
    price, lot = filters.get("PRICE_FILTER", {}), filters.get("LOT_SIZE", {})
    market_lot = filters.get("MARKET_LOT_SIZE", {})
    notional = filters.get("NOTIONAL") or filters.get("MIN_NOTIONAL") or {}
    min_notional = notional.get("minNotional", notional.get("notional", "0"))
    expiry = market.get("expiry")
    onboard = info.get("onboardDate")
    return Instrument(
        symbol=str(market["symbol"]),
        exchange_symbol=str(info.get("symbol", market.get("id"))),
        kind=kind,
        base=str(market["base"]),
        quote=str(market["quote"]),
        tick_size=positive(price, "tickSize"),
        step_size=positive(lot, "stepSize"),
        min_qty=dec(lot, "minQty"),
        min_notional=to_decimal(min_notional, field="minNotional"),
        max_qty=optional_positive(lot, "maxQty"),
        market_step_size=optional_positive(market_lot, "stepSize"),
        market_min_qty=optional_positive(market_lot, "minQty"),
        market_max_qty=optional_positive(market_lot, "maxQty"),
        contract_size=(
            to_decimal(
                str(info.get("contractSize", market.get("contractSize"))), field="contractSize"
            )
            if market.get("inverse")
            else Decimal(1)
        ),
        settle=str(market["settle"]) if market.get("settle") else None,
        expiry=utc_from_ms(int(expiry)) if kind is MarketKind.DATED_FUTURE and expiry else None,
        listed_at=utc_from_ms(int(onboard)) if onboard else None,
        contract_type=str(info["contractType"]) if info.get("contractType") else None,
        **listing_status(info, kind),
    )


PERPETUAL_NO_DELIVERY = datetime(2100, 1, 1, tzinfo=UTC)
"""Binance gives perpetuals a delivery date in 2100; an earlier one announces a delisting."""


def listing_status(info: Row, kind: MarketKind) -> dict[str, Any]:
    """`active`, `status` and `delist_at` of one exchangeInfo symbol row (spot or futures)."""
    status = info.get("status", info.get("contractStatus"))
    delist_at = None
    delivery = info.get("deliveryDate")
    if kind is MarketKind.PERPETUAL and delivery not in (None, "", 0, "0"):
        at = utc_from_ms(int(delivery))
        delist_at = at if at < PERPETUAL_NO_DELIVERY else None
    return {
        "active": status == "TRADING",
        "status": str(status) if status is not None else None,
        "delist_at": delist_at,
    }


def as_of(row: Row, key: str, received: datetime, offset_ms: float) -> datetime:
    """Return the older of the row's exchange time (moved to the local clock by `offset_ms`,
    local minus exchange, as measured from /time) and `received`, the local receipt time.

    A feed the exchange stamped long ago is as old as its stamp, however fresh its arrival.
    """
    if key not in row:
        return received
    return min(millis(row, key) + timedelta(milliseconds=offset_ms), received)


def quote(row: Row, symbol: str, now: datetime, offset_ms: float = 0) -> Quote:
    """Return a Quote from one bookTicker row (futures rows carry `time`, spot rows do not).

    Its timestamp is the older of the exchange's (clock-corrected) and `now`, the receipt.
    """
    bid, ask = positive(row, "bidPrice"), positive(row, "askPrice")
    if bid > ask:
        raise ValueError(f"crossed quote: bid {bid} > ask {ask}")
    return Quote(
        symbol=symbol,
        bid=bid,
        ask=ask,
        bid_qty=dec(row, "bidQty"),
        ask_qty=dec(row, "askQty"),
        timestamp=as_of(row, "time", now, offset_ms),
    )


def funding(
    row: Row,
    symbol: str,
    interval_hours: int,
    cap: Decimal | None = None,
    floor: Decimal | None = None,
    *,
    received: datetime | None = None,
    offset_ms: float = 0,
) -> FundingInfo:
    """Return FundingInfo from one premiumIndex row (+ the symbol's fundingInfo values).

    With `received`, its timestamp is the older of the exchange's (clock-corrected) and that.
    """
    stamp = millis(row, "time")  # required, whatever `received` says
    return FundingInfo(
        symbol=symbol,
        funding_rate=dec(row, "lastFundingRate"),
        next_funding_time=millis(row, "nextFundingTime"),
        interval_hours=interval_hours,
        mark_price=positive(row, "markPrice"),
        index_price=positive(row, "indexPrice"),
        interest_rate=dec(row, "interestRate"),
        timestamp=(as_of(row, "time", received, offset_ms) if received is not None else stamp),
        funding_cap=cap,
        funding_floor=floor,
    )


def settled(row: Row, symbol: str) -> SettledFunding:
    """Return one row of /fapi/v1/fundingRate."""
    return SettledFunding(
        symbol=symbol,
        funding_time=millis(row, "fundingTime"),
        rate=dec(row, "fundingRate"),
        mark_price=optional_positive(row, "markPrice"),
    )


def book(raw: Row, symbol: str, now: datetime, depth: int) -> OrderBook:
    """Return an OrderBook from /api/v3/depth or /fapi/v1/depth."""

    def levels(key: str) -> tuple[tuple[Decimal, Decimal], ...]:
        rows = raw.get(key)
        if not isinstance(rows, list):
            raise ValueError(f"{key}: expected a list of levels")
        return tuple(
            (to_decimal(p, field=f"{key}.price"), to_decimal(q, field=f"{key}.qty"))
            for p, q, *_ in rows[:depth]
        )

    stamp = millis(raw, "T") if "T" in raw else now
    return OrderBook(symbol, levels("bids"), levels("asks"), stamp)


def order(info: Row, inst: Instrument) -> Order:
    """Return an Order from a spot or USDⓈ-M order response (POST, GET or DELETE)."""
    filled = dec(info, "executedQty")
    if inst.is_derivative:
        average = optional_positive(info, "avgPrice")
    else:
        quote_qty = to_decimal(info.get("cummulativeQuoteQty", "0"), field="cummulativeQuoteQty")
        average = quote_qty / filled if filled > 0 and quote_qty > 0 else None
    fee, fee_asset = _spot_fee(info)
    side = info.get("positionSide")
    created = info.get("time") or info.get("transactTime") or info.get("updateTime")
    updated = info.get("updateTime") or info.get("transactTime")
    return Order(
        symbol=inst.symbol,
        client_order_id=str(info.get("origClientOrderId") or info.get("clientOrderId")),
        exchange_order_id=str(info["orderId"]) if info.get("orderId") is not None else None,
        side=Side(str(info["side"]).lower()),
        type=OrderType(str(info["type"]).lower()),
        status=_STATUS.get(str(info.get("status")), OrderStatus.UNKNOWN),
        quantity=dec(info, "origQty"),
        filled=filled,
        average_price=average,
        price=optional_positive(info, "price"),
        created_at=utc_from_ms(int(created)) if created else None,
        updated_at=utc_from_ms(int(updated)) if updated else None,
        reduce_only=info.get("reduceOnly") in (True, "true"),
        position_side=PositionSide(side) if inst.is_derivative and side else None,
        fee=fee,
        fee_asset=fee_asset,
    )


def _spot_fee(info: Row) -> tuple[Decimal | None, str | None]:
    fills = info.get("fills")
    if not isinstance(fills, list) or not fills:
        return None, None
    assets = {str(f.get("commissionAsset")) for f in fills}
    total = sum((to_decimal(f.get("commission"), field="commission") for f in fills), ZERO)
    return total, assets.pop() if len(assets) == 1 else None


def fill(row: Row, inst: Instrument) -> Fill:
    """Return a Fill from /api/v3/myTrades or /fapi/v1/userTrades."""
    if inst.is_derivative:
        side = Side(str(row["side"]).lower())
        maker = bool(row.get("maker"))
        pnl: Decimal | None = dec(row, "realizedPnl")
    else:
        side = Side.BUY if row.get("isBuyer") else Side.SELL
        maker = bool(row.get("isMaker"))
        pnl = None
    return Fill(
        trade_id=str(row["id"]),
        symbol=inst.symbol,
        exchange_order_id=str(row["orderId"]),
        side=side,
        price=positive(row, "price"),
        quantity=positive(row, "qty"),
        fee=dec(row, "commission"),
        fee_asset=str(row.get("commissionAsset")),
        timestamp=millis(row, "time"),
        is_maker=maker,
        realized_pnl=pnl,
    )


def position(row: Row, symbol: str) -> Position:
    """Return a Position from /fapi/v3/positionRisk (leverage from the initial margin) or v2."""
    amount = dec(row, "positionAmt")
    side = PositionSide(str(row.get("positionSide", "BOTH")))
    notional = abs(dec(row, "notional"))
    if row.get("leverage"):
        leverage = int(str(row["leverage"]))
    else:
        initial = optional_positive(row, "positionInitialMargin")
        leverage = max(1, round(notional / initial)) if initial else 1
    if "marginType" in row:
        isolated = str(row["marginType"]).lower() == "isolated"
    else:
        isolated = to_decimal(row.get("isolatedWallet", "0"), field="isolatedWallet") > 0
    return Position(
        symbol=symbol,
        position_side=side,
        size=abs(amount),
        is_short=side is PositionSide.SHORT or (side is PositionSide.BOTH and amount < 0),
        entry_price=dec(row, "entryPrice"),
        mark_price=dec(row, "markPrice"),
        liquidation_price=optional_positive(row, "liquidationPrice"),
        unrealized_pnl=dec(row, "unRealizedProfit"),
        leverage=leverage,
        margin_mode=MarginMode.ISOLATED if isolated else MarginMode.CROSS,
        notional=notional,
    )


def spot_balances(info: Row) -> dict[str, Balance]:
    """Return the non-empty balances of /api/v3/account."""
    out: dict[str, Balance] = {}
    for row in info.get("balances") or []:
        balance = Balance(str(row["asset"]), dec(row, "free"), dec(row, "locked"))
        if balance.total != 0:
            out[balance.asset] = balance
    return out


def futures_account(info: Row) -> FuturesAccount:
    """Return the USDⓈ-M wallet from /fapi/v3/account."""
    assets: dict[str, Balance] = {}
    for row in info.get("assets") or []:
        wallet, available = dec(row, "walletBalance"), dec(row, "availableBalance")
        if wallet != 0 or available != 0:
            assets[str(row["asset"])] = Balance(str(row["asset"]), available, wallet - available)
    return FuturesAccount(
        wallet_balance=dec(info, "totalWalletBalance"),
        unrealized_pnl=dec(info, "totalUnrealizedProfit"),
        margin_balance=dec(info, "totalMarginBalance"),
        available_balance=dec(info, "availableBalance"),
        maintenance_margin=dec(info, "totalMaintMargin"),
        initial_margin=dec(info, "totalInitialMargin"),
        assets=assets,
    )


def funding_payment(row: Row, symbol: str) -> FundingPayment:
    """Return one FUNDING_FEE row of /fapi/v1/income."""
    return FundingPayment(
        symbol=symbol,
        funding_time=millis(row, "time"),
        amount=dec(row, "income"),
        asset=str(row.get("asset", "USDT")),
        income_id=str(row["tranId"]) if row.get("tranId") is not None else None,
    )
