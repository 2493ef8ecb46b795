"""SIGNED COIN-M (dapi) endpoints of the fake Binance, served by the simulated COIN-M account.

Orders (`/dapi/v1/order`: quantities in whole contracts; -1111 for a fraction, -2019 margin
insufficient, -2022 / -1106 / -4061 as on USDⓈ-M), open orders, userTrades (`baseQty`,
`marginAsset`, commission in the coin), account and balance (one row per coin),
positionRisk (v1, `notionalValue` in the coin), positionSide/dual (the COIN-M setting, apart
from USDⓈ-M's), leverage, marginType and FUNDING_FEE income. A USDⓈ-M symbol on a dapi path
is -1121 "Invalid symbol.", as it is on Binance.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from bot.clock import utc_from_ms
from bot.domain import Instrument, MarginMode, Order, PositionMode, PositionSide
from tests.fakes import wire
from tests.fakes.auth import BinanceError
from tests.fakes.routes_account import order_request, simulated
from tests.fakes.routes_market import instrument

if TYPE_CHECKING:
    from tests.fakes.binance_server import FakeBinance

Params = Mapping[str, str]
Handler = Callable[["FakeBinance", Params], Any]
TRADES_WINDOW_MS = 7 * 24 * 3600 * 1000


def _instrument(fake: FakeBinance, params: Params) -> Instrument:
    return instrument(fake, params, True, coinm=True)


def order_json(order: Order, inst: Instrument) -> dict[str, Any]:
    """Return an order of /dapi/v1/order: `cumBase` (coin) instead of `cumQuote`."""
    data = wire.futures_order(order, inst)
    data.pop("cumQuote", None)
    avg = order.average_price or Decimal(0)
    base = order.filled * inst.contract_size / avg if avg > 0 else Decimal(0)
    data.update(pair=f"{inst.base}{inst.quote}", cumBase=wire.num(base))
    return data


def _new_order(fake: FakeBinance, params: Params) -> Any:
    inst = _instrument(fake, params)
    _, request = order_request(fake, params, True, coinm=True)
    ratio = fake.pending_fill_ratio()
    if ratio is not None:
        fake.account.set_fill_ratio(inst.symbol, ratio)
    try:
        order = simulated(lambda: fake.account.create_order(request))
    finally:
        if ratio is not None:
            fake.account.set_fill_ratio(inst.symbol, None)
    fake.remember_order(inst, order)
    fake.count_order(True)
    fake.streams.order_event(
        inst,
        order,
        [
            f
            for f in fake.account.my_trades(inst.symbol)
            if f.exchange_order_id == order.exchange_order_id
        ],
    )
    return order_json(order, inst)


def _client_id(fake: FakeBinance, params: Params) -> str:
    if params.get("origClientOrderId"):
        return params["origClientOrderId"]
    if params.get("orderId"):
        known = fake.order_ids.get((True, params["orderId"]))
        if known is None:
            raise BinanceError(-2013, "Order does not exist.")
        return known
    raise BinanceError(
        -1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!"
    )


def _get_order(fake: FakeBinance, params: Params) -> Any:
    inst = _instrument(fake, params)
    cid = _client_id(fake, params)
    return order_json(simulated(lambda: fake.account.fetch_order(inst.symbol, cid)), inst)


def _cancel_order(fake: FakeBinance, params: Params) -> Any:
    inst = _instrument(fake, params)
    try:
        cid = _client_id(fake, params)
    except BinanceError as exc:
        if exc.code == -2013:
            raise BinanceError(-2011, "Unknown order sent.") from None
        raise
    return order_json(simulated(lambda: fake.account.cancel_order(inst.symbol, cid)), inst)


def _open_orders(fake: FakeBinance, params: Params) -> Any:
    inst = _instrument(fake, params) if "symbol" in params else None
    out = []
    for order in fake.account.open_orders(inst.symbol if inst else None):
        oi = fake.market.instruments.get(order.symbol)
        if oi is not None and oi.is_inverse:
            out.append(order_json(order, oi))
    return out


def _trades(fake: FakeBinance, params: Params) -> Any:
    """userTrades: at most 7 days between startTime and endTime; fromId not with either."""
    inst = _instrument(fake, params)
    start = int(params["startTime"]) if "startTime" in params else None
    end = int(params["endTime"]) if "endTime" in params else None
    if "fromId" in params and (start is not None or end is not None):
        raise BinanceError(-4046, "fromId cannot be sent with startTime or endTime.")
    if start is not None and end is not None and end - start > TRADES_WINDOW_MS:
        raise BinanceError(-1127, "Lookup interval is too big.")
    if start is not None and end is None:
        end = start + TRADES_WINDOW_MS
    fills = list(fake.account.my_trades(inst.symbol, utc_from_ms(start) if start else None))
    if end is not None:
        fills = [f for f in fills if f.timestamp <= utc_from_ms(end)]
    if "orderId" in params:
        fills = [f for f in fills if f.exchange_order_id == params["orderId"]]
    fills = fills[: min(int(params.get("limit", "50")), 1000)]
    rows = []
    for f in fills:
        row = wire.futures_trade(
            f, inst, (fake.order_sides.get(f.exchange_order_id) or PositionSide.BOTH).value
        )
        row.pop("quoteQty", None)
        row.update(
            pair=f"{inst.base}{inst.quote}",
            marginAsset=inst.settle,
            baseQty=wire.num(f.quantity * inst.contract_size / f.price),
        )
        rows.append(row)
    return rows


def _position_rows(fake: FakeBinance, params: Params) -> list[dict[str, Any]]:
    rows = []
    for pos in fake.account.coinm_positions():
        inst = fake.market.instruments.get(pos.symbol)
        if inst is None or ("symbol" in params and params["symbol"] != inst.exchange_symbol):
            continue
        if "pair" in params and params["pair"] != f"{inst.base}{inst.quote}":
            continue
        coin = pos.size * inst.contract_size / pos.mark_price
        rows.append(
            {
                "symbol": inst.exchange_symbol,
                "positionAmt": wire.num(pos.signed_size),
                "entryPrice": wire.num(pos.entry_price),
                "breakEvenPrice": wire.num(pos.entry_price),
                "markPrice": wire.num(pos.mark_price),
                "unRealizedProfit": wire.num(pos.unrealized_pnl),
                "liquidationPrice": "0",
                "leverage": str(pos.leverage),
                "maxQty": "1000",
                "marginType": "isolated" if pos.margin_mode is MarginMode.ISOLATED else "cross",
                "isolatedMargin": "0",
                "isAutoAddMargin": "false",
                "positionSide": pos.position_side.value,
                "notionalValue": wire.num(-coin if pos.is_short else coin),
                "isolatedWallet": "0",
                "updateTime": fake.market_ms(),
            }
        )
    return rows


def _assets(fake: FakeBinance) -> list[dict[str, Any]]:
    rows = []
    for asset in fake.account.coinm_assets():
        acct = fake.account.coinm_account(asset)
        rows.append(
            {
                "asset": asset,
                "walletBalance": wire.num(acct.wallet_balance),
                "unrealizedProfit": wire.num(acct.unrealized_pnl),
                "marginBalance": wire.num(acct.margin_balance),
                "maintMargin": wire.num(acct.maintenance_margin),
                "initialMargin": wire.num(acct.initial_margin),
                "positionInitialMargin": wire.num(acct.initial_margin),
                "openOrderInitialMargin": "0",
                "maxWithdrawAmount": wire.num(max(acct.available_balance, Decimal(0))),
                "crossWalletBalance": wire.num(acct.wallet_balance),
                "crossUnPnl": wire.num(acct.unrealized_pnl),
                "availableBalance": wire.num(acct.available_balance),
                "updateTime": fake.market_ms(),
            }
        )
    return rows


def _account(fake: FakeBinance, params: Params) -> Any:
    positions = [
        {
            "symbol": r["symbol"],
            "positionAmt": r["positionAmt"],
            "initialMargin": "0",
            "maintMargin": "0",
            "unrealizedProfit": r["unRealizedProfit"],
            "positionInitialMargin": "0",
            "openOrderInitialMargin": "0",
            "leverage": r["leverage"],
            "isolated": r["marginType"] == "isolated",
            "positionSide": r["positionSide"],
            "entryPrice": r["entryPrice"],
            "maxQty": r["maxQty"],
            "updateTime": r["updateTime"],
        }
        for r in _position_rows(fake, {})
    ]
    return {
        "assets": _assets(fake),
        "positions": positions,
        "canDeposit": True,
        "canTrade": True,
        "canWithdraw": True,
        "feeTier": fake.fees.vip_tier or 0,
        "updateTime": 0,
    }


def _balance(fake: FakeBinance, params: Params) -> Any:
    return [
        {
            "accountAlias": "fake",
            "asset": row["asset"],
            "balance": row["walletBalance"],
            "withdrawAvailable": row["maxWithdrawAmount"],
            "crossWalletBalance": row["crossWalletBalance"],
            "crossUnPnl": row["crossUnPnl"],
            "availableBalance": row["availableBalance"],
            "updateTime": row["updateTime"],
        }
        for row in _assets(fake)
    ]


def _get_dual(fake: FakeBinance, params: Params) -> Any:
    return {"dualSidePosition": fake.account.coinm_position_mode is PositionMode.HEDGE}


def _post_dual(fake: FakeBinance, params: Params) -> Any:
    raw = params.get("dualSidePosition", "").lower()
    if raw not in ("true", "false"):
        raise BinanceError(
            -1102, "Mandatory parameter 'dualSidePosition' was not sent, was empty/null."
        )
    mode = PositionMode.HEDGE if raw == "true" else PositionMode.ONE_WAY
    if mode is fake.account.coinm_position_mode:
        raise BinanceError(-4059, "No need to change position side.")
    simulated(lambda: fake.account.set_coinm_position_mode(mode))
    return {"code": 200, "msg": "success"}


def _post_leverage(fake: FakeBinance, params: Params) -> Any:
    inst = _instrument(fake, params)
    raw = params.get("leverage", "")
    if not raw.isdigit():
        raise BinanceError(-1102, "Mandatory parameter 'leverage' was not sent.")
    lev = int(raw)
    if not 1 <= lev <= 125:
        raise BinanceError(-4028, f"Leverage {lev} is not valid")
    simulated(lambda: fake.account.set_leverage(inst.symbol, lev))
    return {"leverage": lev, "maxQty": "1000", "symbol": inst.exchange_symbol}


def _post_margin_type(fake: FakeBinance, params: Params) -> Any:
    inst = _instrument(fake, params)
    modes = {"ISOLATED": MarginMode.ISOLATED, "CROSSED": MarginMode.CROSS}
    raw = params.get("marginType", "")
    if raw not in modes:
        raise BinanceError(-1116, "Invalid marginType.")
    if fake.account.margin_mode(inst.symbol) is modes[raw]:
        raise BinanceError(-4046, "No need to change margin type.")
    simulated(lambda: fake.account.set_margin_mode(inst.symbol, modes[raw]))
    return {"code": 200, "msg": "success"}


def _income(fake: FakeBinance, params: Params) -> Any:
    if params.get("incomeType", "FUNDING_FEE") != "FUNDING_FEE":
        return []
    inst = _instrument(fake, params) if "symbol" in params else None
    since = utc_from_ms(int(params["startTime"])) if "startTime" in params else None
    out = []
    for p in fake.account.funding_payments(since, inst.symbol if inst else None):
        pi = fake.market.instruments.get(p.symbol)
        if pi is None or not pi.is_inverse:
            continue
        out.append(wire.income(p, pi.exchange_symbol, fake.income_id(p.symbol, p.funding_time)))
    return out[: min(int(params.get("limit", "100")), 1000)]


ROUTES: dict[tuple[str, str], Handler] = {
    ("POST", "/dapi/v1/order"): _new_order,
    ("GET", "/dapi/v1/order"): _get_order,
    ("DELETE", "/dapi/v1/order"): _cancel_order,
    ("GET", "/dapi/v1/openOrders"): _open_orders,
    ("GET", "/dapi/v1/userTrades"): _trades,
    ("GET", "/dapi/v1/account"): _account,
    ("GET", "/dapi/v1/balance"): _balance,
    ("GET", "/dapi/v1/positionRisk"): _position_rows,
    ("GET", "/dapi/v1/positionSide/dual"): _get_dual,
    ("POST", "/dapi/v1/positionSide/dual"): _post_dual,
    ("POST", "/dapi/v1/leverage"): _post_leverage,
    ("POST", "/dapi/v1/marginType"): _post_margin_type,
    ("GET", "/dapi/v1/income"): _income,
}
