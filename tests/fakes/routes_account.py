"""SIGNED endpoints of the fake Binance, served by the simulated account (`SimulatedExchange`)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from bot.clock import utc_from_ms
from bot.domain import (
    Instrument,
    MarginMode,
    MarketKind,
    Order,
    OrderRequest,
    OrderType,
    PositionMode,
    PositionSide,
    Side,
)
from bot.errors import ExchangeError
from tests.fakes import wire
from tests.fakes.auth import BinanceError
from tests.fakes.routes_market import instrument

if TYPE_CHECKING:
    from tests.fakes.binance_server import FakeBinance

Params = Mapping[str, str]
Handler = Callable[["FakeBinance", Params], Any]

_CLIENT_ID = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")
_SPOT_ONLY_PARAMS = {"quoteOrderQty", "icebergQty", "trailingDelta", "strategyId"}
_FUTURES_ONLY_PARAMS = {"reduceOnly", "positionSide", "closePosition", "priceProtect"}


def _mandatory(name: str) -> BinanceError:
    return BinanceError(
        -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
    )


def _decimal(params: Params, name: str) -> Decimal:
    raw = params.get(name)
    if raw is None or raw == "":
        raise _mandatory(name)
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise BinanceError(
            -1100,
            f"Illegal characters found in parameter '{name}'; legal range is "
            "'^([0-9]{1,20})(\\.[0-9]{1,20})?$'.",
        ) from None
    if not value.is_finite() or value <= 0:
        raise BinanceError(-1100, f"Illegal characters found in parameter '{name}'.")
    return value


def _bool(params: Params, name: str) -> bool:
    raw = params.get(name, "false").lower()
    if raw not in ("true", "false"):
        raise BinanceError(-1130, f"Data sent for parameter '{name}' is not valid.")
    return raw == "true"


def simulated(call: Callable[[], Any]) -> Any:
    """Run one simulator call, turning its `bot.errors` rejections into Binance answers."""
    try:
        return call()
    except ExchangeError as exc:
        raise BinanceError(exc.code if exc.code is not None else -1000, exc.reason) from None


def order_request(
    fake: FakeBinance, params: Params, futures: bool, *, coinm: bool = False
) -> tuple[Instrument, OrderRequest]:
    """Validate the parameters of POST /api/v3/order, /fapi/v1/order or /dapi/v1/order."""
    inst = instrument(fake, params, futures, coinm=coinm)
    foreign = (_SPOT_ONLY_PARAMS if futures else _FUTURES_ONLY_PARAMS) & set(params)
    if "quoteOrderQty" in params and not futures:
        foreign = {"quoteOrderQty"}  # Binance accepts it; this fake does not model it
    if foreign:
        raise BinanceError(
            -1104, f"Not all sent parameters were read; unexpected {sorted(foreign)}."
        )
    side = params.get("side", "")
    if side not in ("BUY", "SELL"):
        raise _mandatory("side") if not side else BinanceError(-1117, "Invalid side.")
    kind = params.get("type", "")
    if kind not in ("MARKET", "LIMIT"):
        raise _mandatory("type") if not kind else BinanceError(-1116, "Invalid orderType.")
    quantity = _decimal(params, "quantity")
    price = None
    if kind == "LIMIT":
        price = _decimal(params, "price")
        if "timeInForce" not in params:
            raise _mandatory("timeInForce")
    elif "price" in params:
        raise BinanceError(-1106, "Parameter 'price' sent when not required.")
    client_id = params.get("newClientOrderId") or fake.generate_client_id()
    if not _CLIENT_ID.match(client_id):
        raise BinanceError(
            -1100,
            "Illegal characters found in parameter 'newClientOrderId'; legal range is "
            "'^[\\.A-Z\\:/a-z0-9_-]{1,36}$'.",
        )
    position_side = None
    if "positionSide" in params:
        try:
            position_side = PositionSide(params["positionSide"])
        except ValueError:
            raise BinanceError(-4006, "Invalid position side.") from None
    return inst, OrderRequest(
        symbol=inst.symbol,
        side=Side(side.lower()),
        type=OrderType(kind.lower()),
        quantity=quantity,
        client_order_id=client_id,
        price=price,
        reduce_only=_bool(params, "reduceOnly"),
        position_side=position_side,
    )


def _order_json(fake: FakeBinance, order: Order, inst: Instrument, full: bool) -> dict[str, Any]:
    if inst.is_derivative:
        return wire.futures_order(order, inst)
    fills = None
    if full:
        fills = [
            f
            for f in fake.account.my_trades(inst.symbol)
            if f.exchange_order_id == order.exchange_order_id
        ]
    return wire.spot_order(order, inst, fills)


def _new_order(fake: FakeBinance, params: Params, futures: bool) -> Any:
    inst, request = order_request(fake, params, futures)
    ratio = fake.pending_fill_ratio()
    if ratio is not None:
        fake.account.set_fill_ratio(inst.symbol, ratio)
    try:
        order = simulated(lambda: fake.account.create_order(request))
    finally:
        if ratio is not None:
            fake.account.set_fill_ratio(inst.symbol, None)
    fake.remember_order(inst, order)
    fake.count_order(futures)
    fake.streams.order_event(
        inst,
        order,
        [
            f
            for f in fake.account.my_trades(inst.symbol)
            if f.exchange_order_id == order.exchange_order_id
        ],
    )
    return _order_json(fake, order, inst, full=params.get("newOrderRespType", "FULL") == "FULL")


def _client_id_of(fake: FakeBinance, params: Params, inst: Instrument, futures: bool) -> str:
    if params.get("origClientOrderId"):
        return params["origClientOrderId"]
    if params.get("orderId"):
        known = fake.order_ids.get((futures, params["orderId"]))
        if known is None:
            raise BinanceError(-2013, "Order does not exist.")
        return known
    raise BinanceError(
        -1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!"
    )


def _get_order(fake: FakeBinance, params: Params, futures: bool) -> Any:
    inst = instrument(fake, params, futures)
    cid = _client_id_of(fake, params, inst, futures)
    order = simulated(lambda: fake.account.fetch_order(inst.symbol, cid))
    return _order_json(fake, order, inst, full=False)


def _cancel_order(fake: FakeBinance, params: Params, futures: bool) -> Any:
    inst = instrument(fake, params, futures)
    try:
        cid = _client_id_of(fake, params, inst, futures)
    except BinanceError as exc:
        if exc.code == -2013:
            raise BinanceError(-2011, "Unknown order sent.") from None
        raise
    order = simulated(lambda: fake.account.cancel_order(inst.symbol, cid))
    data = _order_json(fake, order, inst, full=False)
    if not futures:
        data["origClientOrderId"] = order.client_order_id
    return data


def _open_orders(fake: FakeBinance, params: Params, futures: bool) -> Any:
    inst = instrument(fake, params, futures) if "symbol" in params else None
    orders = fake.account.open_orders(inst.symbol if inst else None)
    out = []
    for order in orders:
        oi = fake.market.instruments.get(order.symbol)
        if oi is not None and oi.is_derivative == futures:
            out.append(_order_json(fake, order, oi, full=False))
    return out


FUTURES_TRADES_WINDOW_MS = 7 * 24 * 3600 * 1000
SPOT_TRADES_WINDOW_MS = 24 * 3600 * 1000


def _trades(fake: FakeBinance, params: Params, futures: bool) -> Any:
    """userTrades / myTrades: one time window per request, as Binance answers them.

    USDⓈ-M: at most 7 days between startTime and endTime; spot: 24 hours. With startTime
    only, the window ends that long after it (a later fill needs another request).
    """
    inst = instrument(fake, params, futures)
    width = FUTURES_TRADES_WINDOW_MS if futures else SPOT_TRADES_WINDOW_MS
    start = int(params["startTime"]) if "startTime" in params else None
    end = int(params["endTime"]) if "endTime" in params else None
    if start is not None and end is not None and end - start > width:
        raise BinanceError(-1127, "Lookup interval is too big.")
    if start is not None and end is None:
        end = start + width
    since = utc_from_ms(start) if start is not None else None
    fills = list(fake.account.my_trades(inst.symbol, since))
    if end is not None:
        until = utc_from_ms(end)
        fills = [f for f in fills if f.timestamp <= until]
    if "orderId" in params:
        fills = [f for f in fills if f.exchange_order_id == params["orderId"]]
    if "fromId" in params:
        fills = [
            f for f in fills if f.trade_id.isdigit() and int(f.trade_id) >= int(params["fromId"])
        ]
    limit = min(int(params.get("limit", "500")), 1000)
    fills = fills[:limit]
    if not futures:
        return [wire.spot_trade(f, inst) for f in fills]
    return [
        wire.futures_trade(
            f, inst, (fake.order_sides.get(f.exchange_order_id) or PositionSide.BOTH).value
        )
        for f in fills
    ]


def spot_account(fake: FakeBinance, params: Params) -> Any:
    balances = fake.account.spot_balances()
    if params.get("omitZeroBalances") == "true":
        balances = {a: b for a, b in balances.items() if b.total != 0}
    return wire.spot_account(balances, fake.market_ms())


def _positions(fake: FakeBinance, params: Params, v3: bool) -> list[dict[str, Any]]:
    rows = []
    for pos in fake.account.positions():
        inst = fake.market.instruments.get(pos.symbol)
        if inst is None:
            continue
        if "symbol" in params and params["symbol"] != inst.exchange_symbol:
            continue
        row = wire.position_v3 if v3 else wire.position_v2
        rows.append(row(pos, inst.exchange_symbol, fake.market_ms()))
    return rows


def futures_account(fake: FakeBinance, params: Params) -> Any:
    positions = [
        {
            k: row[k]
            for k in (
                "symbol",
                "positionSide",
                "positionAmt",
                "isolatedMargin",
                "notional",
                "isolatedWallet",
                "initialMargin",
                "maintMargin",
                "updateTime",
            )
        }
        | {"unrealizedProfit": row["unRealizedProfit"]}
        for row in _positions(fake, {}, True)
    ]
    return wire.futures_account(fake.account.futures_account(), positions, fake.market_ms())


def futures_balance(fake: FakeBinance, params: Params) -> Any:
    return wire.futures_balance(fake.account.futures_account(), fake.market_ms())


def leverage_bracket(fake: FakeBinance, params: Params) -> Any:
    insts = [i for i in fake.market.of_market(True) if i.kind is MarketKind.PERPETUAL]
    if "symbol" in params:
        insts = [instrument(fake, params, True)]
    return [
        {
            "symbol": i.exchange_symbol,
            "notionalCoef": 1.0,
            "brackets": [
                {
                    "bracket": 1,
                    "initialLeverage": 125,
                    "notionalCap": 1_000_000_000,
                    "notionalFloor": 0,
                    "maintMarginRatio": float(fake.maintenance_rate),
                    "cum": 0.0,
                }
            ],
        }
        for i in insts
    ]


def get_dual(fake: FakeBinance, params: Params) -> Any:
    return {"dualSidePosition": fake.account.position_mode is PositionMode.HEDGE}


def post_dual(fake: FakeBinance, params: Params) -> Any:
    if "dualSidePosition" not in params:
        raise _mandatory("dualSidePosition")
    mode = PositionMode.HEDGE if _bool(params, "dualSidePosition") else PositionMode.ONE_WAY
    if mode is fake.account.position_mode:
        raise BinanceError(-4059, "No need to change position side.")
    simulated(lambda: fake.account.set_position_mode(mode))
    return {"code": 200, "msg": "success"}


def post_leverage(fake: FakeBinance, params: Params) -> Any:
    inst = instrument(fake, params, True)
    raw = params.get("leverage", "")
    if not raw.isdigit():
        raise _mandatory("leverage")
    lev = int(raw)
    if not 1 <= lev <= 125:
        raise BinanceError(-4028, f"Leverage {lev} is not valid")
    simulated(lambda: fake.account.set_leverage(inst.symbol, lev))
    return {"leverage": lev, "maxNotionalValue": "1000000000", "symbol": inst.exchange_symbol}


def post_margin_type(fake: FakeBinance, params: Params) -> Any:
    inst = instrument(fake, params, True)
    raw = params.get("marginType", "")
    modes = {"ISOLATED": MarginMode.ISOLATED, "CROSSED": MarginMode.CROSS}
    if raw not in modes:
        raise BinanceError(-1116, "Invalid marginType.") if raw else _mandatory("marginType")
    if fake.account.margin_mode(inst.symbol) is modes[raw]:
        raise BinanceError(-4046, "No need to change margin type.")
    simulated(lambda: fake.account.set_margin_mode(inst.symbol, modes[raw]))
    return {"code": 200, "msg": "success"}


def income(fake: FakeBinance, params: Params) -> Any:
    inst = instrument(fake, params, True) if "symbol" in params else None
    if params.get("incomeType", "FUNDING_FEE") != "FUNDING_FEE":
        return []
    since = utc_from_ms(int(params["startTime"])) if "startTime" in params else None
    payments = list(fake.account.funding_payments(since, inst.symbol if inst else None))
    if "endTime" in params:
        until = utc_from_ms(int(params["endTime"]))
        payments = [p for p in payments if p.funding_time <= until]
    payments.sort(key=lambda p: p.funding_time)
    limit = min(int(params.get("limit", "100")), 1000)
    out = []
    payments = [p for p in payments if not _is_inverse(fake, p.symbol)]  # dapi's income
    for p in payments[:limit]:
        pi = fake.market.instruments.get(p.symbol)
        exchange_symbol = pi.exchange_symbol if pi else p.symbol
        out.append(wire.income(p, exchange_symbol, fake.income_id(p.symbol, p.funding_time)))
    return out


def _is_inverse(fake: FakeBinance, symbol: str) -> bool:
    inst = fake.market.instruments.get(symbol)
    return inst is not None and inst.is_inverse


_TRANSFER_TYPES = {
    "MAIN_UMFUTURE": ("spot", "futures"),
    "UMFUTURE_MAIN": ("futures", "spot"),
    "MAIN_CMFUTURE": ("spot", "coinm"),
    "CMFUTURE_MAIN": ("coinm", "spot"),
}


def post_transfer(fake: FakeBinance, params: Params) -> Any:
    """Universal transfer between the spot (MAIN), USDⓈ-M (UMFUTURE) and COIN-M (CMFUTURE)
    wallets; -5013 when the source cannot spare the amount."""
    for name in ("type", "asset", "amount"):
        if name not in params:
            raise _mandatory(name)
    wallets = _TRANSFER_TYPES.get(params["type"])
    if wallets is None:
        raise BinanceError(-1102, "Mandatory parameter 'type' was not sent or is invalid.")
    amount = Decimal(params["amount"])
    simulated(
        lambda: fake.account.transfer(
            params["asset"], amount, from_wallet=wallets[0], to_wallet=wallets[1]
        )
    )
    fake.transfers += 1
    return {"tranId": 100000 + fake.transfers}


def spot_trade_fees(fake: FakeBinance, params: Params) -> Any:
    """GET /sapi/v1/asset/tradeFee: every spot symbol's (or `symbol`'s) maker/taker rate."""
    wanted = params.get("symbol")
    fees = fake.fees
    return [
        {
            "symbol": i.exchange_symbol,
            "makerCommission": str(fees.spot_maker),
            "takerCommission": str(fees.spot_taker),
        }
        for i in fake.market.instruments.values()
        if i.kind is MarketKind.SPOT and wanted in (None, i.exchange_symbol)
    ]


def futures_commission(fake: FakeBinance, params: Params) -> Any:
    """GET /fapi/v1/commissionRate: one USDⓈ-M symbol's maker/taker rate."""
    inst = instrument(fake, params, True)
    return {
        "symbol": inst.exchange_symbol,
        "makerCommissionRate": str(fake.fees.futures_maker),
        "takerCommissionRate": str(fake.fees.futures_taker),
    }


