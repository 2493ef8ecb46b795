"""Domain objects → Binance REST JSON, field for field as Binance sends them."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from bot.clock import ms_from_utc
from bot.domain import (
    Balance,
    Fill,
    FundingPayment,
    FuturesAccount,
    Instrument,
    MarketKind,
    Order,
    OrderStatus,
    Position,
    PositionSide,
)

PERPETUAL_DELIVERY_MS = 4133404800000
SPOT_ORDER_TYPES = [
    "LIMIT",
    "LIMIT_MAKER",
    "MARKET",
    "STOP_LOSS",
    "STOP_LOSS_LIMIT",
    "TAKE_PROFIT",
    "TAKE_PROFIT_LIMIT",
]
FUTURES_ORDER_TYPES = [
    "LIMIT",
    "MARKET",
    "STOP",
    "STOP_MARKET",
    "TAKE_PROFIT",
    "TAKE_PROFIT_MARKET",
    "TRAILING_STOP_MARKET",
]


def num(value: Decimal | int | None) -> str:
    """Format a number the way Binance does: plain decimal notation, never exponents."""
    if value is None:
        return "0"
    return f"{Decimal(value):f}"


def ms(when: datetime | None) -> int:
    return ms_from_utc(when) if when is not None else 0


def _price_filter(inst: Instrument) -> dict[str, Any]:
    return {
        "filterType": "PRICE_FILTER",
        "minPrice": num(inst.tick_size),
        "maxPrice": "1000000",
        "tickSize": num(inst.tick_size),
    }


def _lot_filters(inst: Instrument) -> list[dict[str, Any]]:
    return [
        {
            "filterType": "LOT_SIZE",
            "minQty": num(inst.min_qty),
            "maxQty": num(inst.max_qty),
            "stepSize": num(inst.step_size),
        },
        {
            "filterType": "MARKET_LOT_SIZE",
            "minQty": num(inst.market_min_qty),
            "maxQty": num(inst.market_max_qty),
            "stepSize": num(inst.market_step_size),
        },
    ]


def spot_symbol(inst: Instrument) -> dict[str, Any]:
    """Return one `symbols[]` entry of GET /api/v3/exchangeInfo."""
    return {
        "symbol": inst.exchange_symbol,
        "status": inst.status or ("TRADING" if inst.active else "BREAK"),
        "baseAsset": inst.base,
        "baseAssetPrecision": 8,
        "quoteAsset": inst.quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": SPOT_ORDER_TYPES,
        "icebergAllowed": True,
        "ocoAllowed": True,
        "otoAllowed": True,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": True,
        "cancelReplaceAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            _price_filter(inst),
            *_lot_filters(inst),
            {
                "filterType": "NOTIONAL",
                "minNotional": num(inst.min_notional),
                "applyMinToMarket": True,
                "maxNotional": "9000000",
                "applyMaxToMarket": False,
                "avgPriceMins": 5,
            },
            {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
        ],
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
    }


def futures_symbol(inst: Instrument) -> dict[str, Any]:
    """Return one `symbols[]` entry of GET /fapi/v1/exchangeInfo (perpetual or quarterly)."""
    perpetual = inst.kind is MarketKind.PERPETUAL
    data: dict[str, Any] = {
        "symbol": inst.exchange_symbol,
        "pair": f"{inst.base}{inst.quote}",
        "contractType": inst.contract_type or ("PERPETUAL" if perpetual else "CURRENT_QUARTER"),
        "deliveryDate": (
            (ms(inst.delist_at) if inst.delist_at else PERPETUAL_DELIVERY_MS)
            if perpetual
            else ms(inst.expiry)
        ),
        "status": inst.status or ("TRADING" if inst.active else "SETTLING"),
        "maintMarginPercent": "2.5000",
        "requiredMarginPercent": "5.0000",
        "baseAsset": inst.base,
        "quoteAsset": inst.quote,
        "marginAsset": inst.settle or inst.quote,
        "pricePrecision": max(0, -inst.tick_size.normalize().as_tuple().exponent),  # type: ignore[operator]
        "quantityPrecision": max(0, -inst.step_size.normalize().as_tuple().exponent),  # type: ignore[operator]
        "baseAssetPrecision": 8,
        "quotePrecision": 8,
        "underlyingType": "COIN",
        "underlyingSubType": [],
        "triggerProtect": "0.0500",
        "liquidationFee": "0.012500",
        "marketTakeBound": "0.05",
        "maxMoveOrderLimit": 10000,
        "filters": [
            _price_filter(inst),
            *_lot_filters(inst),
            {"filterType": "MAX_NUM_ORDERS", "limit": 200},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
            {"filterType": "MIN_NOTIONAL", "notional": num(inst.min_notional)},
            {
                "filterType": "PERCENT_PRICE",
                "multiplierUp": "1.0500",
                "multiplierDown": "0.9500",
                "multiplierDecimal": "4",
            },
        ],
        "orderTypes": FUTURES_ORDER_TYPES,
        "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
        "permissionSets": ["GRID", "COPY"],
    }
    if inst.listed_at is not None:
        data["onboardDate"] = ms(inst.listed_at)
    return data


def coinm_symbol(inst: Instrument) -> dict[str, Any]:
    """Return one `symbols[]` entry of GET /dapi/v1/exchangeInfo (COIN-M, inverse)."""
    perpetual = inst.kind is MarketKind.PERPETUAL
    data = futures_symbol(inst)
    data.pop("status", None)
    data.update(
        pair=f"{inst.base}{inst.quote}",
        contractType=inst.contract_type or ("PERPETUAL" if perpetual else "CURRENT_QUARTER"),
        contractStatus="TRADING" if inst.active else "SETTLING",
        contractSize=int(inst.contract_size),
        marginAsset=inst.base,
        equalQtyPrecision=4,
        filters=[f for f in data["filters"] if f["filterType"] != "MIN_NOTIONAL"],
    )
    return data


def _status(status: OrderStatus) -> str:
    return {
        OrderStatus.PENDING: "NEW",
        OrderStatus.UNKNOWN: "NEW",
    }.get(status, status.value.upper())


def _order_id(order: Order) -> int | str:
    raw = order.exchange_order_id or "0"
    return int(raw) if raw.isdigit() else raw


def spot_order(order: Order, inst: Instrument, fills: list[Fill] | None = None) -> dict[str, Any]:
    """Return an order of /api/v3/order (FULL response when `fills` is given)."""
    quote_qty = (order.average_price or Decimal(0)) * order.filled
    created = ms(order.created_at)
    data: dict[str, Any] = {
        "symbol": inst.exchange_symbol,
        "orderId": _order_id(order),
        "orderListId": -1,
        "clientOrderId": order.client_order_id,
        "transactTime": ms(order.updated_at) or created,
        "price": num(order.price or 0),
        "origQty": num(order.quantity),
        "executedQty": num(order.filled),
        "origQuoteOrderQty": "0",
        "cummulativeQuoteQty": num(quote_qty),
        "status": _status(order.status),
        "timeInForce": "GTC",
        "type": order.type.value.upper(),
        "side": order.side.value.upper(),
        "time": created,
        "updateTime": ms(order.updated_at) or created,
        "isWorking": True,
        "workingTime": created,
        "selfTradePreventionMode": "EXPIRE_MAKER",
    }
    if fills is not None:
        data["fills"] = [
            {
                "price": num(f.price),
                "qty": num(f.quantity),
                "commission": num(f.fee),
                "commissionAsset": f.fee_asset,
                "tradeId": int(f.trade_id) if f.trade_id.isdigit() else f.trade_id,
            }
            for f in fills
        ]
    return data


def futures_order(order: Order, inst: Instrument) -> dict[str, Any]:
    """Return an order of /fapi/v1/order (RESULT response and GET)."""
    quote_qty = (order.average_price or Decimal(0)) * order.filled
    created = ms(order.created_at)
    return {
        "orderId": _order_id(order),
        "symbol": inst.exchange_symbol,
        "status": _status(order.status),
        "clientOrderId": order.client_order_id,
        "price": num(order.price or 0),
        "avgPrice": num(order.average_price or 0),
        "origQty": num(order.quantity),
        "executedQty": num(order.filled),
        "cumQty": num(order.filled),
        "cumQuote": num(quote_qty),
        "timeInForce": "GTC",
        "type": order.type.value.upper(),
        "reduceOnly": order.reduce_only,
        "closePosition": False,
        "side": order.side.value.upper(),
        "positionSide": (order.position_side or PositionSide.BOTH).value,
        "stopPrice": "0",
        "workingType": "CONTRACT_PRICE",
        "priceProtect": False,
        "origType": order.type.value.upper(),
        "priceMatch": "NONE",
        "selfTradePreventionMode": "EXPIRE_MAKER",
        "goodTillDate": 0,
        "time": created,
        "updateTime": ms(order.updated_at) or created,
    }


def spot_trade(fill: Fill, inst: Instrument) -> dict[str, Any]:
    return {
        "symbol": inst.exchange_symbol,
        "id": int(fill.trade_id) if fill.trade_id.isdigit() else fill.trade_id,
        "orderId": int(fill.exchange_order_id)
        if fill.exchange_order_id.isdigit()
        else fill.exchange_order_id,
        "orderListId": -1,
        "price": num(fill.price),
        "qty": num(fill.quantity),
        "quoteQty": num(fill.price * fill.quantity),
        "commission": num(fill.fee),
        "commissionAsset": fill.fee_asset,
        "time": ms(fill.timestamp),
        "isBuyer": fill.side.value == "buy",
        "isMaker": fill.is_maker,
        "isBestMatch": True,
    }


def futures_trade(fill: Fill, inst: Instrument, position_side: str) -> dict[str, Any]:
    return {
        "buyer": fill.side.value == "buy",
        "commission": num(fill.fee),
        "commissionAsset": fill.fee_asset,
        "id": int(fill.trade_id) if fill.trade_id.isdigit() else fill.trade_id,
        "maker": fill.is_maker,
        "orderId": int(fill.exchange_order_id)
        if fill.exchange_order_id.isdigit()
        else fill.exchange_order_id,
        "price": num(fill.price),
        "qty": num(fill.quantity),
        "quoteQty": num(fill.price * fill.quantity),
        "realizedPnl": num(fill.realized_pnl or 0),
        "side": fill.side.value.upper(),
        "positionSide": position_side,
        "symbol": inst.exchange_symbol,
        "time": ms(fill.timestamp),
    }


def spot_account(balances: dict[str, Balance], update_ms: int) -> dict[str, Any]:
    return {
        "makerCommission": 10,
        "takerCommission": 10,
        "buyerCommission": 0,
        "sellerCommission": 0,
        "commissionRates": {"maker": "0.001", "taker": "0.001", "buyer": "0", "seller": "0"},
        "canTrade": True,
        "canWithdraw": True,
        "canDeposit": True,
        "brokered": False,
        "requireSelfTradePrevention": False,
        "preventSor": False,
        "updateTime": update_ms,
        "accountType": "SPOT",
        "balances": [
            {"asset": b.asset, "free": num(b.free), "locked": num(b.locked)}
            for b in balances.values()
        ],
        "permissions": ["SPOT"],
        "uid": 1,
    }


def position_v3(pos: Position, exchange_symbol: str, update_ms: int) -> dict[str, Any]:
    """Return one row of GET /fapi/v3/positionRisk (no leverage or marginType in v3)."""
    notional = pos.notional if pos.notional is not None else pos.size * pos.mark_price
    notional = -abs(notional) if pos.is_short else abs(notional)
    initial = abs(notional) / pos.leverage
    isolated = pos.margin_mode.value == "isolated"
    return {
        "symbol": exchange_symbol,
        "positionSide": pos.position_side.value,
        "positionAmt": num(pos.signed_size),
        "entryPrice": num(pos.entry_price),
        "breakEvenPrice": num(pos.entry_price),
        "markPrice": num(pos.mark_price),
        "unRealizedProfit": num(pos.unrealized_pnl),
        "liquidationPrice": num(pos.liquidation_price or 0),
        "isolatedMargin": num(initial if isolated else 0),
        "notional": num(notional),
        "marginAsset": "USDT",
        "isolatedWallet": num(initial if isolated else 0),
        "initialMargin": num(initial),
        "maintMargin": num(abs(notional) * Decimal("0.004")),
        "positionInitialMargin": num(initial),
        "openOrderInitialMargin": "0",
        "adl": 1,
        "bidNotional": "0",
        "askNotional": "0",
        "updateTime": update_ms,
    }


def position_v2(pos: Position, exchange_symbol: str, update_ms: int) -> dict[str, Any]:
    """Return one row of GET /fapi/v2/positionRisk (with leverage and marginType)."""
    row = position_v3(pos, exchange_symbol, update_ms)
    return {
        "symbol": exchange_symbol,
        "positionAmt": row["positionAmt"],
        "entryPrice": row["entryPrice"],
        "breakEvenPrice": row["breakEvenPrice"],
        "markPrice": row["markPrice"],
        "unRealizedProfit": row["unRealizedProfit"],
        "liquidationPrice": row["liquidationPrice"],
        "leverage": str(pos.leverage),
        "maxNotionalValue": "1000000",
        "marginType": "isolated" if pos.margin_mode.value == "isolated" else "cross",
        "isolatedMargin": row["isolatedMargin"],
        "isAutoAddMargin": "false",
        "positionSide": row["positionSide"],
        "notional": row["notional"],
        "isolatedWallet": row["isolatedWallet"],
        "updateTime": update_ms,
    }


def futures_account(
    acct: FuturesAccount, positions: list[dict[str, Any]], update_ms: int
) -> dict[str, Any]:
    """Return GET /fapi/v3/account (also served as v2)."""
    assets = acct.assets or {
        "USDT": Balance(
            "USDT", acct.available_balance, acct.wallet_balance - acct.available_balance
        )
    }
    return {
        "totalInitialMargin": num(acct.initial_margin),
        "totalMaintMargin": num(acct.maintenance_margin),
        "totalWalletBalance": num(acct.wallet_balance),
        "totalUnrealizedProfit": num(acct.unrealized_pnl),
        "totalMarginBalance": num(acct.margin_balance),
        "totalPositionInitialMargin": num(acct.initial_margin),
        "totalOpenOrderInitialMargin": "0",
        "totalCrossWalletBalance": num(acct.wallet_balance),
        "totalCrossUnPnl": num(acct.unrealized_pnl),
        "availableBalance": num(acct.available_balance),
        "maxWithdrawAmount": num(acct.available_balance),
        "assets": [
            {
                "asset": b.asset,
                "walletBalance": num(b.total if b.asset != "USDT" else acct.wallet_balance),
                "unrealizedProfit": num(acct.unrealized_pnl if b.asset == "USDT" else 0),
                "marginBalance": num(acct.margin_balance if b.asset == "USDT" else b.total),
                "maintMargin": num(acct.maintenance_margin if b.asset == "USDT" else 0),
                "initialMargin": num(acct.initial_margin if b.asset == "USDT" else 0),
                "positionInitialMargin": num(acct.initial_margin if b.asset == "USDT" else 0),
                "openOrderInitialMargin": "0",
                "crossWalletBalance": num(b.total if b.asset != "USDT" else acct.wallet_balance),
                "crossUnPnl": num(acct.unrealized_pnl if b.asset == "USDT" else 0),
                "availableBalance": num(b.free),
                "maxWithdrawAmount": num(b.free),
                "updateTime": update_ms,
            }
            for b in assets.values()
        ],
        "positions": positions,
    }


def futures_balance(acct: FuturesAccount, update_ms: int) -> list[dict[str, Any]]:
    """Return GET /fapi/v3/balance."""
    return [
        {
            "accountAlias": "fake",
            "asset": row["asset"],
            "balance": row["walletBalance"],
            "crossWalletBalance": row["crossWalletBalance"],
            "crossUnPnl": row["crossUnPnl"],
            "availableBalance": row["availableBalance"],
            "maxWithdrawAmount": row["maxWithdrawAmount"],
            "marginAvailable": True,
            "updateTime": update_ms,
        }
        for row in futures_account(acct, [], update_ms)["assets"]
    ]


def income(payment: FundingPayment, exchange_symbol: str, tran_id: int) -> dict[str, Any]:
    return {
        "symbol": exchange_symbol,
        "incomeType": "FUNDING_FEE",
        "income": num(payment.amount),
        "asset": payment.asset,
        "info": "FUNDING_FEE",
        "time": ms(payment.funding_time),
        "tranId": tran_id,
        "tradeId": "",
    }