def futures_account_config(fake: FakeBinance, params: Params) -> Any:
    """GET /fapi/v1/accountConfig: the account's fee tier (VIP level) and permissions."""
    return {
        "feeTier": fake.fees.vip_tier or 0,
        "canTrade": True,
        "canDeposit": True,
        "canWithdraw": True,
        "dualSidePosition": fake.account.position_mode is PositionMode.HEDGE,
        "updateTime": 0,
        "multiAssetsMargin": False,
        "tradeGroupId": -1,
    }


ROUTES: dict[tuple[str, str], Handler] = {
    ("GET", "/sapi/v1/asset/tradeFee"): spot_trade_fees,
    ("GET", "/sapi/v1/bnbBurn"): lambda f, p: {
        "spotBNBBurn": f.bnb_burn[0],
        "interestBNBBurn": False,
    },
    ("GET", "/fapi/v1/commissionRate"): futures_commission,
    ("GET", "/fapi/v1/accountConfig"): futures_account_config,
    ("GET", "/fapi/v1/feeBurn"): lambda f, p: {"feeBurn": f.bnb_burn[1]},
    ("POST", "/sapi/v1/asset/transfer"): post_transfer,
    ("GET", "/api/v3/account"): spot_account,
    ("POST", "/api/v3/order"): lambda f, p: _new_order(f, p, False),
    ("GET", "/api/v3/order"): lambda f, p: _get_order(f, p, False),
    ("DELETE", "/api/v3/order"): lambda f, p: _cancel_order(f, p, False),
    ("GET", "/api/v3/openOrders"): lambda f, p: _open_orders(f, p, False),
    ("GET", "/api/v3/myTrades"): lambda f, p: _trades(f, p, False),
    ("GET", "/fapi/v2/account"): futures_account,
    ("GET", "/fapi/v3/account"): futures_account,
    ("GET", "/fapi/v2/balance"): futures_balance,
    ("GET", "/fapi/v3/balance"): futures_balance,
    ("GET", "/fapi/v2/positionRisk"): lambda f, p: _positions(f, p, False),
    ("GET", "/fapi/v3/positionRisk"): lambda f, p: _positions(f, p, True),
    ("GET", "/fapi/v1/leverageBracket"): leverage_bracket,
    ("POST", "/fapi/v1/order"): lambda f, p: _new_order(f, p, True),
    ("GET", "/fapi/v1/order"): lambda f, p: _get_order(f, p, True),
    ("DELETE", "/fapi/v1/order"): lambda f, p: _cancel_order(f, p, True),
    ("GET", "/fapi/v1/openOrders"): lambda f, p: _open_orders(f, p, True),
    ("GET", "/fapi/v1/userTrades"): lambda f, p: _trades(f, p, True),
    ("GET", "/fapi/v1/positionSide/dual"): get_dual,
    ("POST", "/fapi/v1/positionSide/dual"): post_dual,
    ("POST", "/fapi/v1/leverage"): post_leverage,
    ("POST", "/fapi/v1/marginType"): post_margin_type,
    ("GET", "/fapi/v1/income"): income,
}
